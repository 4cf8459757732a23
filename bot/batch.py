"""Runs of messages handled in one transaction: how `replay` and `import` go through history quickly.

The live bot commits every message on its own, so a crash loses nothing; a replay or an import can be run
again, so it commits a run of messages at once, and the chat among them is stored many rows to a
statement (see ``Batch`` in ``bot.ingest``). If anything in a run fails, the run is rolled back and its
messages are handled again one by one through the live bot's error boundary, so one bad message never
takes its neighbours with it: the others are stored and handled, the bad one is kept raw.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock, SimulatedClock
from bot.ingest import Batch, Downloader, Ingest
from bot.messages import IncomingMessage
from storage.engine import SessionFactory

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[object]]


class BatchRunner:
    """Collects messages into runs; a run ends after ``max_run`` messages or when the caller flushes
    (before anything that must see the run committed: a roster change, a scheduled job, the end)."""

    def __init__(
        self,
        *,
        ingest: Ingest,
        sessions: SessionFactory,
        clock: Clock,
        downloader: Callable[[str], Downloader | None] = lambda account: None,
        after_commit: AfterCommit | None = None,
        max_run: int = 500,
    ) -> None:
        self._ingest = ingest
        self._sessions = sessions
        self._clock = clock
        self._downloader = downloader
        self._after_commit = after_commit
        self._max_run = max_run
        self._session: AsyncSession | None = None
        self._run: list[IncomingMessage] = []
        self._batch = Batch()

    async def add(self, incoming: IncomingMessage) -> None:
        media_path = await self._ingest.prepare(incoming, download=self._downloader(incoming.account))
        if self._session is None:
            self._session = self._sessions()
        self._run.append(incoming)
        try:
            await self._ingest.process(self._session, incoming, media_path, batch=self._batch)
        except Exception:
            log.exception("message %s failed; handling its run one by one", incoming.platform_id)
            await self._one_by_one()
            return
        if len(self._run) >= self._max_run:
            await self.flush()

    async def flush(self) -> None:
        """Commit the run, then let the caller act on it (a replay sends what the bot said)."""
        if self._session is None:
            return
        session, self._session = self._session, None
        try:
            await self._ingest.store_batch(session, self._batch)
            await session.commit()
        except Exception:
            log.exception("committing a run of %d messages failed; handling it one by one", len(self._run))
            self._session = session
            await self._one_by_one()
            return
        await session.close()
        self._run.clear()
        if self._after_commit is not None:
            await self._after_commit()

    async def _one_by_one(self) -> None:
        await self._drop_session()
        self._ingest.forget_uncommitted()
        clock = self._clock
        now = clock.now()
        for incoming in self._run:
            if isinstance(clock, SimulatedClock):
                clock.rewind_to(incoming.at)
            await self._ingest.handle(incoming, download=self._downloader(incoming.account))
            if self._after_commit is not None:
                await self._after_commit()
        if isinstance(clock, SimulatedClock):
            clock.rewind_to(now)
        self._run.clear()

    async def close(self) -> None:
        """Drop an unfinished run (after an error outside it)."""
        await self._drop_session()
        self._run.clear()

    async def _drop_session(self) -> None:
        if self._session is not None:
            await self._session.rollback()
            await self._session.close()
            self._session = None
        self._batch.clear()
