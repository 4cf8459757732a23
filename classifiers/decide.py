"""From rule evidence and model scores to a verdict: thresholds per label, staff force/veto, tiers, reasons.

The model decides; staff rules keep the last word: a rule with ``decide = "force"`` that fires makes
its label hold, one with ``decide = "veto"`` removes it (a cadre's 【通知】 header, a banned word).
Red flags get two tiers: above the label's threshold they are decided (确认); between the recall-first
threshold and that, they go to the digest for review (请核查) and never open a ticket.
"""

from __future__ import annotations

from functools import partial

from classifiers.engine import Classifier, Evidence
from classifiers.features import SIGNS, ngram_head, symbols
from classifiers.model import RED_FLAGS, LinearModel, Scores
from classifiers.types import LABELS, Classification, Match, Reason

MAX_LABELS = 2
REASON_WORDS = 6
# Characters that make an n-gram meaningless to a clerk on their own (他, 村, 了 …).
_WEAK_CHARS = frozenset(
    "的了吗呢啊吧呀嘛哦哈么着过也都就还又在是有我你他她它们这那个一不没和与及或村组里上下来去说要会能"
)
_SEVERITY_RANK = {"low": 0, "normal": 1, "high": 2}
_SORTED_LABELS = tuple(sorted(LABELS))


def _readable_ngram(gram: str) -> bool:
    if len(gram) < 2 or gram.isdigit() or (gram.isascii() and len(gram) < 3):
        return False
    return sum(ch not in _WEAK_CHARS for ch in gram) >= 2 or (len(gram) >= 3 and gram[0] not in _WEAK_CHARS)


def _group_words(clf: Classifier, feature: str, core: str) -> list[str]:
    rule_id, _, gi = feature[2:].rpartition("/")
    rule = clf.rule_by_id(rule_id)
    if rule is None or not gi.isdigit() or int(gi) >= len(rule.groups):
        return []
    return [t.text for t in rule.groups[int(gi)] if t.text in core][:2]


def explain(
    clf: Classifier, model: LinearModel, ev: Evidence, rows: tuple[int, ...], label: str, fired: dict[str, Match]
) -> Reason:
    """The words that pushed ``label`` up, strongest first: rule keywords, then phrases and signs."""
    words: list[str] = []

    def add(w: str) -> None:
        if w and w not in words and not any(w in x for x in words):
            words[:] = [x for x in words if x not in w]
            words.append(w)

    for feat, _ in model.contributions(rows, label):
        if len(words) >= REASON_WORDS:
            break
        kind, _, name = feat.partition(":")
        if kind == "r":
            rid = name.split("@", 1)[0].split("|", 1)[0]
            m = fired.get(rid)
            for kw in m.keywords if m else ():
                add(kw)
        elif kind == "g":
            for w in _group_words(clf, feat, ev.core):
                add(w)
        elif kind == "c" and _readable_ngram(name):
            add(name)
        elif kind == "e" and name in SIGNS.values():
            add(f"表情「{name}」")
        elif kind == "role" and name in ("cadre", "party_member"):
            add({"cadre": "发送人是干部", "party_member": "发送人是党员"}[name])
    if not words:
        for m in fired.values():
            if m.label == label:
                for kw in m.keywords:
                    add(kw)
    return Reason(label, tuple(words[:REASON_WORDS]))


def attach(clf: Classifier, model: LinearModel) -> Classifier:
    """Let ``model`` decide for ``clf`` (on top of its rules' evidence); returns ``clf``."""
    clf.attach_model(model, partial(decide_with_model, clf, model), partial(decide_many, clf, model))
    return clf


def decide_with_model(clf: Classifier, model: LinearModel, text: str, role: str | None) -> Classification:
    ev = clf.evidence(text, role=role, full=True)
    if not ev.core:
        return clf.decide([], ev.role)
    return _verdict(clf, model, ev, model.score(model.rows(symbols(text, ev, clf.rule_ids), ngram_head(ev.core))))


