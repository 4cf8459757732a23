"""A recording fake adapter for unit tests (the real Wechaty service is tested in tests/adapters)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.adapters.base import AdapterHealth, AdapterState, MessageHandler
from bot.messages import IncomingMessage, OutgoingMessage, RoomMember


@dataclass
class RecordingAdapter:
    account: str = "demo"
    sent: list[OutgoingMessage] = field(default_factory=list)
    fail_next: int = 0
    downloads: dict[str, bytes] = field(default_factory=dict)
    handler: MessageHandler | None = None

    async def start(self, on_message: MessageHandler) -> None:
        self.handler = on_message

    async def stop(self) -> None:
        self.handler = None

    async def send(self, message: OutgoingMessage) -> str | None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("stream lost")
        self.sent.append(message)
        return f"out-{len(self.sent)}"

    async def download(self, message: IncomingMessage) -> bytes:
        if message.attachment_ref in self.downloads:
            return self.downloads[message.attachment_ref]
        raise FileNotFoundError(message.attachment_ref)

    async def room_members(self, group_id: str) -> list[RoomMember]:
        return []

    def health(self) -> AdapterHealth:
        return AdapterHealth(self.account, "fake", AdapterState.CONNECTED, datetime.now(UTC))
