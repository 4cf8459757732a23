"""The adapter protocol every platform connection implements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from bot.messages import IncomingMessage, OutgoingMessage, RoomMember

MessageHandler = Callable[[IncomingMessage], Awaitable[object]]
"""Called for every message received; what it returns is ignored. It may return only once the message is
committed (the simulator waits for that before it answers its client)."""


class AdapterState(StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AdapterHealth:
    account: str
    adapter: str
    state: AdapterState
    since: datetime
    detail: str = ""


class AdapterError(Exception):
    """A platform operation failed; the message says which account and what."""


class Adapter(Protocol):
    """A connection to one bot account.

    ``start`` returns once the adapter is running (it supervises its own connection in the background)
    and calls ``on_message`` for every message; ``send`` returns the platform message id if known.
    """

    account: str

    async def start(self, on_message: MessageHandler) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, message: OutgoingMessage) -> str | None: ...

    async def download(self, message: IncomingMessage) -> bytes: ...

    async def room_members(self, group_id: str) -> list[RoomMember]: ...

    def health(self) -> AdapterHealth: ...
