"""Hands received messages to the pipeline one chat at a time, in the order they arrived; chats in parallel.

Why: an adapter receives a group's messages in order, but handling each as its own task lets a later one
overtake an earlier one (a reply stored before the question, "满意" before the ticket it rates). Here each
chat has a queue and at most one message of it is being handled; different chats go on side by side, a
few at a time, so one busy group never holds up the others and the database pool is not exhausted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from bot.messages import IncomingMessage

log = logging.getLogger(__name__)

Handle = Callable[[IncomingMessage], Awaitable[object]]
ChatKey = tuple[str, str]


def chat_key(incoming: IncomingMessage) -> ChatKey:
    """Which conversation a message belongs to: its group, or the private chat with its sender."""
    if incoming.group_id is not None:
        return incoming.account, f"group:{incoming.group_id}"
    return incoming.account, f"private:{incoming.sender_id}"


class ChatDispatcher:
    """``submit`` queues a message and returns at once; a worker per busy chat handles its queue in order."""

    def __init__(self, handle: Handle, *, parallel: int = 8) -> None:
        self._handle = handle
        self._slots = asyncio.Semaphore(parallel)
        self._queues: dict[ChatKey, deque[IncomingMessage]] = {}
        self._workers: dict[ChatKey, asyncio.Task[None]] = {}
        self._closed = False

    async def __call__(self, incoming: IncomingMessage) -> None:
        """The adapters' ``on_message``."""
        self.submit(incoming)

    def submit(self, incoming: IncomingMessage) -> None:
        if self._closed:
            log.warning("stopping: message %s from %s not taken", incoming.platform_id, incoming.sender_name)
            return
        key = chat_key(incoming)
        self._queues.setdefault(key, deque()).append(incoming)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key), name=f"chat {key[0]} {key[1]}")

    @property
    def pending(self) -> int:
        """Messages received and not yet handled (the one being handled included)."""
        return sum(len(queue) for queue in self._queues.values())

    async def _work(self, key: ChatKey) -> None:
        queue = self._queues[key]
        try:
            while queue:
                incoming = queue[0]
                async with self._slots:
                    try:
                        await self._handle(incoming)
                    except Exception:  # the pipeline has its own boundary; this one keeps the chat going
                        log.exception("handling message %s in %s failed", incoming.platform_id, key[1])
                queue.popleft()
        finally:
            # No await between the loop's last check and here: a message submitted meanwhile is impossible,
            # so an empty queue really is done with, and a non-empty one means the worker was cancelled.
            del self._workers[key]
            if not queue:
                del self._queues[key]

    async def drained(self) -> None:
        """Wait until every message received so far has been handled."""
        while self._workers:
            await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def close(self, *, grace: float = 5.0) -> int:
        """Take no more messages; give those received ``grace`` seconds to be handled, then cancel the rest
        (a cancelled message's transaction is rolled back). Returns how many were left unhandled."""
        self._closed = True
        workers = list(self._workers.values())
        if workers:
            _done, late = await asyncio.wait(workers, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._workers.clear()  # a task cancelled before it ran never reached its own clean-up
        left = self.pending
        if left:
            log.warning("stopping: %d received messages were not handled in %.0f s", left, grace)
        self._queues.clear()
        return left
