"""Clocks: the wall clock for the live service, a simulated one that only replay scripts move."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    tz: tzinfo

    def now(self) -> datetime: ...


class SystemClock:
    def __init__(self, tz: tzinfo = CHINA) -> None:
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(self.tz)


class SimulatedClock:
    """Moves only when told; never backwards, so jobs and deadlines see time as a replay script wrote it."""

    def __init__(self, start: datetime, tz: tzinfo = CHINA) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs an aware datetime")
        self.tz = tz
        self._now = start.astimezone(tz)

    def now(self) -> datetime:
        return self._now

    def advance_to(self, moment: datetime) -> None:
        moment = moment.astimezone(self.tz)
        if moment > self._now:
            self._now = moment

    def rewind_to(self, moment: datetime) -> None:
        """Only for re-handling messages whose transaction was rolled back, at their own times."""
        self._now = moment.astimezone(self.tz)
