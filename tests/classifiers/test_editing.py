"""Rules described as staff wrote them, and the rule editor's edits of the TOML files: every edit of every rule
in the project's files keeps each byte outside that rule's block, and the loader reads the result back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from classifiers import ClassifierHolder, describe_rules, load_classifier
from classifiers.editing import add_rule_text, chinese_note, copy_with, edit_rule_text, rule_card, rule_file
from classifiers.rules import _HEADER_RE, Rule

ROOT = Path(__file__).resolve().parents[2]
RULES = load_classifier(ROOT / "rules", with_model=False).ruleset.rules


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target)
    return target


def test_rules_are_described_with_their_text(rules: Path) -> None:
    described = {r["id"]: r for r in describe_rules(load_classifier(rules), rules)}
    banquet = described["banquet.event_feast"]
    assert banquet["label"] == "banquet" and not banquet["shadow"]
    assert banquet["text"].startswith("[[rule]]") and 'id = "banquet.event_feast"' in banquet["text"]


def _split(text: str, rule: Rule) -> tuple[str, str, str]:
    """(before the rule's [[rule]] header, the block up to the next header, from the next header on)."""
    lines = text.splitlines(keepends=True)
    start = rule.line - 1
    assert _HEADER_RE.match(lines[start])
    end = next((i for i in range(start + 1, len(lines)) if _HEADER_RE.match(lines[i])), len(lines))
    return "".join(lines[:start]), "".join(lines[start:end]), "".join(lines[end:])


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_an_edit_keeps_every_byte_outside_the_edited_rule(rules: Path, rule: Rule) -> None:
    name = rule_file(rule)
    text = (rules / name).read_text(encoding="utf-8")
    terms = [t.raw for t in rule.any]
    changes: dict[str, object] = {
        "weight": 0.42,
        "window": 7,
        "shadow": not rule.shadow,
        "note_zh": "中文说明",
        "none": [*(t.raw for t in rule.none), "排除词甲"],
    }
    if terms:
        changes["any"] = [*terms[1:], "新关键词"]  # one removed, one added
    edited = edit_rule_text(text, rule.id, changes)
    before, block, after = _split(text, rule)
    new_before, new_block, new_after = _split(edited, rule)
    assert (new_before, new_after) == (before, after)
    assert new_block != block and "新关键词" in new_block if terms else "排除词甲" in new_block
    # comments inside the block stay too
    assert [ln for ln in block.splitlines() if ln.lstrip().startswith("#")] == [
        ln for ln in new_block.splitlines() if ln.lstrip().startswith("#")
    ]
    root = copy_with(rules, rules.parent / "copy", {name: edited})
    loaded = {r.id: r for r in load_classifier(root, with_model=False).ruleset.rules}[rule.id]
    assert loaded.weight == 0.42 and loaded.window == 7 and loaded.shadow is not rule.shadow
    assert loaded.note_zh == "中文说明" and chinese_note(loaded) == "中文说明" and loaded.note == rule.note
    if terms:
        assert [t.raw for t in loaded.any] == [*terms[1:], "新关键词"]


def test_nothing_changes_when_nothing_is_edited_and_a_removed_key_goes(rules: Path) -> None:
    text = (rules / "labels/gambling.toml").read_text(encoding="utf-8")
    assert edit_rule_text(text, "gambling.games", {"weight": 0.7}) == text  # the value it has
    assert edit_rule_text(text, "gambling.games", {"window": None}) == text  # a key it does not have
    without = edit_rule_text(text, "gambling.games", {"weight": None})
    assert "weight = 0.7" not in without and without.count("\n") == text.count("\n") - 1
    with pytest.raises(KeyError):
        edit_rule_text(text, "no.such.rule", {"weight": 1.0})


def test_a_new_rule_goes_after_everything_else(rules: Path) -> None:
    text = (rules / "labels/gambling.toml").read_text(encoding="utf-8")
    added = add_rule_text(text, {"id": "gambling.staff_1", "any": ["骰子"], "window": None, "shadow": True})
    assert added.startswith(text.rstrip("\n") + '\n\n[[rule]]\nid = "gambling.staff_1"\n')
    assert "window" not in added[len(text) :]
    holder = ClassifierHolder(copy_with(rules, rules.parent / "copy", {"labels/gambling.toml": added}))
    assert "gambling.staff_1" in {m.rule for m in holder.current.classify("今晚摇骰子").shadow_matches}


def test_cards_speak_chinese() -> None:
    cards = {r.id: rule_card(r) for r in RULES}
    assert cards["gambling.games"]["description"] == "赌博玩法与彩票"
    assert cards["spam.drugs"]["description"] == "毒品、违禁品广告"
    assert cards["demand.when_fixed"]["description"] == "问什么时候修好/来水来电:实为催办"
    assert all(not any(c.isascii() and c.isalpha() for c in card["description"]) for card in cards.values())
    assert cards["gambling.games"]["file"] == "labels/gambling.toml"