def decide_many(clf: Classifier, model: LinearModel, items: list[tuple[str, str | None]]) -> list[Classification]:
    """``decide_with_model`` for many messages, their scores summed together (``LinearModel.score_many``)."""
    evs = [clf.evidence(text, role=role, full=True) for text, role in items]
    scored = [k for k, ev in enumerate(evs) if ev.core]
    scores = model.score_many([(symbols(items[k][0], evs[k], clf.rule_ids), ngram_head(evs[k].core)) for k in scored])
    out = [clf.decide([], ev.role) if not ev.core else None for ev in evs]
    for k, sc in zip(scored, scores, strict=True):
        out[k] = _verdict(clf, model, evs[k], sc)
    return [c for c in out if c is not None]


def _verdict(clf: Classifier, model: LinearModel, ev: Evidence, sc: Scores) -> Classification:
    p = sc.labels
    thr = model.thresholds
    # Margin over the label's own threshold (in odds), so labels with different thresholds compare fairly.
    margin = {lab: (p[lab] / (1.0 - p[lab] + 1e-12)) / (thr[lab] / (1.0 - thr[lab])) for lab in p}
    ranked = sorted(p, key=lambda lab: (-margin[lab], lab))
    chosen = [lab for lab in ranked if p[lab] >= thr[lab]][:MAX_LABELS] or ranked[:1]
    active = [(r, m) for r, m in ev.fired if not r.shadow]
    for r, _m in active:
        if r.decide == "force" and r.label in p and r.label not in chosen:
            chosen.insert(0, r.label)
    vetoed = {r.label for r, _ in active if r.decide == "veto"}
    chosen = [lab for lab in chosen if lab not in vetoed][:MAX_LABELS]
    if len(chosen) > 1 and "chat" in chosen:
        chosen.remove("chat")
    if not chosen:
        chosen = ["chat"]
    labels = tuple(sorted(chosen, key=clf.label_rank.__getitem__))
    review = tuple(
        lab
        for lab in RED_FLAGS
        if lab not in labels and lab not in vetoed and p[lab] >= model.review_thresholds.get(lab, thr[lab])
    )
    category: str | None = None
    if "demand" in labels or "consult" in labels:
        category = max(sorted(sc.categories), key=lambda c: sc.categories[c])
    cfg = clf.ruleset.config
    severity: str | None = None
    for lab in labels + review:
        sev = cfg.severity_roles.get(lab, {}).get(ev.role) or cfg.severity.get(lab)
        for r, _ in active:
            if (
                r.label == lab
                and r.severity is not None
                and (sev is None or _SEVERITY_RANK[r.severity] > _SEVERITY_RANK[sev])
            ):
                sev = r.severity
        if sev is not None and (severity is None or _SEVERITY_RANK[sev] > _SEVERITY_RANK[severity]):
            severity = sev
    wanted = set(labels) | set(review) | ({f"category:{category}"} if category else set())
    matches = tuple(m for r, m in active if r.label in wanted)
    shadow = tuple(m for r, m in ev.fired if r.shadow)
    fired = {m.rule: m for _, m in active}
    # Reasons for what reaches the patrol digest: every red flag, decided or for review.
    reasons = tuple(explain(clf, model, ev, sc.rows, lab, fired) for lab in labels + review if lab in RED_FLAGS)
    tiers = tuple((lab, "confirmed") for lab in labels if lab in RED_FLAGS) + tuple((lab, "review") for lab in review)
    return Classification(
        labels=labels,
        category=category,
        severity=severity,
        matches=matches,
        shadow_matches=shadow,
        ruleset_version=clf.version,
        review=review,
        tiers=tiers,
        reasons=reasons,
        model_version=model.version,
        scores=tuple((lab, round(p[lab], 4)) for lab in _SORTED_LABELS),
    )
