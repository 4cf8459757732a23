"""Reading rules back as staff wrote them, and the rule editor's edits of the rule files.

Every edit (a keyword, a weight, shadow mode, a new rule) is written into the rule's own TOML block with
tomlkit, so the file stays the single truth that staff read and edit, with its comments and layout; the bot
(bot/rule_editor.py) checks the edited file with the loader before it counts.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Array, Table

from classifiers.engine import Classifier
from classifiers.rules import _HEADER_RE, Rule

_TABLE_RE = re.compile(r"^\s*\[")
_ENGLISH_HALF = re.compile(r"\s*/\s*(?=[A-Za-z'\"(])")
"""Where the English half of a bilingual note ("中文 / English") begins."""


def _block(lines: list[str], start: int) -> tuple[int, int]:
    """The [[rule]] block that contains 0-based line ``start``: (header index, end index exclusive)."""
    header = start
    while header > 0 and not _HEADER_RE.match(lines[header]):
        header -= 1
    end = header + 1
    while end < len(lines) and not _TABLE_RE.match(lines[end]):
        end += 1
    while end > header + 1 and not lines[end - 1].strip():
        end -= 1
    return header, end


def describe_rules(classifier: Classifier, rules_dir: Path) -> list[dict[str, Any]]:
    """Every rule with the text of its block as written, for the dashboard's rules page."""
    texts: dict[str, list[str]] = {}
    described: list[dict[str, Any]] = []
    for rule in classifier.ruleset.rules:
        # Rule.file is shown as "<rules folder name>/<relative path>"; the folder itself is rules_dir.
        path = rules_dir.joinpath(*Path(rule.file).parts[1:])
        if rule.file not in texts:
            try:
                texts[rule.file] = path.read_text(encoding="utf-8").splitlines()
            except OSError:
                texts[rule.file] = []
        lines = texts[rule.file]
        text = ""
        if lines and 0 < rule.line <= len(lines):
            header, end = _block(lines, rule.line - 1)
            text = "\n".join(lines[header:end])
        described.append(
            {
                "id": rule.id,
                "label": rule.label,
                "text": text,
                "shadow": rule.shadow,
                "file": rule.file,
                "line": rule.line,
                "note": rule.note,
            }
        )
    return described


# ---------------------------------------------------------------- the rule editor (tomlkit: comments kept)

EDITABLE = ("any", "none", "weight", "window", "shadow", "note_zh")
"""The keys the dashboard's rule editor changes; everything else in a rule is kept as written."""


def chinese_note(rule: Rule) -> str:
    """What a rule is for, in Chinese: ``note_zh``, else the Chinese half of a bilingual ``note``
    ("赌博玩法与彩票 / gambling games"), else nothing (an English-only note never reaches a page)."""
    if rule.note_zh.strip():
        return rule.note_zh.strip()
    english = _ENGLISH_HALF.search(rule.note)
    if english and rule.note[: english.start()].strip():
        return rule.note[: english.start()].strip()
    return "" if rule.note.isascii() else rule.note.strip()


def rule_file(rule: Rule) -> str:
    """The rule's file inside the rules folder (``labels/banquet.toml``); ``Rule.file`` starts with the folder."""
    return Path(*Path(rule.file).parts[1:]).as_posix()


def rule_card(rule: Rule) -> dict[str, Any]:
    """A rule as the editor shows it: what it finds, its terms as written, its settings."""
    return {
        "id": rule.id,
        "label": rule.label,
        "description": chinese_note(rule),
        "any": [t.raw for t in rule.any],
        "all": [[t.raw for t in group] for group in rule.all],
        "none": [t.raw for t in rule.none],
        "weight": rule.weight,
        "window": rule.window,
        "shadow": rule.shadow,
        "severity": rule.severity,
        "file": rule_file(rule),
    }


def _find_rule(doc: tomlkit.TOMLDocument, rule_id: str) -> Table:
    rules = doc.get("rule")
    if isinstance(rules, AoT | list):
        for table in rules:
            if isinstance(table, Table) and table.get("id") == rule_id:
                return table
    raise KeyError(rule_id)


def _edit_array(array: Array, wanted: list[Any]) -> None:
    """Make ``array`` hold ``wanted``: removed items go, kept ones stay where and as they were, new ones
    are appended (so a multi-line list keeps its layout)."""
    for index in reversed(range(len(array))):
        if array[index] not in wanted:
            del array[index]
    present = list(array)
    for value in wanted:
        if value not in present:
            array.append(value)
            present.append(value)


def edit_rule_text(text: str, rule_id: str, changes: Mapping[str, Any]) -> str:
    """The rule file ``text`` with rule ``rule_id`` changed: each key set to its value (None removes it).

    Only the edited rule's lines change; comments, order and layout elsewhere stay byte for byte.
    Raises KeyError when the file has no such rule (and tomlkit's ParseError for a file that is not TOML).
    """
    doc = tomlkit.parse(text)
    table = _find_rule(doc, rule_id)
    for key, value in changes.items():
        if value is None:
            if key in table:
                del table[key]
        elif isinstance(value, list) and isinstance(table.get(key), Array):
            _edit_array(table[key], value)
        elif table.get(key) != value or type(table.get(key)) is not type(value):
            table[key] = value
    return tomlkit.dumps(doc)


def add_rule_text(text: str, fields: Mapping[str, Any]) -> str:
    """The rule file ``text`` with a new ``[[rule]]`` after everything else (the rest of the file unchanged)."""
    tomlkit.parse(text)  # the file must be TOML before anything is added to it
    table = tomlkit.table()
    for key, value in fields.items():
        if value is not None:
            table[key] = value
    aot = tomlkit.aot()
    aot.append(table)
    added = tomlkit.document()
    added["rule"] = aot
    return text.rstrip("\n") + "\n\n" + tomlkit.dumps(added)


def copy_with(rules_dir: Path, target: Path, changed: Mapping[str, str]) -> Path:
    """Copy the rule files (not the model) of ``rules_dir`` under ``target``, with ``changed`` files
    (path inside the folder → text) replaced; the copy keeps the folder's name so errors read the same."""
    root = target / Path(rules_dir).name
    for path in sorted(Path(rules_dir).rglob("*")):
        if path.is_file() and path.suffix in (".toml", ".txt"):
            dest = root / path.relative_to(rules_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
    for name, content in changed.items():
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(content, encoding="utf-8")
    return root


def write_atomically(path: Path, content: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.replace(path)
