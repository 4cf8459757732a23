"""Bulk passes over stored messages (reclassification)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, false, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Banquet, Classification, Flag, Message
from storage.repos import banquets as banquets_repo


async def count_messages(session: AsyncSession) -> int:
    """Messages a reclassification goes over: all but those kept raw, which need the whole pipeline."""
    statement = select(func.count()).select_from(Message).where(col(Message.kept_raw) == false())
    return int((await session.exec(statement)).one())


async def messages_after(
    session: AsyncSession, *, after_id: int, limit: int
) -> list[tuple[Message, Classification | None]]:
    """Stored messages after ``after_id`` with their classification, except those kept raw: re-running
    only the rules over one would flag it under the wrong role and place, and open no ticket."""
    statement = (
        select(Message, Classification)
        .join(Classification, col(Classification.message_id) == Message.id, isouter=True)
        .where(col(Message.id) > after_id, col(Message.kept_raw) == false())
        .order_by(col(Message.id))
        .limit(limit)
    )
    return [(m, c) for m, c in (await session.exec(statement)).all()]


async def replace_classification(
    session: AsyncSession,
    *,
    classification: Classification,
    flag: Flag | None,
    banquet: dict[str, Any] | None = None,
) -> None:
    """Store a new classification; add the flag it raises, update or drop an unreviewed one. A flag staff
    have reviewed is kept as it is: a verdict is a record of what staff did. ``banquet``: the details of a
    banquet flag (its ``banquets`` row, written again); a dropped flag takes its details with it."""
    await session.merge(classification)
    message_id = classification.message_id
    existing = (await session.exec(select(Flag).where(Flag.message_id == message_id))).first()
    kept = existing is not None and existing.verdict is not None
    if not kept:
        await session.exec(delete(Banquet).where(col(Banquet.message_id) == message_id))
        if banquet is not None and flag is not None:
            await session.flush()
            await banquets_repo.add(session, message_id=message_id, values=banquet)
    elif banquet is not None and await session.get(Banquet, message_id) is None:
        await banquets_repo.add(session, message_id=message_id, values=banquet)
    if existing is None:
        if flag is not None:
            session.add(flag)
    elif existing.verdict is None:
        if flag is None:
            await session.exec(delete(Flag).where(col(Flag.id) == existing.id))
        else:
            existing.labels, existing.severity, existing.rules, existing.keywords = (
                flag.labels,
                flag.severity,
                flag.rules,
                flag.keywords,
            )
            existing.from_image = flag.from_image
            session.add(existing)


async def add_banquet_if_flagged(session: AsyncSession, *, message_id: int, values: dict[str, Any]) -> None:
    """The details of a banquet flag stored before they were read (an old import, an older version)."""
    if (await session.exec(select(Flag.id).where(Flag.message_id == message_id))).first() is None:
        return
    if await session.get(Banquet, message_id) is not None:
        return
    await banquets_repo.add(session, message_id=message_id, values=values)
