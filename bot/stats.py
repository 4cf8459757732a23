"""Per-minute counters logged at INFO: an operator sees the bot is alive without a line per message."""

from __future__ import annotations

import logging
import time
from collections import Counter

log = logging.getLogger("villagewatch.stats")


class Stats:
    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self.total: Counter[str] = Counter()
        self._window: Counter[str] = Counter()
        self._window_start = time.monotonic()

    def count(self, key: str, amount: int = 1) -> None:
        self.total[key] += amount
        self._window[key] += amount
        if time.monotonic() - self._window_start >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self._window:
            summary = ", ".join(f"{k}={v}" for k, v in sorted(self._window.items()))
            log.info("last %.0fs: %s", time.monotonic() - self._window_start, summary)
        self._window.clear()
        self._window_start = time.monotonic()
