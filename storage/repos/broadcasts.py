"""Broadcast records: what staff sent to which groups, with the outbox rows that carry it."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Broadcast


async def add_broadcast(session: AsyncSession, *, at: datetime, username: str, kind: str, text: str) -> Broadcast:
    row = Broadcast(at=at, username=username, kind=kind, text=text)
    session.add(row)
    await session.flush()
    return row


async def set_delivery(
    session: AsyncSession, broadcast: Broadcast, *, groups: list[str], outbox_ids: list[int]
) -> None:
    broadcast.groups = groups
    broadcast.outbox_ids = outbox_ids
    session.add(broadcast)
