"""Login throttling: a growing delay per account and address, decided atomically across processes.

Each attempt is first recorded (an audit row ``login_attempt``, committed), then it looks at the other
attempts of the window; only then is the password checked, and the row settled as ``login``,
``login_failed`` or ``login_throttled``. Whichever of two concurrent attempts commits second sees the
first, so concurrent wrong passwords cannot get more checks than the limit, across processes too.

Past the limit an attempt is not refused for good but must wait a delay that doubles with each further
failure (1 s, 2 s, 4 s … up to the window): the real owner gets in after the delay, while a guesser
gets a handful of tries per window. The limit counts per account and address, per address (one machine
trying many accounts) and per account (many machines trying one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

COUNTED = ("login_attempt", "login_failed")
"""Attempts still being checked count as failures until settled: that is what makes concurrency safe."""


@dataclass(frozen=True)
class Limits:
    per_pair: int = 5
    per_source: int = 20
    per_user: int = 20
    window: timedelta = timedelta(minutes=15)
    first_delay: timedelta = timedelta(seconds=1)


def _delay(count: int, limit: int, limits: Limits) -> timedelta:
    excess = count - limit
    if excess < 0:
        return timedelta(0)
    seconds = limits.first_delay.total_seconds() * (2 ** min(excess, 30))
    return min(timedelta(seconds=seconds), limits.window)


def wait_needed(
    rows: Iterable[tuple[str, str, datetime]], *, username: str, source: str, now: datetime, limits: Limits
) -> timedelta:
    """How long this attempt must wait, given the other counted attempts ``(username, source, at)``."""
    pair: list[datetime] = []
    by_source: list[datetime] = []
    by_user: list[datetime] = []
    for user, where, at in rows:
        if user == username and where == source:
            pair.append(at)
        if where == source:
            by_source.append(at)
        if user == username:
            by_user.append(at)
    wait = timedelta(0)
    for times, limit in ((pair, limits.per_pair), (by_source, limits.per_source), (by_user, limits.per_user)):
        if len(times) >= limit:
            ready = max(times) + _delay(len(times), limit, limits)
            wait = max(wait, ready - now)
    return wait
