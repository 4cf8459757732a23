"""Reading rules back as staff wrote them, and switching a rule's shadow mode from the dashboard.

Shadow mode is written into the rule's own TOML block (``shadow = true``), so the file stays the single
truth that staff read and edit; the edited file is validated by a full reload before it counts, and put
back as it was if the reload refuses it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from classifiers.engine import Classifier
from classifiers.rules import _HEADER_RE

_SHADOW_RE = re.compile(r"^\s*shadow\s*=")
_TABLE_RE = re.compile(r"^\s*\[")


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


def set_rule_shadow(rules_dir: Path, rule_id: str, shadow: bool) -> tuple[Path, str]:
    """Write ``shadow = true|false`` into the rule's block; returns (file, previous content) for undo.

    Raises KeyError when no rule file defines ``rule_id``.
    """
    pattern = re.compile(r'^\s*id\s*=\s*["\']' + re.escape(rule_id) + r'["\']\s*(#.*)?$')
    for path in sorted(rules_dir.rglob("*.toml")):
        original = path.read_text(encoding="utf-8")
        lines = original.splitlines()
        for index, line in enumerate(lines):
            if not pattern.match(line):
                continue
            header, end = _block(lines, index)
            value = f"shadow = {'true' if shadow else 'false'}"
            for inner in range(header + 1, end):
                if _SHADOW_RE.match(lines[inner]):
                    lines[inner] = value
                    break
            else:
                lines.insert(index + 1, value)
            updated = "\n".join(lines) + ("\n" if original.endswith("\n") else "")
            tmp = path.with_suffix(".toml.tmp")
            tmp.write_text(updated, encoding="utf-8")
            tmp.replace(path)
            return path, original
    raise KeyError(f"no rule with id {rule_id!r} in {rules_dir}")


def restore(path: Path, content: str) -> None:
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.replace(path)
