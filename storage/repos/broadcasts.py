"""Broadcast records: what staff sent to which groups, with the outbox rows that carry it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Broadcast, Member, Outbox


async def add_broadcast(
    session: AsyncSession,
    *,
    at: datetime,
    username: str,
    kind: str,
    text: str,
    send_at: datetime | None = None,
    audience: str = "",
    members: int | None = None,
) -> Broadcast:
    row = Broadcast(at=at, username=username, kind=kind, text=text, send_at=send_at, audience=audience, members=members)
    session.add(row)
    await session.flush()
    return row


async def set_delivery(
    session: AsyncSession, broadcast: Broadcast, *, groups: list[str], outbox_ids: list[int]
) -> None:
    broadcast.groups = groups
    broadcast.outbox_ids = outbox_ids
    session.add(broadcast)


async def get_broadcast(session: AsyncSession, broadcast_id: int) -> Broadcast | None:
    return await session.get(Broadcast, broadcast_id)


async def mark_cancelled(session: AsyncSession, broadcast: Broadcast, *, at: datetime, username: str) -> None:
    broadcast.cancelled_at = at
    broadcast.cancelled_by = username
    session.add(broadcast)


async def members_in_groups(session: AsyncSession, *, groups: Sequence[str]) -> int:
    """Members the roster places in these groups (a person is counted in the one group they are listed in)."""
    total = 0
    names = list(groups)
    for start in range(0, len(names), 500):
        statement = (
            select(func.count()).select_from(Member).where(col(Member.group_name).in_(names[start : start + 500]))
        )
        total += int((await session.exec(statement)).one())
    return total


async def delivery(session: AsyncSession, *, outbox_ids: Sequence[int]) -> list[Outbox]:
    """The outbox rows of a broadcast, in the order they were queued."""
    if not outbox_ids:
        return []
    rows: list[Outbox] = []
    ids = list(outbox_ids)
    for start in range(0, len(ids), 500):
        statement = select(Outbox).where(col(Outbox.id).in_(ids[start : start + 500]))
        rows.extend((await session.exec(statement)).all())
    rows.sort(key=lambda row: row.id or 0)
    return rows


async def delivery_counts(session: AsyncSession, *, outbox_ids: Sequence[int]) -> Counter[str]:
    """How many of a broadcast's outbox rows are in each status (pending, sent, failed, cancelled)."""
    counts: Counter[str] = Counter()
    ids = list(outbox_ids)
    for start in range(0, len(ids), 500):
        statement = (
            select(Outbox.status, func.count())
            .where(col(Outbox.id).in_(ids[start : start + 500]))
            .group_by(Outbox.status)
        )
        for status, count in (await session.exec(statement)).all():
            counts[status] += int(count)
    return counts
