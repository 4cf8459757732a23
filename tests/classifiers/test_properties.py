"""Garbage in: a result or a per-line error, never a crash."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifiers import LABELS, Classifier
from classifiers.jsonl import run_classify

from .conftest import RULES

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

chinese = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), max_size=60)
mixed = st.one_of(st.text(max_size=200), chinese, st.text(alphabet="停水电路灯坏了没人管!?【】#12 😀", max_size=80))


@FAST
@given(text=mixed, role=st.sampled_from([None, "villager", "party_member", "cadre", "staff"]))
def test_classify_any_text(clf: Classifier, text: str, role: str | None) -> None:
    c = clf.classify(text, role=role)
    assert c.labels and set(c.labels) <= set(LABELS)
    assert len(c.labels) <= 2
    json.dumps(c.to_contract(1), ensure_ascii=False)
    assert isinstance(clf.normalize(text), str)
    assert isinstance(clf.keywords(text), frozenset)


@settings(max_examples=8, deadline=None)
@given(lines=st.lists(st.binary(max_size=80).filter(lambda b: b"\n" not in b), max_size=8))
def test_run_classify_never_crashes_on_bytes(lines: list[bytes]) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run_classify(RULES, io.BytesIO(b"\n".join(lines) + b"\n" if lines else b""), out, err)
    assert code in (0, 1)
    got = out.getvalue().splitlines()
    assert len(got) == len(lines)
    for g in got:
        json.loads(g)


def test_huge_and_odd_inputs(clf: Classifier) -> None:
    huge = "停水了没人管" * 170_000  # about 1 MB
    assert clf.classify(huge).labels[0] == "demand"
    assert clf.classify("\x00" * 100_000).labels == ("chat",)
    assert clf.classify("😀" * 50_000).labels == ("chat",)
    assert clf.classify("\ud800abc").labels == ("chat",)  # lone surrogate
    assert clf.classify("a" * 1_000_000).labels == ("chat",)
