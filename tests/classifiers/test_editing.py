"""Shadow switches written into the rule files, and rules described as staff wrote them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from classifiers import ClassifierHolder, describe_rules, load_classifier, restore, set_rule_shadow

ROOT = Path(__file__).resolve().parents[2]


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


def test_shadow_switch_round_trips_through_the_file(rules: Path) -> None:
    holder = ClassifierHolder(rules)
    text = "犬子新婚,略备薄酒,敬请光临"
    assert "banquet" in holder.current.classify(text).labels
    for rule in ("banquet.event_feast", "banquet.feast_invite"):
        set_rule_shadow(rules, rule, True)
    assert holder.reload()
    shadowed = {r["id"]: r["shadow"] for r in describe_rules(holder.current, rules)}
    assert shadowed["banquet.event_feast"] and shadowed["banquet.feast_invite"]
    result = holder.current.classify(text)
    assert {m.rule for m in result.shadow_matches} & {"banquet.event_feast", "banquet.feast_invite"}
    for rule in ("banquet.event_feast", "banquet.feast_invite"):
        set_rule_shadow(rules, rule, False)
    assert holder.reload()
    assert "banquet" in holder.current.classify(text).labels


def test_unknown_rule_and_restore(rules: Path) -> None:
    with pytest.raises(KeyError):
        set_rule_shadow(rules, "no.such.rule", True)
    path, previous = set_rule_shadow(rules, "banquet.event_feast", True)
    restore(path, previous)
    assert path.read_text(encoding="utf-8") == previous
