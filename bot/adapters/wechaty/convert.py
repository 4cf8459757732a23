"""Pure conversions between Wechaty payloads and our ``bot.messages`` types (no I/O, no clock).

The adapter fetches what a message needs (its payload, the room topic, names, a link card) and hands it
here; everything that decides what the message *is* lives in these functions and is unit-tested alone.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from wechaty_grpc.wechaty import puppet as pb

from bot.adapters.wechaty.wire import Wire
from bot.messages import IncomingMessage, LinkCard, MessageKind

KINDS = {
    Wire.TEXT: MessageKind.TEXT,
    Wire.IMAGE: MessageKind.IMAGE,
    Wire.AUDIO: MessageKind.VOICE,
    Wire.URL: MessageKind.LINK,
    Wire.MINI_PROGRAM: MessageKind.LINK,
    Wire.ATTACHMENT: MessageKind.FILE,
    Wire.VIDEO: MessageKind.FILE,
}
WITH_ATTACHMENT = frozenset({MessageKind.IMAGE, MessageKind.VOICE, MessageKind.FILE})

# A quoted reply as puppets render it: 「高某林：路灯坏了」, a dashed line, then the reply.
QUOTE = re.compile(r"^「(?P<quote>.*)」\n- - - - - - - - - - - - - - -\n(?P<reply>.*)$", re.DOTALL)


def wire_type(value: int) -> Wire | None:
    try:
        return Wire(value)
    except ValueError:
        return None


def message_kind(value: int) -> MessageKind:
    """Our kind for a wire type number; unknown and unsupported types are OTHER."""
    wire = wire_type(value)
    return KINDS.get(wire, MessageKind.OTHER) if wire is not None else MessageKind.OTHER


def to_datetime(timestamp: int, *, fallback: datetime) -> datetime:
    """Puppets send milliseconds (some seconds); 0 means unknown, and ``fallback`` is used."""
    if timestamp <= 0:
        return fallback
    seconds = timestamp / 1000 if timestamp > 100_000_000_000 else float(timestamp)
    return datetime.fromtimestamp(seconds, UTC)


def split_quote(text: str) -> tuple[str | None, str]:
    """(quoted text, reply) of a quoted reply; (None, text) for anything else."""
    quoted = QUOTE.match(text)
    if quoted is None:
        return None, text
    return quoted["quote"], quoted["reply"]


def link_details(url_link: str) -> dict[str, Any] | None:
    """The JSON of a ``MessageUrl`` reply (title, description, url, …), None when it is not an object."""
    with contextlib.suppress(ValueError):
        value = json.loads(url_link)
        if isinstance(value, dict):
            return value
    return None


def link_card(details: dict[str, Any] | None, *, mini_program: bool = False) -> LinkCard | None:
    """The card of a shared link or mini-program payload (title, description, address), None without one.

    A mini-program's payload names its page ``pagePath``; its description is often empty and its title is
    what the sharer sees."""
    if not details:
        return None

    def field(*names: str) -> str:
        for name in names:
            value = details.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return ""

    card = LinkCard(
        title=field("title"),
        description=field("description", "desc"),
        url=field("url") if not mini_program else "",
        mini_program=mini_program,
    )
    return card if card.title or card.description or card.url else None


def link_text(card: LinkCard | None, fallback: str) -> str:
    """What a link card is classified by: its title and description, one per line (never its address);
    ``fallback`` when it has neither."""
    return (card.text if card is not None else "") or fallback


def raw_payload(payload: pb.MessagePayloadResponse) -> dict[str, Any]:
    """The payload as stored in ``IncomingMessage.raw``, keyed as the TypeScript puppet names it.

    Built by hand: betterproto's ``to_dict()`` would name the type with the stubs' (wrong) enum.
    """
    wire = wire_type(int(payload.type))
    return {
        "id": payload.id,
        "type": int(payload.type),
        "wireType": wire.name if wire is not None else f"TYPE_{int(payload.type)}",
        "talkerId": payload.from_id,
        "roomId": payload.room_id,
        "listenerId": payload.to_id,
        "text": payload.text,
        "mentionIds": list(payload.mention_ids),
        "filename": payload.filename,
        "timestamp": int(payload.timestamp),
    }


def is_own(payload: pb.MessagePayloadResponse, self_id: str | None) -> bool:
    """A message the bot's own account sent (the service echoes them)."""
    return bool(self_id) and payload.from_id == self_id


