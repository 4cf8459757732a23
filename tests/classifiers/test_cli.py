"""run_classify and run_eval: the entry points behind `villagewatch classify` and `villagewatch eval`."""

from __future__ import annotations

import io
import json
from pathlib import Path

from classifiers.evaluation import naive_baseline, run_eval
from classifiers.jsonl import run_classify

from .conftest import DATA, RULES


def classify_bytes(data: bytes, rules: Path = RULES) -> tuple[int, list[dict], str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_classify(rules, io.BytesIO(data), out, err)
    return code, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


def test_contract_output_in_order() -> None:
    lines = [
        {
            "id": "a",
            "text": "石桥村张湾组连续三天停水了,老人小孩怎么办",
            "role": "villager",
            "group": "g",
            "sender": "s",
        },
        {"id": 2, "text": "【停水通知】明天8点到17点检修停水", "role": "cadre"},
        {"id": None, "text": "哈哈"},
    ]
    data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
    code, out, err = classify_bytes(data)
    assert code == 0 and err == ""
    assert [o["id"] for o in out] == ["a", 2, None]
    assert out[0]["labels"] == ["demand"] and out[0]["category"] == "water" and out[0]["severity"] == "normal"
    assert set(out[0]) == {"id", "labels", "category", "severity", "matches", "review", "tiers", "reasons"}
    assert any("停水" in m["keywords"] for m in out[0]["matches"])
    assert out[1]["labels"] == ["notice"] and out[1]["category"] is None and out[1]["severity"] is None
    assert out[2] == {
        "id": None,
        "labels": ["chat"],
        "category": None,
        "severity": None,
        "matches": [],
        "review": [],
        "tiers": {},
        "reasons": {},
    }


def test_bad_lines_are_reported_and_processing_continues() -> None:
    data = (
        b'{"id": 1, "text": "\xe5\x81\x9c\xe6\xb0\xb4\xe4\xba\x86"}\n'
        b"\xff\xfe\x00garbage\n"
        b"not json\n"
        b'{"id": 4}\n'
        b"[1, 2]\n"
        b'{"id": 6, "text": "ok", "role": "king"}\n'
        b'{"id": 7, "text": "\xe6\xbb\xa1\xe6\x84\x8f"}'
    )
    code, out, err = classify_bytes(data)
    assert code == 1
    assert len(out) == 7
    assert out[0]["labels"] == ["demand"]
    assert out[1] == {"id": None, "error": out[1]["error"]} and out[1]["error"].startswith("line 2: invalid UTF-8")
    assert out[2]["error"].startswith("line 3: invalid JSON")
    assert out[3] == {"id": 4, "error": "line 4: missing or non-string 'text'"}
    assert out[4]["error"] == "line 5: expected a JSON object"
    assert out[5]["id"] == 6 and "unknown role" in out[5]["error"]
    assert out[6]["labels"] == ["feedback"]
    assert err.count("\n") == 5 and "line 2:" in err


def test_rules_that_fail_to_load_exit_2(tmp_path: Path) -> None:
    code, out, err = classify_bytes(b'{"id": 1, "text": "x"}\n', rules=tmp_path)
    assert code == 2 and out == [] and "rules not loaded" in err


def test_naive_baseline_is_naive() -> None:
    assert naive_baseline("大麻烦来了,路口交通好堵")[0] == ("demand",)  # substring 堵, no tokens
    assert naive_baseline("你好") == (("chat",), None)


def test_rules_alone_meet_the_aims_on_the_set_they_were_tuned_on() -> None:
    from classifiers import load_classifier
    from classifiers.evaluation import evaluate, load_dataset

    clf = load_classifier(RULES, with_model=False)
    assert clf.model is None
    items = load_dataset([DATA / "train" / "project_dev.jsonl"])
    assert len(items) >= 500

    def predict(text: str, role: str | None) -> tuple[tuple[str, ...], str | None]:
        c = clf.classify(text, role=role)
        return c.labels, c.category

    rep = evaluate(items, predict)
    assert rep.ticket[2] >= 0.90
    assert rep.red_flag[1] >= 0.90
    assert rep.macro_f1 >= 0.85
    base = evaluate(items, naive_baseline)
    assert rep.macro_f1 > base.macro_f1 + 0.3


def test_installed_model_meets_the_aims_on_the_set_aside_data() -> None:
    """The set-aside part (classifiers/data/heldout) was never trained or tuned on."""
    from classifiers import load_classifier
    from classifiers.evaluation import evaluate, load_dataset

    clf = load_classifier(RULES)
    assert clf.model is not None, clf.model_error
    items = load_dataset(sorted((DATA / "heldout").glob("*.jsonl")))
    assert len(items) >= 1000

    def predict(text: str, role: str | None) -> tuple[tuple[str, ...], str | None]:
        c = clf.classify(text, role=role)
        return c.labels, c.category

    rep = evaluate(items, predict)
    assert rep.macro_f1 >= 0.85
    assert rep.ticket[2] >= 0.90
    assert rep.red_flag[1] >= 0.90
    assert rep.per_label["banquet"][1] >= 0.95
    assert rep.per_label["clue"][1] >= 0.85
    assert rep.category_accuracy >= 0.80
    assert rep.notices_ticketed <= 0.03


def test_datasets_cover_every_label_and_category() -> None:
    from classifiers import CATEGORIES, LABELS

    for kind, minimum in (("train", 4000), ("heldout", 1000)):
        rows = [
            json.loads(x)
            for f in sorted((DATA / kind).glob("*.jsonl"))
            for x in f.read_text(encoding="utf-8").splitlines()
        ]
        assert len(rows) >= minimum
        assert {lab for r in rows for lab in r["labels"]} == set(LABELS)
        assert {r["category"] for r in rows if r["category"]} == set(CATEGORIES)


def test_eval_reports_bad_dataset(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "labels": ["nope"]}\n', encoding="utf-8")
    out = io.StringIO()
    assert run_eval(RULES, [bad], out) == 2
    assert "bad.jsonl:1" in out.getvalue()


def test_workers_give_the_same_lines_in_the_same_order() -> None:
    """A long input shared by two processes: every line once, in order, bad lines reported as by one."""
    files = sorted((DATA / "train").glob("*.jsonl"))
    texts = [json.loads(x)["text"] for f in files for x in f.read_text(encoding="utf-8").splitlines()][:900]
    assert len(texts) == 900
    raw = [json.dumps({"id": i, "text": t}, ensure_ascii=False).encode() for i, t in enumerate(texts * 3)]
    raw[5], raw[2100] = b"{not json", b'{"id": 7, "text": 3}'
    data = b"\n".join(raw) + b"\n"
    results = []
    for jobs in (1, 2):
        out, err = io.StringIO(), io.StringIO()
        code = run_classify(RULES, io.BytesIO(data), out, err, jobs=jobs)
        results.append((code, out.getvalue(), err.getvalue()))
    assert results[0] == results[1]
    code, out_text, err_text = results[1]
    lines = out_text.splitlines()
    assert code == 1 and len(lines) == len(raw) == 2700
    assert [json.loads(x)["id"] for x in lines[:5]] == [0, 1, 2, 3, 4]
    assert "line 6: invalid JSON" in lines[5] and "line 2101" in err_text
