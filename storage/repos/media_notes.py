"""What stored voice, link and file messages show on a page: a voice note (playable audio, transcript) and a
card (link title, description and host; file name and size)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, exists, false, not_, select, update
from sqlalchemy.engine import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import MessageCard, TicketMessage, TicketReporter, VoiceNote
from storage.repos.common import dialect_module, dialect_name
from storage.repos.dashboard import Scope, _where_scope, flags, messages, tickets

voice_notes: Any = VoiceNote.__table__  # type: ignore[attr-defined]
cards: Any = MessageCard.__table__  # type: ignore[attr-defined]
ticket_messages: Any = TicketMessage.__table__  # type: ignore[attr-defined]
ticket_reporters: Any = TicketReporter.__table__  # type: ignore[attr-defined]


async def _insert_once(session: AsyncSession, table: Any, values: dict[str, Any]) -> None:
    """Insert a row keyed by its message unless the message has one already."""
    statement = (
        dialect_module(dialect_name(session)).insert(table).values(values).on_conflict_do_nothing(index_elements=["message_id"])
    )
    conn = await session.connection()
    await conn.execute(statement)


async def add_voice(
    session: AsyncSession,
    *,
    message_id: int,
    status: str,
    duration_ms: int | None = None,
    audio_path: str | None = None,
    error: str | None = None,
) -> None:
    """A voice message's note as it arrived (once: a re-run of the message keeps the first)."""
    values = {
        "message_id": message_id,
        "status": status,
        "duration_ms": duration_ms,
        "audio_path": audio_path,
        "error": error,
    }
    await _insert_once(session, voice_notes, values)


async def get_voice(session: AsyncSession, message_id: int) -> VoiceNote | None:
    return await session.get(VoiceNote, message_id)


async def set_transcript(
    session: AsyncSession, *, message_id: int, text: str, source: str, by: str, at: datetime
) -> None:
    """Record a transcript (the note is created for a voice message stored without one)."""
    await _insert_once(session, voice_notes, {"message_id": message_id, "status": "missing"})
    conn = await session.connection()
    values = {"transcript": text, "transcript_source": source, "transcript_by": by, "transcript_at": at}
    await conn.execute(update(voice_notes).where(voice_notes.c.message_id == message_id).values(values))


async def has_ticket(session: AsyncSession, message_id: int) -> bool:
    """Whether a ticket already came of this message (as a report or a linked message)."""
    conn = await session.connection()
    linked = select(ticket_messages.c.ticket_id).where(ticket_messages.c.message_id == message_id)
    reported = select(ticket_reporters.c.ticket_id).where(ticket_reporters.c.message_id == message_id)
    return (await conn.execute(select(exists(linked) | exists(reported)))).scalar() is True


async def add_card(session: AsyncSession, *, message_id: int, values: dict[str, Any]) -> None:
    columns = {c.name for c in cards.columns}
    row = {k: v for k, v in values.items() if k in columns and v is not None}
    await _insert_once(session, cards, {**row, "message_id": message_id})


async def for_messages(session: AsyncSession, message_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Message id → ``{"voice": note row | None, "card": card row | None}`` for those that have either."""
    ids = sorted({i for i in message_ids if i})
    if not ids:
        return {}
    conn = await session.connection()
    found: dict[int, dict[str, Any]] = {}
    for row in (await conn.execute(select(voice_notes).where(voice_notes.c.message_id.in_(ids)))).mappings():
        found.setdefault(row["message_id"], {"voice": None, "card": None})["voice"] = row
    for row in (await conn.execute(select(cards).where(cards.c.message_id.in_(ids)))).mappings():
        found.setdefault(row["message_id"], {"voice": None, "card": None})["card"] = row
    return found


async def visible_voice(session: AsyncSession, *, message_id: int, scope: Scope) -> RowMapping | None:
    """A voice message's note and where its file is, or None when absent or outside ``scope``.

    The scope rule of the pages: the message's place; without confidential access no private chat, no
    message flagged as a clue or confidential, none of a confidential or clue ticket.
    """
    conds = _where_scope(messages, scope)
    if not scope.confidential:
        conds.append(messages.c.private == false())
        hidden_flag = select(flags.c.id).where(
            flags.c.message_id == messages.c.id,
            (flags.c.confidential == True) | cast(flags.c.labels, Text).like('%"clue"%'),  # noqa: E712
        )
        hidden_ticket = (
            select(ticket_messages.c.ticket_id)
            .join(tickets, tickets.c.id == ticket_messages.c.ticket_id)
            .where(
                ticket_messages.c.message_id == messages.c.id,
                (tickets.c.confidential == True) | (tickets.c.kind == "clue"),  # noqa: E712
            )
        )
        conds += [not_(exists(hidden_flag)), not_(exists(hidden_ticket))]
    statement = (
        select(
            messages.c.id,
            messages.c.kind,
            messages.c.media_path,
            messages.c.text,
            voice_notes.c.status,
            voice_notes.c.duration_ms,
            voice_notes.c.audio_path,
            voice_notes.c.transcript,
        )
        .select_from(messages.join(voice_notes, voice_notes.c.message_id == messages.c.id, isouter=True))
        .where(messages.c.id == message_id, messages.c.kind == "voice", *conds)
    )
    conn = await session.connection()
    return (await conn.execute(statement)).mappings().first()


async def pending_voices(session: AsyncSession, *, scope: Scope, limit: int = 20) -> list[RowMapping]:
    """The newest voice messages in scope nobody has transcribed yet, for the digest."""
    conds = _where_scope(messages, scope)
    if not scope.confidential:
        conds.append(messages.c.private == false())
    statement = (
        select(
            messages.c.id,
            messages.c.at,
            messages.c.group_name,
            messages.c.sender_name,
            messages.c.role,
            messages.c.kind,
            messages.c.text,
            messages.c.township,
            messages.c.village,
        )
        .select_from(messages.join(voice_notes, voice_notes.c.message_id == messages.c.id))
        .where(messages.c.kind == "voice", voice_notes.c.transcript.is_(None), *conds)
        .order_by(messages.c.at.desc(), messages.c.id.desc())
        .limit(limit)
    )
    conn = await session.connection()
    return list((await conn.execute(statement)).mappings().all())
