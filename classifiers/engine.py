"""The rule engine: Aho-Corasick finds candidate terms, jieba tokens confirm them, rules vote.

Pipeline for one message:
1. normalise (see normalize.py) and keep the first ``max_chars`` characters of the core text;
2. one Aho-Corasick pass finds every rule term (and, for fuzzy rules, one-character typos of them);
3. if no rule can be satisfied by those raw hits, nothing is tokenised;
4. otherwise the text is tokenised with the classifier's own tokenizer (jieba's algorithm and
   dictionary, see loader.py); a hit counts only if the tokens confirm it (大麻烦 is 大/麻烦, so 大麻
   does not match), and a hit right after a negation cue (没停水) does not count for negatable rules;
5. each rule checks roles, exclusions, its groups and the proximity window, and votes for a label
   (or a category) with its weight; labels reaching the threshold survive the suppression table and
   the allowed pairs (engine.toml), ordered by precedence.
All steps are linear in the length of the text.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import ahocorasick

from classifiers.normalize import Normalizer
from classifiers.rules import Rule, RuleSet, Term
from classifiers.types import CATEGORIES, SEVERITIES, Classification, Match

if TYPE_CHECKING:
    from classifiers.model import LinearModel

_SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}
FUZZY_MIN_LEN = 4  # one substituted character is tolerated in terms at least this long


@dataclass(slots=True)
class _Hit:
    start: int
    end: int
    tok: int  # index of the token the hit starts in
    negated: bool


class Tokenizer(Protocol):
    """jieba's interface (``jieba.Tokenizer`` or the faster ``jieba_fast_dat.Tokenizer``)."""

    def lcut(self, sentence: str, cut_all: bool = False, HMM: bool = True) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Evidence:
    """The rule evidence found in one message (see ``Classifier.evidence``)."""

    core: str
    role: str
    fired: list[tuple[Rule, Match]]
    group_hits: frozenset[tuple[int, int]]  # (rule index, group index) with a substring hit
    tokenised: bool


# Group chat repeats itself (收到, 好的, 👍, 辛苦了): the verdicts on recent short texts are kept, per sender
# role. A verdict is immutable and depends only on the text, the role and this classifier (a reload builds a
# new one), so a kept verdict is the one that would be computed again.
RECENT_MAX_CHARS = 40
RECENT_SIZE = 8192


