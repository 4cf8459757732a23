"""Platform-neutral message types.

Every adapter converts its platform's objects into these at once, so nothing past the adapter
knows whether a message came from WeChat, the simulator or a replay script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class MessageKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VOICE = "voice"
    LINK = "link"
    FILE = "file"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class LinkCard:
    """A shared article, link or mini-program as the platform describes it."""

    title: str = ""
    description: str = ""
    url: str = ""
    mini_program: bool = False

    @property
    def text(self) -> str:
        """What the classifier reads: the title and the description (never the address)."""
        return "\n".join(part for part in (self.title.strip(), self.description.strip()) if part)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One message the bot received, in a group (``group_id`` set) or privately.

    ``platform_id`` is the platform's message id: storing is idempotent on (account, platform_id), so a
    message delivered twice (reconnect, replayed history) is stored and handled once.
    ``attachment_ref`` is an adapter-specific handle for ``Adapter.download``; ``media`` carries the bytes
    when the adapter already has them (simulator upload, replay file).
    """

    platform_id: str
    account: str
    at: datetime
    kind: MessageKind
    text: str
    sender_id: str
    sender_name: str
    group_id: str | None = None
    group_topic: str | None = None
    mention_ids: tuple[str, ...] = ()
    mention_names: tuple[str, ...] = ()
    quote_text: str | None = None
    attachment_ref: str | None = None
    attachment_name: str | None = None
    media: bytes | None = field(default=None, repr=False)
    raw: str | None = field(default=None, repr=False)
    card: LinkCard | None = None
    """A link or mini-program's card (kind LINK); its text is the message's text."""

    @property
    def is_private(self) -> bool:
        return self.group_id is None


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message the bot sends: to a room (``is_group``) or a contact, by platform id.

    ``mention_ids`` are platform contact ids to @; ``mention_names`` the display names written into the
    text (``@李书记``) so the mention reads right on platforms that only deliver text.
    """

    account: str
    chat_id: str
    is_group: bool
    text: str | None = None
    image_path: str | None = None
    mention_ids: tuple[str, ...] = ()
    mention_names: tuple[str, ...] = ()
    chat_name: str = ""
    """What a person calls the chat: the group's name, or ``private:<name>``; for logs and transcripts."""
    dedupe_key: str | None = None
    """The outbox row's key; an adapter that can make sending idempotent (the simulator) uses it."""
    queued_at: datetime | None = None
    """When the bot decided to say it; a replay's transcript shows this time."""


@dataclass(frozen=True, slots=True)
class RoomMember:
    platform_id: str
    name: str
