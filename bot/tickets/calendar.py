"""Working days on the official Chinese calendar (holidays and 调休 make-up workdays).

The day a report arrives is not counted; a deadline is the end of the working day (17:30 by default) of
the N-th working day after it. Years the calendar package does not know yet fall back to Monday–Friday,
logged once, so a bot running into a new year keeps counting instead of failing.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache

import chinese_calendar

log = logging.getLogger(__name__)
_warned: set[int] = set()


@lru_cache(maxsize=4096)
def is_workday(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        if day.year not in _warned:
            _warned.add(day.year)
            log.warning("no official calendar for %d; counting Monday to Friday as working days", day.year)
        return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself is not counted)."""
    day = start
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_workday(day):
            counted += 1
    return day


def subtract_working_days(end: date, days: int) -> date:
    """The working day ``days`` working days before ``end``."""
    day = end
    counted = 0
    while counted < days:
        day -= timedelta(days=1)
        if is_workday(day):
            counted += 1
    return day


def end_of_day(day: date, at: time, tz: tzinfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz)


def deadline_after(received: datetime, working_days: int, *, at: time, tz: tzinfo) -> datetime:
    """The deadline of something received at ``received``: end of the N-th working day after that day."""
    local = received.astimezone(tz)
    return end_of_day(add_working_days(local.date(), working_days), at, tz)


def extend_deadline(deadline: datetime, working_days: int, *, at: time, tz: tzinfo) -> datetime:
    """A deadline moved on by ``working_days`` working days (an approved extension)."""
    return end_of_day(add_working_days(deadline.astimezone(tz).date(), working_days), at, tz)


def format_deadline(moment: datetime, tz: tzinfo) -> str:
    local = moment.astimezone(tz)
    return f"{local.month}月{local.day}日{local:%H:%M}"
