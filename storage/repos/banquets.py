"""Banquet details stored with their flags, the upcoming-banquets list and the banquets due for an alert."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Banquet, Member
from storage.repos.dashboard import Scope, _where_scope, flags, messages

banquets: Any = Banquet.__table__  # type: ignore[attr-defined]
members: Any = Member.__table__  # type: ignore[attr-defined]

COLUMNS = [c.name for c in Banquet.__table__.columns if c.name != "message_id"]  # type: ignore[attr-defined]


async def add(session: AsyncSession, *, message_id: int, values: dict[str, Any]) -> None:
    """Store a message's banquet details (the keys of ``values`` that are columns)."""
    row = {k: v for k, v in values.items() if k in COLUMNS}
    await session.exec(insert(Banquet), params=[{**row, "message_id": message_id}])


async def by_message(session: AsyncSession, message_ids: list[int]) -> dict[int, RowMapping]:
    if not message_ids:
        return {}
    conn = await session.connection()
    rows = (await conn.execute(select(banquets).where(banquets.c.message_id.in_(message_ids)))).mappings().all()
    return {row["message_id"]: row for row in rows}


def _listing() -> Any:
    return (
        select(
            banquets,
            flags.c.id.label("flag_id"),
            flags.c.at,
            flags.c.group_name,
            flags.c.sender_name,
            flags.c.role.label("flag_role"),
            flags.c.county,
            flags.c.township,
            flags.c.village,
            flags.c.labels,
            flags.c.severity,
            flags.c.verdict,
            messages.c.text,
            messages.c.sender_platform_id,
            members.c.role.label("member_role"),
        )
        .select_from(
            banquets.join(flags, flags.c.message_id == banquets.c.message_id)
            .join(messages, messages.c.id == banquets.c.message_id)
            .join(members, members.c.platform_id == messages.c.sender_platform_id, isouter=True)
        )
    )


async def upcoming(
    session: AsyncSession, *, scope: Scope, since: date, until: date | None = None, limit: int = 500
) -> list[RowMapping]:
    """Banquets dated from ``since`` (to ``until``) whose flags ``scope`` may see, soonest first."""
    stmt = _listing().where(banquets.c.date >= since, *_where_scope(flags, scope))
    if until is not None:
        stmt = stmt.where(banquets.c.date <= until)
    stmt = stmt.order_by(banquets.c.date, flags.c.id).limit(limit)
    conn = await session.connection()
    return list((await conn.execute(stmt)).mappings().all())


async def undated(session: AsyncSession, *, scope: Scope, since: Any, limit: int = 100) -> list[RowMapping]:
    """Banquets flagged since ``since`` whose date could not be read, newest first (staff check them by hand)."""
    stmt = (
        _listing()
        .where(banquets.c.date.is_(None), flags.c.at >= since, *_where_scope(flags, scope))
        .order_by(flags.c.id.desc())
        .limit(limit)
    )
    conn = await session.connection()
    return list((await conn.execute(stmt)).mappings().all())
