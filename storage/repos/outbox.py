"""The outbox: every reply is a row first, then sent; the row makes sending exactly-once across crashes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Outbox
from storage.repos.common import dialect_name, insert_ignore


async def enqueue(session: AsyncSession, *, values: dict[str, Any]) -> int | None:
    """Add a reply unless one with the same dedupe_key exists; returns the new id or None."""
    return await insert_ignore(session, Outbox, ("dedupe_key",), values)


async def claim_due(
    session: AsyncSession, *, account: str, now: datetime, lease: timedelta, limit: int = 50
) -> list[Outbox]:
    """Pending rows due now, oldest first, leased so that a second sender process skips them.

    One UPDATE … RETURNING (rows locked by another sender are skipped on PostgreSQL), so it is atomic on
    its own and may run outside a transaction: one round trip.
    """
    due = (
        select(Outbox.id)
        .where(
            Outbox.account == account,
            col(Outbox.status) == "pending",
            col(Outbox.not_before) <= now,
            or_(col(Outbox.lease_until).is_(None), col(Outbox.lease_until) < now),
        )
        .order_by(col(Outbox.not_before), col(Outbox.id))
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        due = due.with_for_update(skip_locked=True)
    table: Any = Outbox.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id.in_(due.scalar_subquery()))
        .values(lease_until=now + lease, attempts=table.c.attempts + 1)
        .returning(*table.c)
    )
    connection = await session.connection()
    rows = [Outbox.model_validate(dict(row._mapping)) for row in await connection.execute(statement)]
    return sorted(rows, key=lambda row: (row.not_before, row.id or 0))


async def release_leases(session: AsyncSession, *, account: str) -> None:
    """Free the account's claimed, unsent rows (its sender restarted: one sender per account)."""
    await session.exec(
        update(Outbox)
        .where(col(Outbox.account) == account, col(Outbox.status) == "pending", col(Outbox.lease_until).is_not(None))
        .values(lease_until=None)
    )


async def mark_sent(session: AsyncSession, rows: list[tuple[int, datetime, str | None]]) -> None:
    """Mark rows (id, sent at, platform message id) sent, in one statement."""
    statement = (
        update(Outbox)
        .where(col(Outbox.id) == bindparam("outbox_id"))
        .values(
            status="sent", sent_at=bindparam("sent"), platform_message_id=bindparam("platform_id"), lease_until=None
        )
        .execution_options(synchronize_session=False)
    )
    params = [{"outbox_id": i, "sent": at, "platform_id": platform_id} for i, at, platform_id in rows]
    connection = await session.connection()
    await connection.execute(statement, params)


async def mark_retry(session: AsyncSession, outbox_id: int, *, error: str, retry_at: datetime, give_up: bool) -> None:
    await session.exec(
        update(Outbox)
        .where(col(Outbox.id) == outbox_id)
        .values(
            status="failed" if give_up else "pending", last_error=error[:500], not_before=retry_at, lease_until=None
        )
    )


async def last_sent(session: AsyncSession, *, account: str, chat_id: str | None = None) -> datetime | None:
    statement = select(func.max(Outbox.sent_at)).where(Outbox.account == account)
    if chat_id is not None:
        statement = statement.where(Outbox.chat_id == chat_id)
    value = (await session.exec(statement)).first()
    return value


async def pending_count(session: AsyncSession) -> int:
    value = (await session.exec(select(func.count()).select_from(Outbox).where(Outbox.status == "pending"))).one()
    return int(value)


async def sent_between(session: AsyncSession, *, start: datetime, end: datetime) -> list[Outbox]:
    statement = (
        select(Outbox)
        .where(col(Outbox.sent_at) >= start, col(Outbox.sent_at) <= end)
        .order_by(col(Outbox.sent_at), col(Outbox.id))
    )
    return list((await session.exec(statement)).all())


async def count_created_since(session: AsyncSession, *, chat_id: str, key_prefix: str, since: datetime) -> int:
    """Rows to ``chat_id`` whose dedupe key starts with ``key_prefix`` created since ``since``."""
    statement = (
        select(func.count())
        .select_from(Outbox)
        .where(
            Outbox.chat_id == chat_id,
            col(Outbox.dedupe_key).startswith(key_prefix, autoescape=True),
            col(Outbox.created_at) >= since,
        )
    )
    return int((await session.exec(statement)).one())


async def append_pending(session: AsyncSession, *, dedupe_key: str, text: str) -> bool:
    """Add a line to a row not yet sent (grouping); False when there is no such pending row."""
    statement = (
        update(Outbox)
        .where(
            col(Outbox.dedupe_key) == dedupe_key,
            col(Outbox.status) == "pending",
            col(Outbox.lease_until).is_(None),
        )
        .values(text=func.coalesce(Outbox.text, "") + "\n" + text)
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(statement)
    return bool(result.rowcount)


async def cancel_pending(session: AsyncSession, *, outbox_ids: list[int]) -> int:
    """Mark rows not yet sent nor claimed by a sender as cancelled; returns how many were."""
    if not outbox_ids:
        return 0
    statement = (
        update(Outbox)
        .where(
            col(Outbox.id).in_(outbox_ids),
            col(Outbox.status) == "pending",
            col(Outbox.lease_until).is_(None),
        )
        .values(status="cancelled")
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(statement)
    return int(result.rowcount or 0)
