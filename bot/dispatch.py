"""Hands received messages to the pipeline one chat at a time, in the order they arrived; chats in parallel.

Why: an adapter receives a group's messages in order, but handling each as its own task lets a later one
overtake an earlier one (a reply stored before the question, "满意" before the ticket it rates). Here each
chat has a queue and at most one message of it is being handled; different chats go on side by side, a
few at a time, so one busy group never holds up the others and the database pool is not exhausted.

Two ways in: ``accept`` returns once the message has been handled (its transaction committed), so an
adapter that can ask its sender to try again (the simulator's HTTP API) acknowledges only what is stored;
``__call__`` only queues it, for an adapter with nobody to acknowledge to (a Wechaty event stream).
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


class NotTaken(Exception):
    """The dispatcher is stopping (or stopped before handling it): the message was not stored."""


class ChatDispatcher:
    """``submit`` queues a message and returns at once; a worker per busy chat handles its queue in order.

    Each queued message has a future that ends when its handling has (with the handler's result, or the
    error that escaped it, or ``NotTaken`` when a stop cancelled it).
    """

    def __init__(self, handle: Handle, *, parallel: int = 8) -> None:
        self._handle = handle
        self._slots = asyncio.Semaphore(parallel)
        self._queues: dict[ChatKey, deque[tuple[IncomingMessage, asyncio.Future[object]]]] = {}
        self._workers: dict[ChatKey, asyncio.Task[None]] = {}
        self._closed = False

    async def __call__(self, incoming: IncomingMessage) -> None:
        """An adapter's ``on_message`` that only queues (nobody to acknowledge to)."""
        self.submit(incoming)

    async def accept(self, incoming: IncomingMessage) -> object:
        """An adapter's ``on_message`` that returns once the message is handled and committed.

        Queued at once (so arrival order is kept), then awaited; raises ``NotTaken`` when stopping, or the
        handler's error. Cancelling the caller (a dropped HTTP request) leaves the message queued.
        """
        return await asyncio.shield(self.submit(incoming))

    def submit(self, incoming: IncomingMessage) -> asyncio.Future[object]:
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self._closed:
            log.warning("stopping: message %s from %s not taken", incoming.platform_id, incoming.sender_name)
            done.set_exception(NotTaken(incoming.platform_id))
            done.exception()  # retrieved: a caller that never awaits it logs nothing
            return done
        key = chat_key(incoming)
        self._queues.setdefault(key, deque()).append((incoming, done))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key), name=f"chat {key[0]} {key[1]}")
        return done

    @property
    def pending(self) -> int:
        """Messages received and not yet handled (the one being handled included)."""
        return sum(len(queue) for queue in self._queues.values())

    async def _work(self, key: ChatKey) -> None:
        queue = self._queues[key]
        try:
            while queue:
                incoming, done = queue[0]
                async with self._slots:
                    try:
                        result = await self._handle(incoming)
                    except Exception as exc:  # the pipeline has its own boundary; this one keeps the chat going
                        log.exception("handling message %s in %s failed", incoming.platform_id, key[1])
                        _settle(done, exc)
                    else:
                        if not done.done():
                            done.set_result(result)
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
        for queue in self._queues.values():
            for incoming, done in queue:
                _settle(done, NotTaken(incoming.platform_id))
        self._queues.clear()
        return left


def _settle(done: asyncio.Future[object], exc: BaseException) -> None:
    if not done.done():
        done.set_exception(exc)
        done.exception()  # marked retrieved: a message only queued (no one awaiting) logs nothing more
