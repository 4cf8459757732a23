"""A bounded pool of OCR worker processes, each image bounded in time.

Each worker is a process of its own (a one-process executor, started with ``spawn``: never a fork of the
bot's threads and connections). At most ``workers`` images are read at once; the rest wait their turn. An
image still being read after ``timeout`` seconds is given up: its worker is killed and a fresh one takes its
place, so a pathological image can cost one worker's time, never the bot's. A worker that dies (out of
memory, a crash in native code) fails only the image it was reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from bot.ocr import reader
from bot.ocr.reader import Reading

log = logging.getLogger(__name__)


class _Slot:
    def __init__(self, *, memory_mb: int) -> None:
        self._memory_mb = memory_mb
        self.executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=reader.init_worker,
            initargs=(self._memory_mb,),
        )

    def replace(self) -> None:
        """Kill the worker (it may be stuck in native code) and start a fresh one."""
        old, self.executor = self.executor, self._new()
        # ProcessPoolExecutor cannot cancel a running call: kill its process, then let it go.
        for process in list(getattr(old, "_processes", {}).values()):
            with contextlib.suppress(OSError, ValueError):
                process.kill()
        old.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        for process in list(getattr(self.executor, "_processes", {}).values()):
            with contextlib.suppress(OSError, ValueError):
                process.kill()
        self.executor.shutdown(wait=False, cancel_futures=True)


class OcrPool:
    def __init__(self, *, workers: int, timeout: float, max_pixels: int, max_side: int, memory_mb: int) -> None:
        self.workers = workers
        self.timeout = timeout
        self._max_pixels = max_pixels
        self._max_side = max_side
        self._memory_mb = memory_mb
        self._free: asyncio.Queue[_Slot] | None = None
        self._slots: list[_Slot] = []

    def _ensure(self) -> asyncio.Queue[_Slot]:
        if self._free is None:
            self._free = asyncio.Queue()
            for _ in range(self.workers):
                slot = _Slot(memory_mb=self._memory_mb)
                self._slots.append(slot)
                self._free.put_nowait(slot)
        return self._free

    async def warm_up(self) -> None:
        """Start every worker and load its models, so the first image does not wait for them."""
        free = self._ensure()
        taken = [await free.get() for _ in range(self.workers)]
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(
                *(asyncio.wait_for(loop.run_in_executor(s.executor, reader.warm_up), self.timeout * 2) for s in taken),
                return_exceptions=True,
            )
        finally:
            for slot in taken:
                free.put_nowait(slot)

    async def read(self, data: bytes) -> Reading:
        """The text of one image, read in a worker; never raises for a bad image (the Reading says why)."""
        free = self._ensure()
        slot = await free.get()
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(
                slot.executor,
                _call,
                data,
                self._max_pixels,
                self._max_side,
            )
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            slot.replace()
            return Reading(reader.FAILED, error=reader.TIMEOUT, detail=f"over {self.timeout:g} s")
        except BrokenProcessPool as exc:
            slot.replace()
            return Reading(reader.FAILED, error=reader.CRASHED, detail=f"worker died: {exc}")
        except MemoryError:
            slot.replace()
            return Reading(reader.FAILED, error=reader.OUT_OF_MEMORY, detail="result")
        except asyncio.CancelledError:
            slot.replace()  # stopping: the worker may be mid-image; the image stays pending in the database
            raise
        except Exception as exc:  # an error inside the worker that read_image did not turn into a Reading
            log.warning("OCR worker raised %s: %s", type(exc).__name__, exc)
            return Reading(reader.FAILED, error=reader.CRASHED, detail=f"{type(exc).__name__}: {exc}")
        finally:
            free.put_nowait(slot)

    def close(self) -> None:
        for slot in self._slots:
            slot.close()
        self._slots.clear()
        self._free = None


def _call(data: bytes, max_pixels: int, max_side: int) -> Reading:
    return reader.read_image(data, max_pixels=max_pixels, max_side=max_side)
