"""Bulk passes over stored messages (reclassification)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Classification, Flag, Message


async def count_messages(session: AsyncSession) -> int:
    return int((await session.exec(select(func.count()).select_from(Message))).one())


async def messages_after(
    session: AsyncSession, *, after_id: int, limit: int
) -> list[tuple[Message, Classification | None]]:
    statement = (
        select(Message, Classification)
        .join(Classification, col(Classification.message_id) == Message.id, isouter=True)
        .where(col(Message.id) > after_id)
        .order_by(col(Message.id))
        .limit(limit)
    )
    return [(m, c) for m, c in (await session.exec(statement)).all()]


async def replace_classification(
    session: AsyncSession,
    *,
    message: Message,
    labels: list[str],
    category: str | None,
    severity: str | None,
    matches: list[dict[str, Any]],
    ruleset_version: str,
    red: list[str],
    keywords: list[str],
) -> None:
    assert message.id is not None
    row = await session.get(Classification, message.id)
    if row is None:
        row = Classification(message_id=message.id)
    row.labels, row.category, row.severity, row.matches, row.ruleset_version = (
        labels,
        category,
        severity,
        matches,
        ruleset_version,
    )
    session.add(row)
    flag = (await session.exec(select(Flag).where(Flag.message_id == message.id))).first()
    if red and flag is None:
        session.add(
            Flag(
                message_id=message.id,
                at=message.at,
                group_name=message.group_name,
                sender_name=message.sender_name,
                role=message.role,
                county=message.county,
                township=message.township,
                village=message.village,
                labels=labels,
                severity=severity or "normal",
                rules=[m["rule"] for m in matches],
                keywords=keywords,
                confidential="clue" in red or message.private,
            )
        )
    elif red and flag is not None and flag.verdict is None:
        flag.labels, flag.severity, flag.rules, flag.keywords = (
            labels,
            severity or "normal",
            [m["rule"] for m in matches],
            keywords,
        )
        session.add(flag)
    elif not red and flag is not None and flag.verdict is None:
        await session.exec(delete(Flag).where(col(Flag.id) == flag.id))
