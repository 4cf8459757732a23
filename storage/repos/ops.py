"""Queries for operations: the figures /metrics exports and the message-text retention job."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Flag, Message, Outbox, Ticket
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


async def outbox_by_account(session: AsyncSession) -> list[OutboxFigures]:
    """Per account: rows waiting to be sent, the creation time of the oldest of them, rows given up."""
    pending = (
        await session.exec(
            select(Outbox.account, func.count(), func.min(Outbox.created_at))
            .where(Outbox.status == "pending")
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

    Only ``messages`` (and their search index, so a blanked text is found by nothing) is touched: tickets
    (their text and events), flags, reviews and the audit log keep what they recorded."""
    result = await session.exec(
        update(Message)
        .where(col(Message.at) < before, or_(col(Message.text) != "", col(Message.raw).is_not(None)))
        .values(text="", raw=None)
        .returning(col(Message.id))
        .execution_options(synchronize_session=False)
    )
    blanked = [int(row[0]) for row in result]
    await forget_messages(session, blanked)
    return len(blanked)
