"""Pure rules of the ticket workflow: working-day deadlines, command words, ratings, merging."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.clock import CHINA
from bot.tickets.calendar import OFFICIAL, WorkCalendar
from bot.tickets.commands import Action, Rating, parse_command, parse_rating, requested_days, ticket_refs
from bot.tickets.merge import objects, places, same_problem

END = time(17, 30)


def test_deadline_over_national_day_and_make_up_saturday() -> None:
    received = datetime(2026, 9, 28, 10, 0, tzinfo=CHINA)
    assert OFFICIAL.deadline_after(received, 10, at=END, tz=CHINA) == datetime(2026, 10, 16, 17, 30, tzinfo=CHINA)


def test_day_of_receipt_is_not_counted_even_late_at_night() -> None:
    # Monday 2026-09-07 23:59 → Tuesday is the first working day; Sunday 09-20 is a make-up workday
    received = datetime(2026, 9, 7, 23, 59, tzinfo=CHINA)
    assert OFFICIAL.deadline_after(received, 1, at=END, tz=CHINA).date() == date(2026, 9, 8)
    assert OFFICIAL.deadline_after(received, 10, at=END, tz=CHINA).date() == date(2026, 9, 20)


def test_received_on_a_holiday_counts_from_the_next_working_day() -> None:
    received = datetime(2026, 10, 3, 9, 0, tzinfo=CHINA)  # National Day holiday
    assert OFFICIAL.deadline_after(received, 1, at=END, tz=CHINA).date() == date(2026, 10, 8)


def test_years_without_official_data_fall_back_to_weekdays() -> None:
    assert OFFICIAL.add_working_days(date(2031, 1, 3), 1) == date(2031, 1, 6)  # Friday → Monday


def test_configured_holidays_and_make_up_days_win_over_the_weekday_guess() -> None:
    # 2031 is unknown to the package: New Year's Day (Wednesday) off, Sunday 2031-01-05 a make-up workday
    cal = WorkCalendar.of(holidays=[date(2031, 1, 1)], workdays=[date(2031, 1, 5)])
    assert not cal.is_workday(date(2031, 1, 1))
    assert cal.is_workday(date(2031, 1, 5))
    assert cal.add_working_days(date(2030, 12, 31), 1) == date(2031, 1, 2)
    assert cal.add_working_days(date(2031, 1, 3), 1) == date(2031, 1, 5)
    assert cal.subtract_working_days(date(2031, 1, 2), 1) == date(2030, 12, 31)


def test_configured_days_override_the_package_too() -> None:
    cal = WorkCalendar.of(holidays=[date(2026, 12, 1)])  # a Tuesday the package counts as a working day
    assert OFFICIAL.is_workday(date(2026, 12, 1))
    assert not cal.is_workday(date(2026, 12, 1))


def test_unknown_years_are_named_ahead_of_time_until_configured() -> None:
    assert OFFICIAL.unknown_years(date(2030, 12, 1)) == [2030, 2031]
    assert WorkCalendar.of(holidays=[date(2031, 1, 1)]).unknown_years(date(2030, 12, 20), ahead_days=30) == [2030]
    assert OFFICIAL.unknown_years(date(2026, 6, 1)) == []


def test_a_day_both_off_and_on_is_refused_in_config() -> None:
    from pydantic import ValidationError

    from bot.config import DeadlineConfig

    DeadlineConfig(holidays=[date(2031, 1, 1)], workdays=[date(2031, 1, 5)])
    with pytest.raises(ValidationError, match="2031-01-01"):
        DeadlineConfig(holidays=[date(2031, 1, 1)], workdays=[date(2031, 1, 1)])


@given(st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 12, 20)), st.integers(min_value=1, max_value=20))
def test_n_working_days_later_lands_on_a_working_day_after_exactly_n(start: date, n: int) -> None:
    end = OFFICIAL.add_working_days(start, n)
    assert OFFICIAL.is_workday(end)
    assert OFFICIAL.subtract_working_days(end, n) <= start
    between = [start.fromordinal(o) for o in range(start.toordinal() + 1, end.toordinal() + 1)]
    assert sum(OFFICIAL.is_workday(d) for d in between) == n


@pytest.mark.parametrize(
    ("text", "ticket", "action", "rest"),
    [
        ("#12 已联系水厂,正在抢修", 12, Action.PROGRESS, "已联系水厂,正在抢修"),
        ("＃１２ 受理", 12, Action.ACCEPT, "受理"),
        ("#3 办结 管道已修好", 3, Action.RESOLVE, "办结 管道已修好"),
        ("#3已修好", 3, Action.RESOLVE, "已修好"),
        ("#7 延期 需要更换管道,申请延期5个工作日", 7, Action.EXTEND, "延期 需要更换管道,申请延期5个工作日"),
        ("#7 转镇 需要镇里协调", 7, Action.ESCALATE, "转镇 需要镇里协调"),
        ("#7 上报县里", 7, Action.ESCALATE, "上报县里"),
    ],
)
def test_commands(text: str, ticket: int, action: Action, rest: str) -> None:
    command = parse_command(text)
    assert command is not None
    assert (command.ticket_id, command.action, command.text) == (ticket, action, rest)


def test_no_ticket_number_is_no_command() -> None:
    assert parse_command("已联系水厂") is None
    assert ticket_refs("工单#5和#6") == [5, 6]


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("满意", Rating.SATISFIED),
        ("非常满意,谢谢书记", Rating.SATISFIED),
        ("#1 满意", Rating.SATISFIED),
        ("基本满意", Rating.BASICALLY_SATISFIED),
        ("不满意,还是没水", Rating.UNSATISFIED),
        ("很不满意", Rating.UNSATISFIED),
        ("5星", Rating.SATISFIED),
        ("★★★", Rating.BASICALLY_SATISFIED),
        ("#1 2", Rating.UNSATISFIED),
        ("打三分", Rating.BASICALLY_SATISFIED),
        ("还是没水", None),
        ("希望村里尽快把路修好,让群众满意,我们这边的路坑坑洼洼的已经很久了大家都有意见", None),
    ],
)
def test_ratings(text: str, rating: Rating | None) -> None:
    assert parse_rating(text) == rating


def test_requested_days() -> None:
    assert requested_days("申请延期5个工作日", 3) == 5
    assert requested_days("延期三天", 3) == 3
    assert requested_days("延期十二个工作日", 3) == 12
    assert requested_days("同意延期", 7) == 7


def test_merging_same_place_or_object_never_different_places_or_objects() -> None:
    assert places("石桥村张湾组连续三天停水") == {"张湾组"}
    assert places("2组停电") == places("二组停电") == {"2组"}
    assert places("我们组没水") == set()
    assert same_problem("张湾组停水三天了", {"停水"}, "我们张湾组自来水一直没有", {"自来水"}, threshold=0.3)
    assert same_problem("停水三天了", {"停水", "三天"}, "家里停水好几天了", {"停水", "家里"}, threshold=0.3)
    assert not same_problem("张湾组停水了", {"停水"}, "李庄组停水了", {"停水"}, threshold=0.3)
    assert not same_problem("村口路塌了", {"村口", "塌"}, "桥上护栏断了", {"护栏", "桥"}, threshold=0.3)
    # the cases: one category, different problems
    assert not same_problem("学校的栏杆松了很危险", set(), "路边电线杆歪了快倒了", set(), threshold=0.3)
    assert not same_problem("2组停电了", set(), "村口路灯坏了", set(), threshold=0.3)
    assert objects("小学门口那根电线杆斜得厉害") == objects("电杆倾斜很危险") == {"pole"}


def test_merge_decision_on_the_labelled_pairs() -> None:
    """Precision of "same" ≥ 0.95 and recall ≥ 0.85 on tests/data/merge_pairs.jsonl (BENCHMARKS.md)."""
    from benchmarks.bench_merge import evaluate

    result = evaluate(Path(__file__).parents[1] / "data" / "merge_pairs.jsonl", threshold=30)
    assert result["pairs"] >= 150
    assert result["precision"] >= 0.95 and result["recall"] >= 0.85, result["mistakes"]


def test_merge_decision_on_the_holdouts_in_regional_voices() -> None:
    """The sets never tuned on (BENCHMARKS.md): together precision of "same" ≥ 0.95, recall ≥ 0.85."""
    from benchmarks.bench_merge import evaluate

    data = Path(__file__).parents[1] / "data"
    tp = fp = fn = 0
    for name in ("merge_pairs_holdout.jsonl", "merge_pairs_holdout2.jsonl", "merge_pairs_sealed.jsonl"):
        result = evaluate(data / name, threshold=30)
        fp += result["false_merges"]
        fn += result["missed_merges"]
        tp += result["same"] - result["missed_merges"]
    assert tp / (tp + fp) >= 0.95 and tp / (tp + fn) >= 0.85, (tp, fp, fn)
