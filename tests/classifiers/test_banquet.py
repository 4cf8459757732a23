"""The banquet-details extractor: unit cases, and accuracy on the labelled set of banquet phrasings.

tests/classifiers/data/banquet_dates.jsonl holds 220 phrasings written for this test (formal invitations,
casual group messages, dialect, voice-to-text without punctuation, traditional characters), each with the
message's time and the expected date; lunar dates were converted with lunardate, a library independent of
the extractor's lunar-python. ``python -m tests.classifiers.test_banquet`` prints the figures for BENCHMARKS.md.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from classifiers.banquet import BanquetDetails, clean, cn_number, extract, lunar_name, lunar_to_solar

DATA = Path(__file__).with_name("data") / "banquet_dates.jsonl"
HOLDOUT = DATA.with_name("banquet_dates_holdout.jsonl")
"""30 phrasings written after the extractor was tuned on DATA, and never tuned on."""
OTHER_WRITER = DATA.with_name("banquet_dates_h3.jsonl")
"""150 phrasings by a writer who never saw the extractor, in many regional voices: 0.907 of the dates exact
before anything was changed for them; 0.960 after the general fixes they showed (下下周, festivals, 本周六 said
on a Sunday, a house number read as a day, 请了 read as the past). Their fields follow the writer's own
conventions (升学 for 升学宴, the place as written), so only the dates are held to the aim here."""
DATE_AIM = 0.90
FIELD_AIM = 0.85
FIELDS = ("event", "relation", "place", "tables", "people", "period", "time", "host", "approximate")
MONDAY = datetime.fromisoformat("2026-09-07T19:30:00+08:00")


def load(path: Path = DATA) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    dates = Counter[str]()
    fields: dict[str, Counter[str]] = {name: Counter() for name in FIELDS}
    misses: list[str] = []
    for row in rows:
        got = extract(row["text"], datetime.fromisoformat(row["at"]))
        kind = "none" if row["date"] is None else "lunar" if "lunar" in row else "other"
        ok = (got.date.isoformat() if got.date else None) == row["date"]
        dates[f"{kind}:{'ok' if ok else 'miss'}"] += 1
        if not ok:
            misses.append(f"{row['id']} {row['text']}: {got.date} != {row['date']}")
        for name in FIELDS:
            if name in row:
                value = getattr(got, name)
                if name == "place" and row[name] is not None and value is not None:
                    hit = clean(row[name]) == value
                else:
                    hit = value == row[name]
                fields[name]["ok" if hit else "miss"] += 1
                if not hit:
                    misses.append(f"{row['id']} {name}: {value!r} != {row[name]!r}")
    total = sum(dates.values())
    correct = sum(v for k, v in dates.items() if k.endswith(":ok"))
    labelled = sum(sum(c.values()) for c in fields.values())
    right = sum(c["ok"] for c in fields.values())
    return {
        "rows": total,
        "date_accuracy": correct / total,
        "by_kind": {
            kind: (dates[f"{kind}:ok"], dates[f"{kind}:ok"] + dates[f"{kind}:miss"])
            for kind in ("lunar", "other", "none")
        },
        "field_accuracy": right / labelled,
        "fields": {name: (c["ok"], c["ok"] + c["miss"]) for name, c in fields.items()},
        "misses": misses,
    }


def test_the_labelled_set_is_large_and_varied() -> None:
    rows = load()
    assert len(rows) >= 200
    assert len({r["id"] for r in rows}) == len(rows)
    assert sum("lunar" in r for r in rows) >= 60
    assert sum(r["date"] is None for r in rows) >= 1


def test_exact_date_and_field_accuracy_on_the_labelled_set() -> None:
    report = evaluate(load())
    shown = "\n".join(report["misses"][:40])
    assert report["date_accuracy"] >= DATE_AIM, shown
    assert report["field_accuracy"] >= FIELD_AIM, shown


def test_accuracy_on_phrasings_it_was_not_tuned_on() -> None:
    report = evaluate(load(HOLDOUT))
    assert report["date_accuracy"] >= DATE_AIM, "\n".join(report["misses"])
    assert report["field_accuracy"] >= FIELD_AIM, "\n".join(report["misses"])


def test_dates_written_by_another_writer() -> None:
    report = evaluate(load(OTHER_WRITER))
    assert report["rows"] >= 150
    assert report["date_accuracy"] >= DATE_AIM, "\n".join(report["misses"])


@pytest.mark.parametrize(
    ("text", "at", "day"),
    [
        ("元旦那天中午我家孙子满月", "2026-12-20T10:00:00+08:00", date(2027, 1, 1)),
        ("大年三十中午给老母亲做寿", "2026-12-20T10:00:00+08:00", date(2027, 2, 5)),  # 腊月 has 29 days
        ("元宵节晚上孙子满月酒", "2026-12-20T10:00:00+08:00", date(2027, 2, 20)),
        ("本周六俺家小子结婚", "2026-12-06T10:00:00+08:00", date(2026, 12, 12)),  # said on a Sunday
        ("大后天晚上乔迁 地址新村三巷十号", "2026-12-24T18:00:00+08:00", date(2026, 12, 27)),
        ("腊月初六我家儿子结婚 全村都请了", "2026-12-13T12:00:00+08:00", date(2027, 1, 13)),
    ],
)
def test_festivals_sundays_addresses_and_invitations(text: str, at: str, day: date) -> None:
    assert extract(text, datetime.fromisoformat(at)).date == day


def test_lunar_conversion_matches_the_official_calendar() -> None:
    # 春节 (正月初一) of the coming years, from the published calendars
    assert lunar_to_solar(2026, 1, 1) == date(2026, 2, 17)
    assert lunar_to_solar(2027, 1, 1) == date(2027, 2, 6)
    assert lunar_to_solar(2025, 6, 1, leap=True) == date(2025, 7, 25)
    assert lunar_to_solar(2026, 6, 1, leap=True) is None  # 2026 has no leap month
    assert lunar_to_solar(2025, 6, 30, leap=True) is None  # 闰六月 2025 has 29 days
    assert lunar_name(date(2026, 11, 18)) == "农历十月初十"


@pytest.mark.parametrize(
    ("words", "number"), [("二十八", 28), ("廿三", 23), ("十", 10), ("一百二十", 120), ("二〇二六", 2026), ("18", 18)]
)
def test_chinese_numbers(words: str, number: int) -> None:
    assert cn_number(words) == number


def test_the_acceptance_message() -> None:
    got = extract("家父七十大寿,定于农历十月初十中午在村委会旁摆二十桌", MONDAY)
    assert (got.date, got.calendar, got.lunar, got.weekday) == (date(2026, 11, 18), "lunar", "农历十月初十", "周三")
    assert (got.period, got.place, got.relation, got.event, got.tables) == ("中午", "村委会旁", "父亲", "寿宴", 20)
    assert not got.approximate


def test_the_next_occurrence_is_taken_when_no_year_is_given() -> None:
    after_the_tenth = datetime.fromisoformat("2026-11-20T10:00:00+08:00")  # lunar 十月十二
    assert extract("十月初十 家父寿宴", after_the_tenth).date == date(2027, 11, 7)
    assert extract("3月8日 小女出嫁", after_the_tenth).date == date(2027, 3, 8)
    # a banquet said to have happened looks back, not forward
    assert extract("上周六办了二十桌", after_the_tenth).date == date(2026, 11, 14)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("下下周六 犬子结婚", date(2026, 9, 26)),
        ("下下个礼拜天办满月酒", date(2026, 9, 27)),
        ("下周六 犬子结婚", date(2026, 9, 19)),
        ("上上周六已经办过了", date(2026, 8, 29)),
    ],
)
def test_weeks_after_next_and_before_last(text: str, day: date) -> None:
    assert extract(text, MONDAY).date == day


@pytest.mark.parametrize(
    ("text", "time", "period"),
    [("晚6点在家摆酒", "18:00", "晚上"), ("早8点半开席", "08:30", "上午"), ("明晚六点", "18:00", "晚上")],
)
def test_a_one_character_part_of_the_day_before_a_clock_time(text: str, time: str, period: str) -> None:
    got = extract(text, MONDAY)
    assert (got.time, got.period) == (time, period)


def test_a_lone_evening_word_is_not_a_part_of_the_day() -> None:
    assert extract("晚了 下周六 孙子满月", MONDAY).period is None


def test_approximate_dates_are_marked_so() -> None:
    weekend = extract("周末乔迁新居 请大家吃酒", MONDAY)
    month_end = extract("月底 孙子满月", MONDAY)
    assert weekend.approximate and weekend.date == date(2026, 9, 12)
    assert month_end.approximate and month_end.date == date(2026, 9, 30)
    assert not extract("本周六 孙子满月", MONDAY).approximate


def test_unknown_fields_are_none_never_a_guess() -> None:
    got = extract("犬子新婚,略备薄酒,敬请光临", MONDAY)
    assert got.date is None and got.calendar is None and got.lunar is None
    assert got.place is None and got.tables is None and got.people is None and got.host is None
    assert got.event == "婚宴" and got.relation == "儿子"
    assert extract("", MONDAY).empty


def test_json_round_trip() -> None:
    got = extract("家父七十大寿,定于农历十月初十中午在村委会旁摆二十桌", MONDAY)
    values = got.as_json()
    assert values["date"] == "2026-11-18" and values["weekday"] == "周三"
    assert BanquetDetails.from_json(json.loads(json.dumps(values, ensure_ascii=False))) == got


if __name__ == "__main__":
    for path in (DATA, HOLDOUT):
        result = evaluate(load(path))
        for line in result.pop("misses"):
            print(line)
        print(path.name, json.dumps(result, ensure_ascii=False))
