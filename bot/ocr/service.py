"""The image reader: every image message the ingest stored is read in the OCR pool, after the message was
stored and acknowledged, and its text handed back to the ingest to be classified (``Ingest.handle_image_text``).

The queue is the ``image_texts`` table: a row is written ``pending`` with its message, so an image accepted but
not yet read when the process died is read after the restart. Each process reads the images of its own
accounts (several bot processes on one PostgreSQL never read the same one); a row leaves ``pending`` in the
transaction that classifies its text, so it is classified once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from bot.clock import Clock
from bot.ingest import ImageInbox, Ingest
from bot.media import MAX_IMAGE_BYTES, MediaStore
from bot.ocr import reader
from bot.ocr.pool import OcrPool
from bot.ocr.reader import Reading
from storage.engine import SessionFactory
from storage.repos import image_texts as images_repo
from storage.repos import messages as messages_repo

log = logging.getLogger(__name__)

POLL_SECONDS = 30.0
"""How often the live reader looks for pending images besides being woken (rows left by another run)."""


class ImageReader:
    def __init__(
        self,
        *,
        pool: OcrPool,
        sessions: SessionFactory,
        ingest: Ingest,
        media: MediaStore,
        inbox: ImageInbox,
        accounts: list[str],
        clock: Clock,
    ) -> None:
        self.pool = pool
        self._sessions = sessions
        self._ingest = ingest
        self._media = media
        self._inbox = inbox
        self._accounts = accounts
        self._clock = clock
        self._busy: set[int] = set()
        self._slots = asyncio.Semaphore(pool.workers)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self._inbox.enabled

    async def run(self, *, poll_seconds: float = POLL_SECONDS) -> None:
        """The live loop: read what is pending (left by a crash first), then whatever the ingest rings for."""
        if not self.enabled:
            return
        try:
            while True:
                self._inbox.ring.clear()
                await self._dispatch_pending()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._inbox.ring.wait(), poll_seconds)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _dispatch_pending(self) -> None:
        after = 0
        while True:
            async with self._sessions() as session:
                ids = await images_repo.pending_ids(session, accounts=self._accounts, after_id=after)
            if not ids:
                return
            for message_id in ids:
                after = message_id
                if message_id in self._busy:
                    continue
                await self._slots.acquire()  # at most ``workers`` images in memory and in the pool at once
                self._busy.add(message_id)
                task = asyncio.create_task(self._read_then_release(message_id), name=f"ocr-{message_id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _read_then_release(self, message_id: int) -> None:
        try:
            await self.read_one(message_id)
        except Exception:
            log.exception("reading image %s failed; it stays pending", message_id)
        finally:
            self._busy.discard(message_id)
            self._slots.release()

    async def drain(self) -> int:
        """Read every pending image now, one after another in the order they came (a replay, an import:
        the transcript must not depend on which image a worker finished first). Returns how many."""
        if not self.enabled:
            return 0
        count = 0
        after = 0
        while True:
            async with self._sessions() as session:
                ids = await images_repo.pending_ids(session, accounts=self._accounts, after_id=after)
            if not ids:
                return count
            for message_id in ids:
                after = message_id
                await self.read_one(message_id)
                count += 1

    async def read_one(self, message_id: int) -> Reading:
        """Read one stored image and hand its text to the ingest (which records and classifies it)."""
        async with self._sessions() as session:
            message = await messages_repo.get_message(session, message_id)
        path = self._media.path(message.media_path) if message is not None and message.media_path else None
        reading = await self._read_file(path)
        if reading.status != reader.DONE:
            self._ingest.stats.count("image_failed")
            log.warning(
                "image of message %s could not be read (%s: %s); kept, marked",
                message_id,
                reading.error,
                reading.detail,
            )
        await self._ingest.handle_image_text(message_id, status=reading.status, text=reading.text, error=reading.error)
        return reading

    async def _read_file(self, path: Path | None) -> Reading:
        if path is None:
            return Reading(reader.FAILED, error=reader.NO_FILE, detail="no stored file")
        try:
            size = path.stat().st_size
            if size > MAX_IMAGE_BYTES:
                return Reading(reader.FAILED, error=reader.TOO_LARGE, detail=f"{size} bytes")
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            return Reading(reader.FAILED, error=reader.NO_FILE, detail=str(exc))
        return await self.pool.read(data)

    def close(self) -> None:
        self.pool.close()
