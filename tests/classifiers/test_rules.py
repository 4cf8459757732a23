"""Rule files: schema errors name file and line, shadow mode, hot swap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from classifiers import ClassifierHolder, RuleLoadError, load_classifier

PACK = """# a test pack
[pack]
label = "banquet"

[[rule]]
id = "test.one"
any = ["喜酒"]
"""


def write(rules: Path, name: str, text: str) -> Path:
    p = rules / "labels" / name
    p.write_text(text, encoding="utf-8")
    return p


def test_toml_syntax_error_names_file_and_line(rules_copy: Path) -> None:
    write(rules_copy, "bad.toml", PACK + '\n[[rule]]\nid = "test.two"\nany = ["a", \n')
    with pytest.raises(RuleLoadError, match=r"rules/labels/bad\.toml:\d+: TOML syntax error"):
        load_classifier(rules_copy)


def test_unknown_key_names_its_line(rules_copy: Path) -> None:
    write(rules_copy, "bad.toml", PACK + "windw = 3\n")
    with pytest.raises(RuleLoadError, match=r"rules/labels/bad\.toml:8: unknown key 'windw'"):
        load_classifier(rules_copy)


def test_bad_label_and_category(rules_copy: Path) -> None:
    write(rules_copy, "bad.toml", '[[rule]]\nid = "x.y"\nlabel = "banket"\nany = ["酒"]\n')
    with pytest.raises(RuleLoadError, match=r"bad\.toml:3: rule x.y: unknown or missing label 'banket'"):
        load_classifier(rules_copy)
    write(rules_copy, "bad.toml", '[[rule]]\nid = "x.y"\ncategory = "waterr"\nany = ["水"]\n')
    with pytest.raises(RuleLoadError, match=r"bad\.toml:3: unknown category 'waterr'"):
        load_classifier(rules_copy)


def test_wrong_types_and_empty_rules(rules_copy: Path) -> None:
    write(rules_copy, "bad.toml", PACK + 'window = "three"\n')
    with pytest.raises(RuleLoadError, match=r"bad\.toml:8: 'window' must be a positive integer"):
        load_classifier(rules_copy)
    write(rules_copy, "bad.toml", '[pack]\nlabel = "spam"\n\n[[rule]]\nid = "x.z"\n')
    with pytest.raises(RuleLoadError, match=r"bad\.toml:4: rule x.z: needs 'any' or 'all' terms"):
        load_classifier(rules_copy)
    write(rules_copy, "bad.toml", PACK.replace('["喜酒"]', '["喜*酒"]'))
    with pytest.raises(RuleLoadError, match=r"bad\.toml:\d+: '\*' is only allowed"):
        load_classifier(rules_copy)


def test_duplicate_id(rules_copy: Path) -> None:
    write(rules_copy, "bad.toml", PACK.replace("test.one", "demand.outage"))
    with pytest.raises(RuleLoadError, match=r"duplicate rule id 'demand.outage'"):
        load_classifier(rules_copy)


def test_bad_userdict_and_engine(rules_copy: Path) -> None:
    (rules_copy / "userdict.txt").write_text("停水 5000\n停电 lots\n", encoding="utf-8")
    with pytest.raises(RuleLoadError, match=r"rules/userdict\.txt:2: frequency must be a whole number"):
        load_classifier(rules_copy)


def test_engine_config_errors(rules_copy: Path) -> None:
    eng = rules_copy / "engine.toml"
    eng.write_text(
        eng.read_text(encoding="utf-8").replace('["demand", "abuse"]', '["demand", "abus"]'), encoding="utf-8"
    )
    with pytest.raises(RuleLoadError, match=r"rules/engine\.toml:\d+: bad pair"):
        load_classifier(rules_copy)


def test_shadow_rule_is_recorded_not_acted_on(rules_copy: Path) -> None:
    write(
        rules_copy,
        "trial.toml",
        '[pack]\nlabel = "spam"\nshadow = true\n\n[[rule]]\nid = "trial.fish"\nweight = 5.0\nany = ["大鱼"]\n',
    )
    clf = load_classifier(rules_copy)
    c = clf.classify("今天钓了一条大鱼")
    assert c.labels == ("chat",)
    assert [m.rule for m in c.shadow_matches] == ["trial.fish"]
    assert c.shadow_matches[0].shadow and c.shadow_matches[0].keywords == ("大鱼",)
    assert not c.matches
    # ...and it stays out of the contract output.
    assert c.to_contract(1)["matches"] == []


def test_hot_swap_keeps_old_rules_on_bad_edit(rules_copy: Path) -> None:
    holder = ClassifierHolder(rules_copy)
    old = holder.current
    assert holder.current.classify("今天钓了一条大鱼").labels == ("chat",)
    write(rules_copy, "fish.toml", '[pack]\nlabel = "spam"\n\n[[rule]]\nid = "fish.x"\nany = ["大鱼"\n')
    assert holder.changed()
    assert holder.reload() is False
    assert holder.current is old
    assert holder.last_error and "fish.toml:" in holder.last_error
    write(rules_copy, "fish.toml", '[pack]\nlabel = "spam"\n\n[[rule]]\nid = "fish.x"\nany = ["大鱼"]\n')
    assert holder.reload() is True
    assert holder.current is not old and holder.current.version != old.version
    assert holder.current.classify("今天钓了一条大鱼").labels == ("spam",)


async def test_watch_reloads_on_change(rules_copy: Path) -> None:
    holder = ClassifierHolder(rules_copy)
    old = holder.current.version
    task = asyncio.create_task(holder.watch(interval=0.05))
    try:
        write(rules_copy, "fish.toml", '[pack]\nlabel = "spam"\n\n[[rule]]\nid = "fish.x"\nany = ["大鱼"]\n')
        for _ in range(200):
            await asyncio.sleep(0.05)
            if holder.current.version != old:
                break
        assert holder.current.version != old
        assert holder.current.classify("卖大鱼").labels == ("spam",)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_missing_directory() -> None:
    with pytest.raises(RuleLoadError, match="rules directory not found"):
        load_classifier(Path("/nonexistent/rules"))
