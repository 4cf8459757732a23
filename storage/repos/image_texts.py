"""The text read from image messages (OCR): the durable queue of images to read, and what was read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ImageText, Message

image_texts: Any = ImageText.__table__  # type: ignore[attr-defined]
messages: Any = Message.__table__  # type: ignore[attr-defined]

PENDING = "pending"


async def add_pending(session: AsyncSession, *, message_id: int, account: str, at: datetime) -> None:
    """Queue an image message to be read (in the message's own transaction)."""
    await session.exec(
        insert(image_texts),
        params=[{"message_id": message_id, "account": account, "status": PENDING, "created_at": at}],
    )


async def add_result(
    session: AsyncSession, *, message_id: int, account: str, at: datetime, status: str, error: str | None
) -> None:
    """Record at once an image that cannot be read (no file to read, OCR switched off is not recorded)."""
    await session.exec(
        insert(image_texts),
        params=[
            {
                "message_id": message_id,
                "account": account,
                "status": status,
                "error": error,
                "created_at": at,
                "read_at": at,
            }
        ],
    )


async def pending_ids(session: AsyncSession, *, accounts: list[str], after_id: int = 0, limit: int = 200) -> list[int]:
    """Images of these accounts waiting to be read, oldest first."""
    statement = (
        select(image_texts.c.message_id)
        .where(
            image_texts.c.status == PENDING,
            image_texts.c.account.in_(accounts),
            image_texts.c.message_id > after_id,
        )
        .order_by(image_texts.c.message_id)
        .limit(limit)
    )
    conn = await session.connection()
    return [row[0] for row in (await conn.execute(statement)).all()]


async def finish(
    session: AsyncSession,
    *,
    message_id: int,
    status: str,
    text: str,
    error: str | None,
    labels: list[str],
    at: datetime,
) -> bool:
    """Mark a pending image read; False when it is not pending any more (read by another run): then the
    caller does nothing, so the text is classified once."""
    statement = (
        update(image_texts)
        .where(image_texts.c.message_id == message_id, image_texts.c.status == PENDING)
        .values(status=status, text=text, error=error, labels=labels, read_at=at)
    )
    conn = await session.connection()
    result = await conn.execute(statement)
    return bool(result.rowcount == 1)


async def get(session: AsyncSession, message_id: int) -> RowMapping | None:
    conn = await session.connection()
    statement = select(image_texts).where(image_texts.c.message_id == message_id)
    return (await conn.execute(statement)).mappings().first()


async def by_message(session: AsyncSession, message_ids: list[int]) -> dict[int, RowMapping]:
    """What was read from these messages' images, by message id (messages without an image are absent)."""
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    conn = await session.connection()
    found: dict[int, RowMapping] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = (await conn.execute(select(image_texts).where(image_texts.c.message_id.in_(chunk)))).mappings().all()
        found.update({row["message_id"]: row for row in rows})
    return found


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    from sqlalchemy import func

    conn = await session.connection()
    rows = (await conn.execute(select(image_texts.c.status, func.count()).group_by(image_texts.c.status))).all()
    return {status: int(count) for status, count in rows}
