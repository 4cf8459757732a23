"""Working days on the official Chinese calendar (holidays and 调休 make-up workdays).

The day a report arrives is not counted; a deadline is the end of the working day (17:30 by default) of
the N-th working day after it.

The ``chinesecalendar`` package knows each year's State Council arrangement only once a release carries it
(1.11.0 stops at 2026), while the arrangement for the next year is published each November. A deployment
therefore adds what the package lacks in ``[deadlines] holidays`` / ``workdays``; those dates win over the
package. A year that neither knows falls back to Monday–Friday, logged once, so a bot running into a new
year keeps counting instead of failing; ``unknown_years`` lets the health check say so ahead of time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache

import chinese_calendar

log = logging.getLogger(__name__)
_warned: set[int] = set()


@lru_cache(maxsize=8192)
def _official(day: date) -> bool | None:
    """The package's answer, or None for a year it does not know."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


@dataclass(frozen=True, slots=True)
class WorkCalendar:
    """The official calendar plus a deployment's own days off (``holidays``) and make-up workdays."""

    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def of(cls, holidays: Iterable[date] = (), workdays: Iterable[date] = ()) -> WorkCalendar:
        return cls(frozenset(holidays), frozenset(workdays))

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        official = _official(day)
        if official is not None:
            return official
        if day.year not in _warned and not self._configures(day.year):
            _warned.add(day.year)
            log.warning(
                "no official calendar for %d; counting Monday to Friday as working days "
                "(add that year's holidays to [deadlines] holidays/workdays)",
                day.year,
            )
        return day.weekday() < 5

    def _configures(self, year: int) -> bool:
        return any(d.year == year for d in self.holidays | self.workdays)

    def knows(self, year: int) -> bool:
        """Whether the year's holidays are known, from the package or from the configuration."""
        return _official(date(year, 6, 1)) is not None or self._configures(year)

    def unknown_years(self, today: date, *, ahead_days: int = 60) -> list[int]:
        """Years from today to ``ahead_days`` on whose holidays deadlines would be guessed (Monday–Friday)."""
        years = sorted({today.year, (today + timedelta(days=ahead_days)).year})
        return [year for year in years if not self.knows(year)]

    def add_working_days(self, start: date, days: int) -> date:
        """The ``days``-th working day after ``start`` (``start`` itself is not counted)."""
        day = start
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        return day

    def subtract_working_days(self, end: date, days: int) -> date:
        """The working day ``days`` working days before ``end``."""
        day = end
        counted = 0
        while counted < days:
            day -= timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        return day

    def deadline_after(self, received: datetime, working_days: int, *, at: time, tz: tzinfo) -> datetime:
        """The deadline of something received at ``received``: end of the N-th working day after that day."""
        local = received.astimezone(tz)
        return end_of_day(self.add_working_days(local.date(), working_days), at, tz)

    def extend_deadline(self, deadline: datetime, working_days: int, *, at: time, tz: tzinfo) -> datetime:
        """A deadline moved on by ``working_days`` working days (an approved extension)."""
        return end_of_day(self.add_working_days(deadline.astimezone(tz).date(), working_days), at, tz)


OFFICIAL = WorkCalendar()
"""The package's calendar with nothing added (tests and benchmarks; the bot uses its configured one)."""


def end_of_day(day: date, at: time, tz: tzinfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz)


def format_deadline(moment: datetime, tz: tzinfo) -> str:
    local = moment.astimezone(tz)
    return f"{local.month}月{local.day}日{local:%H:%M}"
