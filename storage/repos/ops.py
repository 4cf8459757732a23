"""Queries for operations: the figures /metrics exports and the message-text retention job."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Flag, ImageText, Message, MessageCard, Outbox, Ticket, VoiceNote
from storage.repos.search import forget_messages


@dataclass(frozen=True, slots=True)
class OutboxFigures:
    account: str
    pending: int
    oldest_pending: datetime | None
    failed: int


async def tickets_by_status(session: AsyncSession) -> dict[str, int]:
    rows = (await session.exec(select(Ticket.status, func.count()).group_by(Ticket.status))).all()
    return {str(status): int(count) for status, count in rows}


async def outbox_by_account(session: AsyncSession, *, now: datetime | None = None) -> list[OutboxFigures]:
    """Per account: rows waiting to be sent, the creation time of the oldest of them, rows given up.

    With ``now``, rows held back on purpose and never tried yet (a broadcast scheduled for later, alerts
    grouped until their window ends) are not waiting: they would read as a late outbox for days. A row
    held back for a retry still counts.
    """
    conditions = [col(Outbox.status) == "pending"]
    if now is not None:
        conditions.append(or_(col(Outbox.attempts) > 0, col(Outbox.not_before) <= now))
    pending = (
        await session.exec(
            select(Outbox.account, func.count(), func.min(Outbox.created_at))
            .where(*conditions)
            .group_by(Outbox.account)
        )
    ).all()
    failed = (
        await session.exec(
            select(Outbox.account, func.count()).where(Outbox.status == "failed").group_by(Outbox.account)
        )
    ).all()
    waiting = {account: (int(count), oldest) for account, count, oldest in pending}
    given_up = {account: int(count) for account, count in failed}
    return [
        OutboxFigures(
            account=account,
            pending=waiting.get(account, (0, None))[0],
            oldest_pending=waiting.get(account, (0, None))[1],
            failed=given_up.get(account, 0),
        )
        for account in sorted(waiting.keys() | given_up.keys())
    ]


async def flag_labels_since(session: AsyncSession, *, since: datetime) -> Counter[str]:
    """How many flags carry each label among flags of messages at or after ``since``."""
    counts: Counter[str] = Counter()
    result = await session.exec(select(Flag.labels).where(col(Flag.at) >= since))
    for labels in result:
        counts.update(labels or ())
    return counts


async def blank_message_text(session: AsyncSession, *, before: datetime) -> int:
    """Blank the text and raw payload of messages older than ``before``; returns how many changed.

    What a message said goes with it: a voice message's transcript, a link card's title and description, a
    file's name, the text read from an image, and its entry in the search index (a blanked text is found by
    nothing). Tickets (their text and events), flags, reviews and the audit log keep what they recorded."""
    result = await session.exec(
        update(Message)
        .where(col(Message.at) < before, or_(col(Message.text) != "", col(Message.raw).is_not(None)))
        .values(text="", raw=None)
        .returning(col(Message.id))
        .execution_options(synchronize_session=False)
    )
    blanked = [int(row[0]) for row in result]
    old = select(Message.id).where(col(Message.at) < before)
    await session.exec(
        update(VoiceNote)
        .where(col(VoiceNote.message_id).in_(old), col(VoiceNote.transcript).is_not(None))
        .values(transcript="")  # blank, not NULL: the digest lists NULL as waiting for a transcript
        .execution_options(synchronize_session=False)
    )
    await session.exec(
        update(MessageCard)
        .where(col(MessageCard.message_id).in_(old))
        .values(title="", description="", file_name="")
        .execution_options(synchronize_session=False)
    )
    # The text read from an image is what the message said too.
    await session.exec(
        update(ImageText)
        .where(col(ImageText.message_id).in_(old), col(ImageText.text) != "")
        .values(text="")
        .execution_options(synchronize_session=False)
    )
    await forget_messages(session, blanked)
    return len(blanked)