class Classifier:
    """An immutable, loaded rule set. Build with ``load_classifier``; share freely (no mutable state)."""

    def __init__(self, ruleset: RuleSet, normalizer: Normalizer, tokenizer: Tokenizer) -> None:
        self.version: str = ruleset.version
        self.ruleset = ruleset
        self._cfg = ruleset.config
        self._norm = normalizer
        self._tk = tokenizer
        self._rules: tuple[Rule, ...] = ruleset.rules
        self.rule_ids: tuple[str, ...] = tuple(r.id for r in ruleset.rules)
        self.label_rank: dict[str, int] = {lab: i for i, lab in enumerate(ruleset.config.order)}
        """Each label's place in the precedence order (engine.toml)."""
        self._by_id: dict[str, Rule] = {r.id: r for r in ruleset.rules}
        self.model: LinearModel | None = None
        self.model_error: str | None = None
        self._decider: Callable[[str, str | None], Classification] | None = None
        self._many: Callable[[list[tuple[str, str | None]]], list[Classification]] | None = None
        self._recent: dict[tuple[str, str | None], Classification] = {}
        # Unique terms by (text, mode); every group is a tuple of term ids.
        term_ids: dict[tuple[str, str], int] = {}
        self._terms: list[Term] = []

        def tid(t: Term) -> int:
            key = (t.text, t.mode)
            if key not in term_ids:
                term_ids[key] = len(self._terms)
                self._terms.append(t)
            return term_ids[key]

        self._groups: list[tuple[tuple[int, ...], ...]] = []
        self._none: list[tuple[int, ...]] = []
        term_rules: dict[int, set[int]] = defaultdict(set)
        # A fuzzy rule also accepts a one-character typo of its long terms; the typo hits are kept under a
        # separate id (the term's "fuzzy twin") so that exact-only rules sharing the term never see them.
        fuzzy_twin: dict[int, int] = {}
        self._fuzzy_of: dict[int, int] = {}
        for ri, r in enumerate(self._rules):
            groups: list[tuple[int, ...]] = []
            for grp in r.groups:
                ids = [tid(term) for term in grp]
                if r.fuzzy:
                    for t in list(ids):
                        if self._terms[t].mode == "token" and len(self._terms[t].text) >= FUZZY_MIN_LEN:
                            if t not in fuzzy_twin:
                                fuzzy_twin[t] = len(self._terms)
                                self._fuzzy_of[len(self._terms)] = t
                                self._terms.append(self._terms[t])
                            ids.append(fuzzy_twin[t])
                groups.append(tuple(ids))
            self._groups.append(tuple(groups))
            self._none.append(tuple(tid(term) for term in r.none))
            for g in groups:
                for t in g:
                    term_rules[t].add(ri)
        self._term_rules = {t: tuple(sorted(rs)) for t, rs in term_rules.items()}
        term_groups: dict[int, set[tuple[int, int]]] = defaultdict(set)
        for ri, groups_ in enumerate(self._groups):
            for gi, g in enumerate(groups_):
                for t in g:
                    term_groups[t].add((ri, gi))
        self._term_groups = {t: tuple(v) for t, v in term_groups.items()}
        self._n_groups = [len(g) for g in self._groups]
        self._is_label_rule = [not r.label.startswith("category:") for r in self._rules]
        # For the prefilter: how much each rule can add to its label (shadow rules add nothing, but are
        # still evaluated when some label can be reached, so their hits are recorded).
        self._potential = [
            0.0 if (r.shadow or not self._is_label_rule[i]) else max(r.weight, 0.0) for i, r in enumerate(self._rules)
        ]
        by_literal: dict[str, list[int]] = defaultdict(list)
        for i, term in enumerate(self._terms):
            if i not in self._fuzzy_of:
                by_literal[term.text].append(i)
        self._ac = ahocorasick.Automaton()
        for lit, ids in by_literal.items():
            self._ac.add_word(lit, (len(lit), tuple(ids)))
        self._ac.make_automaton()
        # Fuzzy: every 2-character piece of a fuzzy term is an anchor; around an anchor hit the text is
        # compared with the term allowing one substituted character.
        anchors: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for t in sorted(self._fuzzy_of):
            text = self._terms[t].text
            for off in range(len(text) - 1):
                anchors[text[off : off + 2]].append((t, off))
        self._fuzzy_ac: ahocorasick.Automaton | None = None
        if anchors:
            self._fuzzy_ac = ahocorasick.Automaton()
            for a, lst in anchors.items():
                self._fuzzy_ac.add_word(a, tuple(lst))
            self._fuzzy_ac.make_automaton()
        self._single_terms = frozenset(t.text for t in self._terms if len(t.text) == 1)
        self._chat = Classification(("chat",), None, None, (), (), self.version)

    def attach_model(
        self,
        model: LinearModel | None,
        decider: Callable[[str, str | None], Classification] | None,
        many: Callable[[list[tuple[str, str | None]]], list[Classification]] | None = None,
    ) -> None:
        """Let a trained model decide (see decide.py); ``None`` keeps the rules alone. Called once, by the loader.

        ``many`` decides a list of messages at once, as ``decider`` would one by one.
        """
        self.model = model
        self._decider = decider
        self._many = many if decider is not None else None
        self._recent.clear()

    def rule_by_id(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id)

    # ----------------------------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        return self._norm.normalize(text)

    def _core(self, text: str) -> str:
        return Normalizer.core(self._norm.normalize(text))[: self._cfg.max_chars]

    def _tokens(self, core: str) -> list[str]:
        return self._tk.lcut(core, HMM=False)

    def keywords(self, text: str) -> frozenset[str]:
        """Content words of a text (for merging reports of the same problem)."""
        core = self._core(text)
        stop = self._cfg.stopwords
        out = set()
        for tok in self._tokens(core):
            if tok in stop:
                continue
            if len(tok) >= 2 or tok in self._single_terms:
                out.add(tok)
        return frozenset(out)

    # ----------------------------------------------------------------------------------------------
    def _raw_hits(self, core: str) -> dict[int, list[tuple[int, int]]]:
        hits: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for end, (n, ids) in self._ac.iter(core):
            for t in ids:
                hits[t].append((end - n + 1, end + 1))
        if self._fuzzy_ac is not None:
            seen: set[tuple[int, int]] = set()
            for end, lst in self._fuzzy_ac.iter(core):
                for t, off in lst:
                    s = end - 1 - off
                    text = self._terms[t].text
                    e = s + len(text)
                    if s < 0 or e > len(core) or (t, s) in seen:
                        continue
                    seen.add((t, s))
                    window = core[s:e]
                    diff = sum(1 for a, b in zip(window, text, strict=True) if a != b)
                    if diff == 1:
                        hits[t].append((s, e))
        return hits

    def _candidates(self, present: dict[int, list[tuple[int, int]]]) -> list[int]:
        """Rules whose every group has at least one raw (substring) hit."""
        sat: dict[int, set[int]] = defaultdict(set)
        tg = self._term_groups
        for t in present:
            for ri, gi in tg.get(t, ()):
                sat[ri].add(gi)
        ng = self._n_groups
        return sorted(ri for ri, gs in sat.items() if len(gs) == ng[ri])

    def evidence(self, text: str, *, role: str | None = None, full: bool = True) -> Evidence:
        """What the rules see in a message: the rules that fired and every term group with a hit.

        With ``full`` every rule whose groups all occur is evaluated (a model needs all the evidence);
        without it only rules that can still change a rules-only verdict are (the fast path of ``classify``
        when no model is loaded). Tokenising happens only when some rule is a candidate.
        """
        core = self._core(text)
        role_key = role if role else "unknown"
        if not core:
            return Evidence(core, role_key, [], frozenset(), False)
        raw = self._raw_hits(core)
        group_hits = frozenset(rg for t in raw for rg in self._term_groups.get(t, ()))
        cands = self._candidates(raw)
        if not full:
            # Sound prefilter: a label can only hold if the positive weights of the rules whose terms all
            # occur (as substrings) reach the threshold; otherwise the message is chat.
            reach: dict[str, float] = defaultdict(float)
            for ri in cands:
                if self._potential[ri] > 0.0:
                    reach[self._rules[ri].label] += self._potential[ri]
            thr = self._cfg.threshold
            reachable = {lab for lab, v in reach.items() if v >= thr}
            want_cat = "demand" in reachable or "consult" in reachable
            cands = [
                ri
                for ri in cands
                if self._rules[ri].shadow
                or self._rules[ri].label in reachable
                or (want_cat and not self._is_label_rule[ri])
            ]
        if not cands:
            return Evidence(core, role_key, [], group_hits, False)
        tokens = self._tokens(core)
        starts: list[int] = []
        pos = 0
        for tok in tokens:
            starts.append(pos)
            pos += len(tok)
        start_set = set(starts)
        end_set = {s + len(t) for s, t in zip(starts, tokens, strict=True)}
        cfg = self._cfg
        neg, bridge = cfg.negation, cfg.negation_bridge

        def negated(ti: int) -> bool:
            if ti >= 1 and tokens[ti - 1] in neg:
                return True
            return ti >= 2 and tokens[ti - 1] in bridge and tokens[ti - 2] in neg

        needed = {t for ri in cands for g in self._groups[ri] for t in g}
        needed.update(t for ri in cands for t in self._none[ri])
        confirmed: dict[int, list[_Hit]] = {}
        for t, spans in raw.items():
            if t not in needed:
                continue
            mode = self._terms[t].mode
            out = []
            for s, e in spans:
                if mode == "token":
                    ok = s in start_set and e in end_set
                elif mode == "suffix":
                    ok = e in end_set
                elif mode == "prefix":
                    ok = s in start_set
                else:
                    ok = True
                if ok:
                    ti = bisect.bisect_right(starts, s) - 1
                    out.append(_Hit(s, e, ti, negated(ti) if s in start_set else False))
            if out:
                confirmed[t] = out
        fired: list[tuple[Rule, Match]] = []
        for ri in cands:
            m = self._eval_rule(ri, confirmed, core, role_key)
            if m is not None:
                fired.append((self._rules[ri], m))
        # Categories: in a tie, the topic mentioned first wins.
        fired.sort(key=lambda rm: core.find(rm[1].keywords[0]) if rm[1].keywords else 0)
        return Evidence(core, role_key, fired, group_hits, True)

    def classify(self, text: str, *, role: str | None = None) -> Classification:
        """The verdict (taxonomy.md): the trained model's when one is attached, else the rules' alone."""
        kept = self._kept((text, role))
        if kept is not None:
            return kept
        if self._decider is not None:
            verdict = self._decider(text, role)
        else:
            ev = self.evidence(text, role=role, full=False)
            verdict = self.decide(ev.fired, ev.role) if ev.fired else self._chat
        return self._keep((text, role), verdict)

    def classify_many(self, items: list[tuple[str, str | None]]) -> list[Classification]:
        """``classify`` for many (text, role) pairs at once: the same verdicts, computed together."""
        if self._many is None:
            return [self.classify(text, role=role) for text, role in items]
        out = [self._kept(key) for key in items]
        todo = [k for k, verdict in enumerate(out) if verdict is None]
        for k, verdict in zip(todo, self._many([items[k] for k in todo]), strict=True):
            out[k] = self._keep(items[k], verdict)
        return [v for v in out if v is not None]

    def _kept(self, key: tuple[str, str | None]) -> Classification | None:
        return self._recent.get(key) if len(key[0]) <= RECENT_MAX_CHARS else None

    def _keep(self, key: tuple[str, str | None], verdict: Classification) -> Classification:
        if len(key[0]) <= RECENT_MAX_CHARS:
            if len(self._recent) >= RECENT_SIZE:
                self._recent.clear()
            self._recent[key] = verdict
        return verdict

    def _eval_rule(self, ri: int, confirmed: dict[int, list[_Hit]], core: str, role: str) -> Match | None:
        r = self._rules[ri]
        if r.roles is not None and role not in r.roles:
            return None
        if r.not_roles is not None and role in r.not_roles:
            return None
        if r.max_len is not None and len(core) > r.max_len:
            return None
        for t in self._none[ri]:
            if t in confirmed:
                return None
        group_hits: list[list[_Hit]] = []
        for gi, g in enumerate(self._groups[ri]):
            hs = [h for t in g for h in confirmed.get(t, ()) if not (r.negatable and h.negated)]
            if gi == 0 and r.start is not None:
                hs = [h for h in hs if h.tok < r.start]
            if not hs:
                return None
            group_hits.append(hs)
        chosen = self._window(group_hits, r.window)
        if chosen is None:
            return None
        if r.label.startswith("category:") and len(group_hits) == 1:
            chosen = sorted(group_hits[0], key=lambda h: h.start)
        kws: list[str] = []
        for h in chosen:
            kw = core[h.start : h.end]
            if kw not in kws:
                kws.append(kw)
        return Match(rule=r.id, keywords=tuple(kws), label=r.label, shadow=r.shadow)

    @staticmethod
    def _window(group_hits: list[list[_Hit]], window: int | None) -> list[_Hit] | None:
        if window is None or len(group_hits) == 1:
            return [min(hs, key=lambda h: h.start) for hs in group_hits]
        items = sorted(((h.tok, gi, h) for gi, hs in enumerate(group_hits) for h in hs), key=lambda x: (x[0], x[1]))
        need = len(group_hits)
        count: dict[int, int] = defaultdict(int)
        have = 0
        lo = 0
        best: tuple[int, int, int] | None = None
        for hi in range(len(items)):
            g = items[hi][1]
            count[g] += 1
            if count[g] == 1:
                have += 1
            while have == need:
                span = items[hi][0] - items[lo][0]
                if best is None or span < best[0]:
                    best = (span, lo, hi)
                gl = items[lo][1]
                count[gl] -= 1
                if count[gl] == 0:
                    have -= 1
                lo += 1
        if best is None or best[0] >= window:
            return None
        chosen: dict[int, _Hit] = {}
        for _, gi, h in items[best[1] : best[2] + 1]:
            chosen.setdefault(gi, h)
        return [chosen[gi] for gi in range(need)]

    def decide(self, fired: list[tuple[Rule, Match]], role: str) -> Classification:
        """Rules vote: weights per label against the threshold, suppression, pairs, then category."""
        cfg = self._cfg
        scores: dict[str, float] = defaultdict(float)
        cat_scores: dict[str, float] = defaultdict(float)
        cat_first: dict[str, int] = {}
        shadow: list[Match] = []
        for i, (r, m) in enumerate(fired):
            if r.shadow:
                shadow.append(m)
            elif r.label.startswith("category:"):
                c = r.label[9:]
                cat_scores[c] += r.weight * len(m.keywords)
                cat_first.setdefault(c, i)
            else:
                scores[r.label] += r.weight
        present = {lab for lab, s in scores.items() if s >= cfg.threshold and lab != "chat"}
        for lab in sorted(present, key=lambda x: -scores[x]):
            if lab in present:
                present.difference_update(cfg.suppress.get(lab, ()))
        order = {lab: i for i, lab in enumerate(cfg.order)}
        labels: list[str] = []
        if present:
            primary = max(present, key=lambda x: (scores[x], -order[x]))
            labels.append(primary)
            others = sorted(present - {primary}, key=lambda x: (-scores[x], order[x]))
            for o in others:
                if frozenset((primary, o)) in cfg.pairs:
                    labels.append(o)
                    break
            labels.sort(key=lambda x: order[x])
        else:
            labels.append("chat")
        category = None
        if "demand" in labels or "consult" in labels:
            good = [c for c, s in cat_scores.items() if s > 0]
            if good:
                category = max(good, key=lambda c: (cat_scores[c], -cat_first[c], -CATEGORIES.index(c)))
            else:
                category = cfg.fallback_category
        severity: str | None = None
        for lab in labels:
            sev = cfg.severity_roles.get(lab, {}).get(role) or cfg.severity.get(lab)
            for r, _ in fired:
                if (
                    r.label == lab
                    and not r.shadow
                    and r.severity is not None
                    and (sev is None or _SEV_RANK[r.severity] > _SEV_RANK[sev])
                ):
                    sev = r.severity
            if sev is not None and (severity is None or _SEV_RANK[sev] > _SEV_RANK[severity]):
                severity = sev
        cat_label = f"category:{category}" if category is not None else None
        acted = tuple(
            m for r, m in fired if not r.shadow and (r.label in labels or r.weight < 0 or r.label == cat_label)
        )
        return Classification(tuple(labels), category, severity, acted, tuple(shadow), self.version)
