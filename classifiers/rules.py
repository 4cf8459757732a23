"""Loading rule packs (TOML data, see rules/README.md) into validated, immutable rule objects.

Every error names the file and the line: ``rules/labels/banquet.toml:37: unknown key 'windw'``.
Nothing is returned unless the whole directory is valid.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifiers.types import CATEGORIES, LABELS, ROLES, SEVERITIES


class RuleLoadError(Exception):
    """A rule file is missing, unreadable or invalid; the message starts with ``file:line:``."""


@dataclass(frozen=True, slots=True)
class Term:
    """One keyword of a rule.

    ``raw`` is what staff wrote. ``text`` is the literal to look for. ``mode`` says how tokens must
    confirm it: ``token`` (starts and ends on token boundaries), ``suffix`` (``*宴``: ends a token),
    ``prefix`` (``宴*``: starts a token), ``sub`` (``*宴*``: anywhere, no confirmation).
    """

    raw: str
    text: str
    mode: str


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    label: str  # a label, or "category:<name>"
    file: str
    line: int
    any: tuple[Term, ...] = ()
    all: tuple[tuple[Term, ...], ...] = ()
    none: tuple[Term, ...] = ()
    window: int | None = None
    roles: frozenset[str] | None = None
    not_roles: frozenset[str] | None = None
    negatable: bool = True
    weight: float = 1.0
    severity: str | None = None
    shadow: bool = False
    fuzzy: bool = False
    start: int | None = None
    max_len: int | None = None
    note: str = ""
    note_zh: str = ""
    """The description staff read on the dashboard (Simplified Chinese); ``note`` may be bilingual."""
    decide: str | None = None  # "force" / "veto": staff's last word over the trained model

    @property
    def groups(self) -> tuple[tuple[Term, ...], ...]:
        """Every group that must be matched: the any-list (if given) then each all-group."""
        return ((self.any,) if self.any else ()) + self.all


@dataclass(frozen=True, slots=True)
class EngineConfig:
    threshold: float = 1.0
    order: tuple[str, ...] = LABELS
    pairs: frozenset[frozenset[str]] = frozenset()
    suppress: dict[str, tuple[str, ...]] = field(default_factory=dict)
    negation: frozenset[str] = frozenset()
    negation_bridge: frozenset[str] = frozenset()
    severity: dict[str, str] = field(default_factory=dict)
    severity_roles: dict[str, dict[str, str]] = field(default_factory=dict)
    fallback_category: str = "other"
    max_chars: int = 10000
    stopwords: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RuleSet:
    config: EngineConfig
    rules: tuple[Rule, ...]
    userdict: tuple[tuple[str, int | None, str | None], ...]
    version: str
    files: tuple[str, ...]


_RULE_KEYS = {
    "id",
    "label",
    "category",
    "any",
    "all",
    "none",
    "window",
    "roles",
    "not_roles",
    "negatable",
    "weight",
    "severity",
    "shadow",
    "fuzzy",
    "start",
    "max_len",
    "note",
    "note_zh",
    "decide",
}
_HEADER_RE = re.compile(r"^\s*\[\[\s*rule\s*\]\]")
_TOML_LINE_RE = re.compile(r"at line (\d+)")
_ROLE_VALUES = {*ROLES, "unknown"}


def _display(path: Path, root: Path) -> str:
    try:
        return str(Path(root.name) / path.relative_to(root))
    except ValueError:
        return str(path)


def _key_line(lines: list[str], start: int, end: int, key: str) -> int:
    pat = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i in range(start, min(end, len(lines))):
        if pat.match(lines[i]):
            return i + 1
    return start + 1


def parse_term(raw: object, where: str) -> Term:
    if not isinstance(raw, str) or not raw.strip():
        raise RuleLoadError(f"{where}: a term must be a non-empty string, got {raw!r}")
    s = raw.strip()
    mode = "token"
    if len(s) > 2 and s.startswith("*") and s.endswith("*"):
        mode, s = "sub", s[1:-1]
    elif len(s) > 1 and s.startswith("*"):
        mode, s = "suffix", s[1:]
    elif len(s) > 1 and s.endswith("*"):
        mode, s = "prefix", s[:-1]
    if "*" in s:
        raise RuleLoadError(f"{where}: '*' is only allowed at the start or end of a term: {raw!r}")
    return Term(raw=raw, text=s, mode=mode)


class _PackParser:
    def __init__(self, path: Path, display: str, normalise: Any) -> None:
        self.path = path
        self.display = display
        self.normalise = normalise
        try:
            self.text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise RuleLoadError(f"{display}:1: not valid UTF-8 ({e.reason})") from e
        except OSError as e:
            raise RuleLoadError(f"{display}:1: cannot read: {e.strerror}") from e
        self.lines = self.text.splitlines()
        try:
            self.data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as e:
            m = _TOML_LINE_RE.search(str(e))
            line = m.group(1) if m else str(max(1, len(self.text.splitlines())))
            raise RuleLoadError(f"{display}:{line}: TOML syntax error: {e}") from e
        self.headers = [i for i, ln in enumerate(self.lines) if _HEADER_RE.match(ln)]

    def err(self, line: int, msg: str) -> RuleLoadError:
        return RuleLoadError(f"{self.display}:{line}: {msg}")

    def terms(self, value: object, where: str, line: int) -> tuple[Term, ...]:
        if not isinstance(value, list):
            raise self.err(line, f"'{where}' must be a list of strings")
        out = []
        for v in value:
            t = parse_term(v, f"{self.display}:{line}")
            norm = self.normalise(t.text)
            if not norm:
                raise self.err(line, f"term {v!r} is empty after normalisation")
            out.append(Term(raw=t.raw, text=norm, mode=t.mode))
        return tuple(out)

    def rules(self) -> list[Rule]:
        extra = set(self.data) - {"rule", "pack"}
        if extra:
            key = sorted(extra)[0]
            raise self.err(_key_line(self.lines, 0, len(self.lines), key), f"unknown top-level key {key!r}")
        pack = self.data.get("pack", {})
        if not isinstance(pack, dict):
            raise self.err(1, "'pack' must be a table")
        raw_rules = self.data.get("rule", [])
        if not isinstance(raw_rules, list):
            raise self.err(1, "'rule' must be an array of tables: write [[rule]]")
        default_label = pack.get("label")
        default_shadow = bool(pack.get("shadow", False))
        out = []
        for i, r in enumerate(raw_rules):
            start = self.headers[i] if i < len(self.headers) else 0
            end = self.headers[i + 1] if i + 1 < len(self.headers) else len(self.lines)
            out.append(self.rule(r, start, end, default_label, default_shadow))
        return out

    def rule(self, r: dict[str, Any], start: int, end: int, default_label: object, default_shadow: bool) -> Rule:
        hdr = start + 1

        def line(key: str) -> int:
            return _key_line(self.lines, start, end, key)

        unknown = set(r) - _RULE_KEYS
        if unknown:
            k = sorted(unknown)[0]
            raise self.err(line(k), f"unknown key {k!r} (allowed: {', '.join(sorted(_RULE_KEYS))})")
        rid = r.get("id")
        if not isinstance(rid, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", rid):
            raise self.err(line("id") if "id" in r else hdr, 'every rule needs an id like "water.outage"')
        label = r.get("label", default_label)
        cat = r.get("category")
        if cat is not None:
            if label is not None and "label" in r:
                raise self.err(line("category"), "give either 'label' or 'category', not both")
            if cat not in CATEGORIES:
                raise self.err(line("category"), f"unknown category {cat!r}; one of {', '.join(CATEGORIES)}")
            label = f"category:{cat}"
        if not isinstance(label, str) or (label not in LABELS and not label.startswith("category:")):
            raise self.err(
                line("label") if "label" in r else hdr,
                f"rule {rid}: unknown or missing label {label!r}; one of {', '.join(LABELS)}",
            )
        if label.startswith("category:") and label[9:] not in CATEGORIES:
            raise self.err(hdr, f"rule {rid}: unknown category {label[9:]!r}")
        any_terms = self.terms(r.get("any", []), "any", line("any"))
        all_raw = r.get("all", [])
        if not isinstance(all_raw, list) or not all(isinstance(g, list) for g in all_raw):
            raise self.err(line("all"), '\'all\' must be a list of lists: all = [["水管"], ["爆", "漏"]]')
        all_groups = tuple(self.terms(g, "all", line("all")) for g in all_raw)
        if any(not g for g in all_groups):
            raise self.err(line("all"), "an 'all' group is empty")
        if not any_terms and not all_groups:
            raise self.err(hdr, f"rule {rid}: needs 'any' or 'all' terms")
        none_terms = self.terms(r.get("none", []), "none", line("none"))
        kw: dict[str, Any] = {}
        for key in ("window", "start", "max_len"):
            if key in r:
                v = r[key]
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise self.err(line(key), f"'{key}' must be a positive integer")
                kw[key] = v
        for key in ("negatable", "shadow", "fuzzy"):
            if key in r and not isinstance(r[key], bool):
                raise self.err(line(key), f"'{key}' must be true or false")
        if "weight" in r:
            w = r["weight"]
            if not isinstance(w, int | float) or isinstance(w, bool):
                raise self.err(line("weight"), "'weight' must be a number")
            if not math.isfinite(w):
                raise self.err(line("weight"), f"规则 {rid}: weight(权重)必须是有限的数字,不能是 {w!r}")
            kw["weight"] = float(w)
        if "severity" in r and r["severity"] not in SEVERITIES:
            raise self.err(line("severity"), f"'severity' must be one of {', '.join(SEVERITIES)}")
        for key in ("roles", "not_roles"):
            if key in r:
                v = r[key]
                if not isinstance(v, list) or not v or any(x not in _ROLE_VALUES for x in v):
                    raise self.err(line(key), f"'{key}' must be a list of: {', '.join(sorted(_ROLE_VALUES))}")
                kw[key] = frozenset(v)
        if "decide" in r:
            if r["decide"] not in ("force", "veto"):
                raise self.err(line("decide"), '\'decide\' must be "force" (强制成立) or "veto" (一票否决)')
            if label.startswith("category:"):
                raise self.err(line("decide"), "'decide' is for label rules, not category rules")
            kw["decide"] = r["decide"]
        note = r.get("note", "")
        if not isinstance(note, str):
            raise self.err(line("note"), "'note' must be a string")
        note_zh = r.get("note_zh", "")
        if not isinstance(note_zh, str):
            raise self.err(line("note_zh"), "'note_zh' must be a string")
        return Rule(
            id=rid,
            label=label,
            file=self.display,
            line=hdr,
            any=any_terms,
            all=all_groups,
            none=none_terms,
            negatable=r.get("negatable", True),
            shadow=r.get("shadow", default_shadow),
            fuzzy=r.get("fuzzy", False),
            severity=r.get("severity"),
            note=note,
            note_zh=note_zh,
            **kw,
        )


def _str_list(p: _PackParser, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or any(not isinstance(x, str) for x in value):
        raise p.err(_key_line(p.lines, 0, len(p.lines), key), f"'{key}' must be a list of strings")
    return tuple(value)


def _engine_config(path: Path, display: str, normalise: Any) -> EngineConfig:
    p = _PackParser(path, display, normalise)
    d = p.data
    allowed = {
        "threshold",
        "order",
        "pairs",
        "suppress",
        "negation",
        "negation_bridge",
        "severity",
        "severity_roles",
        "fallback_category",
        "max_chars",
        "stopwords",
    }
    for k in d:
        if k not in allowed:
            raise p.err(_key_line(p.lines, 0, len(p.lines), k), f"unknown key {k!r}")

    def ln(key: str) -> int:
        return _key_line(p.lines, 0, len(p.lines), key)

    order = _str_list(p, "order", d.get("order", list(LABELS)))
    if sorted(order) != sorted(LABELS):
        raise p.err(ln("order"), f"'order' must list every label exactly once: {', '.join(LABELS)}")
    pairs_raw = d.get("pairs", [])
    if not isinstance(pairs_raw, list):
        raise p.err(ln("pairs"), "'pairs' must be a list of two-label lists")
    pairs = set()
    for pr in pairs_raw:
        if not isinstance(pr, list) or len(pr) != 2 or any(x not in LABELS for x in pr):
            raise p.err(ln("pairs"), f"bad pair {pr!r}: two labels expected")
        pairs.add(frozenset(pr))
    suppress: dict[str, tuple[str, ...]] = {}
    for k, v in d.get("suppress", {}).items():
        vals = _str_list(p, k, v)
        if k not in LABELS or any(x not in LABELS for x in vals):
            raise p.err(ln(k), f"suppress.{k}: labels expected")
        suppress[k] = vals
    severity = {}
    for k, v in d.get("severity", {}).items():
        if k not in LABELS or v not in SEVERITIES:
            raise p.err(ln(k), f"severity.{k} = {v!r}: a label and one of {', '.join(SEVERITIES)} expected")
        severity[k] = v
    sev_roles: dict[str, dict[str, str]] = {}
    for k, v in d.get("severity_roles", {}).items():
        if (
            k not in LABELS
            or not isinstance(v, dict)
            or any(r not in ROLES or s not in SEVERITIES for r, s in v.items())
        ):
            raise p.err(ln(k), f"severity_roles.{k}: a table of role = severity expected")
        sev_roles[k] = dict(v)
    fb = d.get("fallback_category", "other")
    if fb not in CATEGORIES:
        raise p.err(ln("fallback_category"), f"unknown category {fb!r}")
    thr = d.get("threshold", 1.0)
    mc = d.get("max_chars", 10000)
    if not isinstance(thr, int | float) or isinstance(thr, bool) or not math.isfinite(thr) or thr <= 0:
        raise p.err(ln("threshold"), "'threshold' must be a positive number")
    if not isinstance(mc, int) or isinstance(mc, bool) or mc < 100:
        raise p.err(ln("max_chars"), "'max_chars' must be an integer >= 100")
    norm = [normalise(x) for x in _str_list(p, "negation", d.get("negation", []))]
    bridge = [normalise(x) for x in _str_list(p, "negation_bridge", d.get("negation_bridge", []))]
    stop = _str_list(p, "stopwords", d.get("stopwords", []))
    return EngineConfig(
        threshold=float(thr),
        order=order,
        pairs=frozenset(pairs),
        suppress=suppress,
        negation=frozenset(norm),
        negation_bridge=frozenset(bridge),
        severity=severity,
        severity_roles=sev_roles,
        fallback_category=fb,
        max_chars=mc,
        stopwords=frozenset(stop),
    )


def _userdict(path: Path, display: str) -> list[tuple[str, int | None, str | None]]:
    out: list[tuple[str, int | None, str | None]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise RuleLoadError(f"{display}:1: not valid UTF-8") from e
    for n, ln in enumerate(text.splitlines(), 1):
        s = ln.split("#", 1)[0].strip()
        if not s:
            continue
        parts = s.split()
        if len(parts) > 3:
            raise RuleLoadError(f"{display}:{n}: expected 'word [frequency] [tag]', got {ln!r}")
        freq: int | None = None
        tag: str | None = None
        if len(parts) >= 2:
            if not parts[1].isdigit():
                raise RuleLoadError(f"{display}:{n}: frequency must be a whole number, got {parts[1]!r}")
            freq = int(parts[1])
        if len(parts) == 3:
            tag = parts[2]
        out.append((parts[0], freq, tag))
    return out


def load_ruleset(rules_dir: Path, normalise: Any) -> RuleSet:
    """Read and validate every file under ``rules_dir``; raise RuleLoadError on the first problem."""
    rules_dir = Path(rules_dir)
    if not rules_dir.is_dir():
        raise RuleLoadError(f"{rules_dir}:0: rules directory not found")
    engine_path = rules_dir / "engine.toml"
    if not engine_path.is_file():
        raise RuleLoadError(f"{_display(engine_path, rules_dir)}:0: missing (precedence and cues)")
    digest = hashlib.sha256()
    files = [engine_path]
    config = _engine_config(engine_path, _display(engine_path, rules_dir), normalise)
    packs = sorted(p for p in rules_dir.rglob("*.toml") if p != engine_path)
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in packs:
        disp = _display(path, rules_dir)
        parser = _PackParser(path, disp, normalise)
        for rule in parser.rules():
            if rule.id in seen:
                raise RuleLoadError(f"{disp}:{rule.line}: duplicate rule id {rule.id!r} (first in {seen[rule.id]})")
            seen[rule.id] = f"{disp}:{rule.line}"
            rules.append(rule)
        files.append(path)
    userdict: list[tuple[str, int | None, str | None]] = []
    for path in sorted(rules_dir.rglob("*.txt")):
        userdict.extend(_userdict(path, _display(path, rules_dir)))
        files.append(path)
    if not rules:
        raise RuleLoadError(f"{rules_dir}:0: no rules found")
    for path in sorted(files):
        digest.update(str(path.relative_to(rules_dir)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return RuleSet(
        config=config,
        rules=tuple(rules),
        userdict=tuple(userdict),
        version=digest.hexdigest()[:12],
        files=tuple(str(f) for f in sorted(files)),
    )


def fingerprint(rules_dir: Path) -> str:
    """A cheap fingerprint of the rule files (names, sizes, mtimes) to notice edits."""
    h = hashlib.sha256()
    for p in sorted(Path(rules_dir).rglob("*")):
        if p.suffix in (".toml", ".txt", ".npz") and p.is_file():
            st = p.stat()
            h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
