"""The trained model: deterministic, explained, two-tiered, and never able to take the bot down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from classifiers import Classifier, load_classifier
from classifiers.loader import ClassifierHolder, model_path
from classifiers.model import ModelLoadError, load_model
from classifiers.training import TrainingDataError, load_examples, train

from .conftest import REPO, RULES

TEXTS = [
    "石桥村张湾组连续三天停水了,老人小孩怎么办",
    "家父七十大寿,定于本周六中午在村委会旁摆几桌,请各位乡亲赏光",
    "村书记收了红包才给批宅基地",
    "冇得水哒,三天了么子都冇人管",
    "【停水通知】明天8点到17点检修停水",
    "家人们帮我点一下,差一点就提现了",
    "哈哈",
    "谢谢王主任,水已经来了👍",
]


def test_same_labels_under_two_hash_seeds(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(TEXTS)))
    outs = []
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        dst = tmp_path / f"out{seed}.jsonl"
        subprocess.run(
            [str(Path(sys.executable).parent / "villagewatch"), "classify", str(src), str(dst)],
            check=True,
            env=env,
            cwd=REPO,
        )
        outs.append(dst.read_text(encoding="utf-8"))
    assert outs[0] == outs[1]
    assert len(outs[0].splitlines()) == len(TEXTS)


def test_every_red_flag_explains_itself_in_words(clf: Classifier) -> None:
    c = clf.classify(TEXTS[1], role="party_member")
    assert "banquet" in c.labels and c.severity == "high"
    reason = {r.label: r.words for r in c.reasons}["banquet"]
    assert reason and all(len(w) >= 2 for w in reason)
    assert not {"他", "村", "了"} & set(reason)
    assert dict(c.tiers)["banquet"] == "confirmed"


def test_dialect_reaches_the_same_verdict(clf: Classifier) -> None:
    c = clf.classify(TEXTS[3])
    assert c.labels == ("demand",) and c.category == "water"


def test_review_tier_is_a_red_flag_below_its_threshold(clf: Classifier) -> None:
    assert clf.model is not None
    for lab, t in clf.model.review_thresholds.items():
        assert 0.0 < t <= clf.model.thresholds[lab]
    for text in TEXTS:
        c = clf.classify(text)
        assert not set(c.review) & set(c.labels)
        assert all(tier == "review" for lab, tier in c.tiers if lab in c.review)


def test_veto_rule_has_the_last_word(rules_copy: Path) -> None:
    (rules_copy / "model").mkdir()
    (model_path(rules_copy)).write_bytes(model_path(RULES).read_bytes())
    before = load_classifier(rules_copy).classify(TEXTS[1])
    assert "banquet" in before.labels
    (rules_copy / "labels" / "veto.toml").write_text(
        '[[rule]]\nid = "veto.x"\nlabel = "banquet"\ndecide = "veto"\nany = ["大寿"]\n', encoding="utf-8"
    )
    after = load_classifier(rules_copy).classify(TEXTS[1])
    assert "banquet" not in after.labels and "banquet" not in after.review


def test_corrupt_model_runs_on_rules_alone_and_keeps_a_working_one(
    rules_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (rules_copy / "model").mkdir()
    path = model_path(rules_copy)
    path.write_bytes(b"not a model")
    clf = load_classifier(rules_copy)
    assert clf.model is None and clf.model_error and "classifier.npz" in clf.model_error
    assert clf.classify(TEXTS[0]).labels == ("demand",)  # rules alone still work
    path.write_bytes(model_path(RULES).read_bytes())
    holder = ClassifierHolder(rules_copy)
    assert holder.current.model is not None
    path.write_bytes(b"\x00" * 100)
    assert holder.reload() is False
    assert holder.current.model is not None and holder.last_error


def test_model_file_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model file"):
        load_model(tmp_path / "missing.npz")
    m = load_model(model_path(RULES))
    bad = tmp_path / "nan.npz"
    m.weights[0, 0] = float("nan")
    with pytest.raises(ModelLoadError, match="NaN"):
        m.save(bad)
        load_model(bad)


def test_training_data_errors_name_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_text('{"text": "停水了", "labels": ["demand"], "category": "water"}\n{"text": "a", "labels": ["nope"]}\n')
    with pytest.raises(TrainingDataError, match=r"x.jsonl:2: unknown label 'nope'"):
        load_examples([f])
    f.write_text('{"text": "停水了", "labels": ["demand"]}\n{broken\n')
    with pytest.raises(TrainingDataError, match=r"x.jsonl:2: invalid JSON"):
        load_examples([f])


def test_training_is_reproducible(rules_clf: Classifier, tmp_path: Path) -> None:
    rows = [
        ("停水三天了", ["demand"], "water"),
        ("又停水了没人管", ["demand"], "water"),
        ("路灯坏了一个礼拜", ["demand"], "power"),
        ("停电了什么时候来电", ["demand"], "power"),
        ("哈哈好的", ["chat"], None),
        ("吃了没", ["chat"], None),
        ("今天天气好", ["chat"], None),
        ("家父大寿略备薄酒敬请光临", ["banquet"], None),
        ("犬子新婚摆酒请大家来", ["banquet"], None),
        ("孙子满月请各位亲友吃饭", ["banquet"], None),
    ] * 3
    f = tmp_path / "t.jsonl"
    f.write_text(
        "".join(json.dumps({"text": t, "labels": lab, "category": c}, ensure_ascii=False) + "\n" for t, lab, c in rows)
    )
    a = train(rules_clf, load_examples([f]))
    b = train(rules_clf, load_examples([f]))
    assert a.version == b.version
    a.save(tmp_path / "m.npz")
    assert load_model(tmp_path / "m.npz").version == a.version


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("三天没水了", "water"),  # a negation inside the complaint never cancels its category
        ("一直不来电,冰箱都坏了", "power"),
        ("莫得电了咋个整", "power"),  # southwestern
        ("俺们这旮沓又停电了", "power"),  # northern
        ("恁厝边的水管破去了", "water"),  # Minnan
        ("水龙头一滴都冇", "water"),  # Cantonese/Hunan 冇, no outage word at all
        ("额们村的路烂得很,车都过不去", "road_traffic"),  # northwestern
    ],
)
def test_negation_and_dialect_reach_the_same_demand(clf: Classifier, text: str, category: str) -> None:
    c = clf.classify(text)
    assert c.labels == ("demand",) and c.category == category, c


def test_emoji_that_carry_meaning_are_evidence(clf: Classifier) -> None:
    c = clf.classify("[强][强]谢谢书记")
    assert c.labels == ("feedback",)
    ev = clf.evidence("[强][强]谢谢书记")
    from classifiers.features import extract

    assert "e:赞" in extract("[强][强]谢谢书记", ev, clf.rule_ids)


@pytest.mark.parametrize(
    "text",
    [*TEXTS, "a\x00b停水", "𠀀𠀁字 路灯坏了", "x", "停" * 500, "[强]👍🙏 #12 办结 13912345678 https://t.cn/x"],
)
def test_fast_feature_rows_are_the_features_rows(clf: Classifier, text: str) -> None:
    """The model finds a message's n-grams with packed codes; they must be exactly extract()'s features."""
    from classifiers.features import extract, ngram_head, symbols

    model = clf.model
    assert model is not None
    ev = clf.evidence(text, full=True)
    assert model.rows(symbols(text, ev, clf.rule_ids), ngram_head(ev.core)) == model.rows_of(
        extract(text, ev, clf.rule_ids)
    )


def test_a_kept_verdict_is_the_computed_one_per_role(clf: Classifier) -> None:
    """Short texts' verdicts are kept; the sender's role is part of what is kept, and a new model forgets."""
    text = "下周六犬子结婚,略备薄酒"
    villager, cadre = clf.classify(text, role="villager"), clf.classify(text, role="cadre")
    assert clf.classify(text, role="cadre") is cadre and clf.classify(text, role="villager") is villager
    assert "banquet" in cadre.labels and cadre.severity == "high" and villager.severity != "high"
    fresh = load_classifier(RULES)
    assert fresh.classify(text, role="cadre") == cadre
    clf.attach_model(clf.model, None)  # rules alone from now on: nothing kept may answer for the model
    try:
        assert clf.classify(text, role="cadre").model_version is None
    finally:
        from classifiers.decide import attach

        assert clf.model is not None
        attach(clf, clf.model)


def test_many_at_once_are_the_verdicts_one_by_one() -> None:
    """`classify` on a long input scores messages together; every verdict (scores included) is unchanged."""
    files = sorted((REPO / "classifiers" / "data" / "heldout").glob("*.jsonl"))
    items = [(ex["text"], ex.get("role")) for f in files for ex in map(json.loads, f.read_text().splitlines())]
    items += [("", None), ("a\x00b停水了", "villager"), ("👍", None)]
    one, many = load_classifier(RULES), load_classifier(RULES)
    assert many.classify_many(items[:700]) + many.classify_many(items[700:]) == [
        one.classify(text, role=role) for text, role in items
    ]


def test_a_new_writers_file_is_split_like_the_others(tmp_path: Path) -> None:
    from classifiers.split import add_file, held_out

    src = tmp_path / "newvoice.jsonl"
    rows = [
        {"id": f"nv-{i:04d}", "text": f"第{i}组停水了", "labels": ["demand"], "category": "water"} for i in range(50)
    ]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    train, heldout = add_file(src, tmp_path / "data")
    kept = [json.loads(x)["id"] for x in (tmp_path / "data" / "heldout" / "newvoice.jsonl").read_text().splitlines()]
    assert train + heldout == 50 and kept == [r["id"] for r in rows if held_out(r["id"])] and 0 < heldout < 25
    bad = tmp_path / "bad.jsonl"
    bad.write_text(src.read_text() + '{"id": "nv-x", "text": "路灯坏了", "labels": ["complaint"]}\n')
    with pytest.raises(TrainingDataError, match=r"bad\.jsonl:51"):
        add_file(bad, tmp_path / "data")
    assert not (tmp_path / "data" / "train" / "bad.jsonl").exists()
