"""Hostile input: `classify` reports every line it cannot read and goes on; rule values that are not numbers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from classifiers import RuleLoadError, load_classifier
from classifiers.jsonl import run_classify

from .conftest import RULES

GOOD = '{"id": "ok", "text": "石桥村连续三天停水了"}\n'


def classify(data: bytes) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_classify(RULES, io.BytesIO(data), out, err)
    return code, out.getvalue().splitlines(), err.getvalue()


BAD_LINES = [
    ('{"id": NaN, "text": "停水"}', "NaN"),
    ('{"id": Infinity, "text": "停水"}', "Infinity"),
    ('{"id": 1, "text": "停水", "x": -Infinity}', "-Infinity"),
    ('{"id": 1e400, "text": "停水"}', "out of range"),
    ('{"id": "\\ud800", "text": "停水"}', "lone surrogate"),
    ('{"id": 7, "text": "停水\\udfff了"}', "lone surrogate"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"id": 1, "text": "x", "deep": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested too deeply"),
    ('{"id": {"a": [1]}, "text": "停水"}', "'id' must be"),
    ('{"id": 3, "text": ["停水"]}', "non-string 'text'"),
    ("\x00\x01", "invalid JSON"),
]


def test_each_unreadable_line_gets_an_error_naming_it_and_the_rest_goes_on() -> None:
    data = (GOOD + "".join(line + "\n" + GOOD for line, _ in BAD_LINES)).encode("utf-8", "surrogatepass")
    code, out, err = classify(data)
    assert code == 1
    assert len(out) == 2 * len(BAD_LINES) + 1
    for x in out:
        x.encode("utf-8")  # never a lone surrogate in the output
    parsed = [json.loads(x, parse_constant=lambda c: pytest.fail(f"{c} in the output")) for x in out]
    assert all(p["id"] == "ok" and "demand" in p["labels"] for p in parsed[::2])
    for index, (_, problem) in enumerate(BAD_LINES):
        n = 2 * index + 2
        assert parsed[n - 1]["error"].startswith(f"line {n}: ") and problem in parsed[n - 1]["error"]
        assert f"classify: line {n}: " in err


def test_invalid_utf8_and_a_lone_surrogate_encoded_as_bytes(tmp_path: Path) -> None:
    data = GOOD.encode() + b'{"id": "\xed\xa0\x80", "text": "x"}\n' + GOOD.encode()
    code, out, _ = classify(data)
    assert code == 1 and json.loads(out[1])["error"].startswith("line 2: invalid UTF-8")
    assert json.loads(out[2])["id"] == "ok"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_rule_weight_that_is_not_a_finite_number_is_refused(rules_copy: Path, value: str) -> None:
    pack = rules_copy / "labels" / "trial.toml"
    pack.write_text(
        f'[pack]\nlabel = "spam"\n\n[[rule]]\nid = "trial.nan"\nweight = {value}\nany = ["大鱼"]\n', encoding="utf-8"
    )
    with pytest.raises(RuleLoadError, match=r"labels/trial\.toml:6: 规则 trial\.nan: weight\(权重\)必须是有限的数字"):
        load_classifier(rules_copy)


def test_an_engine_threshold_of_nan_is_refused(rules_copy: Path) -> None:
    engine = rules_copy / "engine.toml"
    text = engine.read_text(encoding="utf-8")
    engine.write_text(text.replace("threshold = 1.0", "threshold = nan"), encoding="utf-8")
    assert "threshold = nan" in engine.read_text(encoding="utf-8")
    with pytest.raises(RuleLoadError, match="threshold"):
        load_classifier(rules_copy)
