"""The sent-keys journal: what this account already sent, by outbox dedupe key, across restarts.

The outbox marks a row sent right after the adapter returned; a kill -9 between the two leaves the row
unmarked, and the next process sends it again with the same dedupe key. The puppet protocol cannot say
what a room already holds (there is no message search), so the adapter keeps its own record: one small
append-only JSON-lines file per account.

Each part of a row (its text, its image) is journalled twice: ``sending`` before the call, fsync'd, so a
crash during the call is known; ``sent`` with the platform id after it, fsync'd, before the outbox can mark
the row. On loading, a part's last record wins:

* ``sent`` — delivered: a re-send of it is dropped and the id of the first send returned;
* ``sending`` with nothing after — in doubt: the process died during the call, after the request may have
  left. It is dropped too and a warning names it (the request had almost always gone out by then: a kill
  before it left falls in the microseconds between the fsync and the write);
* ``failed`` — the call raised: the outbox retries it and it is sent again.

The file stays bounded: it keeps the last ``keep`` parts (a re-send only ever follows a crash, so only the
most recent rows matter) and is rewritten whole, atomically, when it grows past twice that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import OrderedDict
from enum import StrEnum
from pathlib import Path

KEEP = 5000
"""Parts remembered per account."""


class PartState(StrEnum):
    NEW = "new"
    SENT = "sent"
    IN_DOUBT = "in_doubt"


class SentJournal:
    """Per-account record of sent parts. Without a ``path`` it only remembers within this process."""

    def __init__(self, path: Path | None, *, log: logging.Logger, keep: int = KEEP) -> None:
        self.path = path
        self._log = log
        self._keep = max(1, keep)
        self._parts: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
        """part key → (record state, platform id) of its last record."""
        self._lines = 0
        self._lock = asyncio.Lock()
        self._load()

    # ------------------------------------------------------------------ reading

    def state(self, part: str) -> tuple[PartState, str | None]:
        record = self._parts.get(part)
        if record is None or record[0] == "failed":
            return PartState.NEW, None
        if record[0] == "sent":
            return PartState.SENT, record[1]
        return PartState.IN_DOUBT, None

    def __len__(self) -> int:
        return len(self._parts)

    def _load(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        self._cut_torn_tail(self.path)
        with self.path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                self._lines += 1
                try:
                    record = json.loads(line)
                    part, status = str(record["k"]), str(record["s"])
                    message_id = record.get("id")
                except (ValueError, KeyError, TypeError):
                    # a line cut short by a crash: it was the last one written, and nothing was sent after it
                    self._log.warning("%s:%d: unreadable sent-journal line skipped", self.path, number)
                    continue
                self._remember(part, status, None if message_id is None else str(message_id))

    def _cut_torn_tail(self, path: Path) -> None:
        """A crash mid-write leaves a last line without its newline: cut it off, or the next record would be
        glued to it and lost too."""
        data = path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        self._log.warning("%s: a record cut short by a crash dropped: %r", path, data[keep:][:200])
        with path.open("r+b") as out:
            out.truncate(keep)
            os.fsync(out.fileno())

    def _remember(self, part: str, status: str, message_id: str | None) -> None:
        self._parts[part] = (status, message_id)
        self._parts.move_to_end(part)
        while len(self._parts) > self._keep:
            self._parts.popitem(last=False)

    # ------------------------------------------------------------------ writing

    async def sending(self, part: str) -> None:
        await self._append(part, "sending", None)

    async def sent(self, part: str, message_id: str | None) -> None:
        await self._append(part, "sent", message_id)

    async def failed(self, part: str) -> None:
        await self._append(part, "failed", None)

    async def _append(self, part: str, status: str, message_id: str | None) -> None:
        if self.path is None:
            self._remember(part, status, message_id)
            return
        line = self._line(part, status, message_id)
        async with self._lock:
            # fsync off the event loop: the bot shares it, and a busy disk can take a while. Remembered
            # only once written: a record that failed to write (disk full) must not count.
            await asyncio.to_thread(self._write, line)
            self._remember(part, status, message_id)
            self._lines += 1
            if self._lines > 2 * self._keep:
                snapshot = [self._line(part, status, mid) for part, (status, mid) in self._parts.items()]
                await asyncio.to_thread(self._compact, snapshot)
                self._lines = len(snapshot)

    @staticmethod
    def _line(part: str, status: str, message_id: str | None) -> str:
        record: dict[str, str] = {"k": part, "s": status}
        if message_id is not None:
            record["id"] = message_id
        return json.dumps(record, ensure_ascii=False) + "\n"

    def _write(self, line: str) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def _compact(self, lines: list[str]) -> None:
        """Rewrite the file with only the parts remembered: temp file, fsync, rename, fsync the folder."""
        assert self.path is not None
        temp = self.path.with_name(self.path.name + ".tmp")
        with temp.open("w", encoding="utf-8") as out:
            out.writelines(lines)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.path)
        with contextlib.suppress(OSError):
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