def to_incoming(
    payload: pb.MessagePayloadResponse,
    *,
    account: str,
    message_id: str,
    received_at: datetime,
    topic: str | None = None,
    sender_name: str = "",
    mention_names: tuple[str, ...] = (),
    url_link: str | None = None,
    mini_program: str | None = None,
) -> IncomingMessage:
    """Our ``IncomingMessage`` for a message payload and the names the adapter looked up.

    ``url_link`` is the JSON the service gave for a link card (``MessageUrl``), ``mini_program`` that of a
    mini-program (``MessageMiniProgram``), if any; ``received_at`` stands in for a missing timestamp. A file
    is classified by its name.
    """
    kind = message_kind(int(payload.type))
    raw = raw_payload(payload)
    text = payload.text or ""
    quote_text: str | None = None
    card: LinkCard | None = None
    if kind == MessageKind.TEXT:
        quote_text, text = split_quote(text)
    elif kind == MessageKind.LINK and (url_link or mini_program):
        details = link_details(url_link or mini_program or "")
        if details is not None:
            raw["miniProgram" if mini_program else "urlLink"] = details
        card = link_card(details, mini_program=bool(mini_program))
        text = link_text(card, text)
    elif kind == MessageKind.FILE and payload.filename:
        text = payload.filename
    with_attachment = kind in WITH_ATTACHMENT
    return IncomingMessage(
        platform_id=payload.id or message_id,
        account=account,
        at=to_datetime(int(payload.timestamp), fallback=received_at),
        kind=kind,
        text=text,
        sender_id=payload.from_id,
        sender_name=sender_name,
        group_id=payload.room_id or None,
        group_topic=topic,
        mention_ids=tuple(payload.mention_ids),
        mention_names=mention_names,
        quote_text=quote_text,
        attachment_ref=message_id if with_attachment else None,
        attachment_name=(payload.filename or None) if with_attachment else None,
        raw=json.dumps(raw, ensure_ascii=False),
        card=card,
    )


def unreadable(message_id: str, *, account: str, reason: str, received_at: datetime) -> IncomingMessage:
    """A message whose payload would not load: OTHER, with the id and the reason in ``raw``."""
    return IncomingMessage(
        platform_id=message_id,
        account=account,
        at=received_at,
        kind=MessageKind.OTHER,
        text="",
        sender_id="",
        sender_name="",
        raw=json.dumps({"messageId": message_id, "error": reason}, ensure_ascii=False),
    )


def event_payload(payload: str) -> dict[str, Any]:
    """The JSON object of an event; anything else is kept under ``raw``."""
    try:
        value = json.loads(payload) if payload else {}
    except ValueError:
        return {"raw": payload}
    return value if isinstance(value, dict) else {"raw": value}


def member_display_name(room_alias: str, name: str) -> str:
    """The name a member shows in a group: the group nickname, else the contact name ('' when neither)."""
    return room_alias or name


def contact_display_name(name: str, alias: str, contact_id: str) -> str:
    return name or alias or contact_id


def filebox_json(data: bytes, name: str) -> str:
    """A base64 FileBox as ``MessageSendFile`` takes it."""
    # boxType: the pre-1.0 FileBox spelling of `type`, for older services.
    box = {"type": 1, "boxType": 1, "base64": base64.b64encode(data).decode("ascii"), "name": name}
    return json.dumps(box, ensure_ascii=False)


def scan_url(qrcode: str) -> str:
    return f"https://wechaty.js.org/qrcode/{qrcode}" if qrcode else "the QR code"
