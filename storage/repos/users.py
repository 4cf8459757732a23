"""Staff accounts, dashboard sessions and the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import AuditLog, DashboardSession, StaffUser

_users: Any = StaffUser.__table__  # type: ignore[attr-defined]
_sessions: Any = DashboardSession.__table__  # type: ignore[attr-defined]
_audit: Any = AuditLog.__table__  # type: ignore[attr-defined]


async def get_user(session: AsyncSession, *, username: str) -> StaffUser | None:
    conn = await session.connection()
    row = (await conn.execute(select(_users).where(_users.c.username == username))).mappings().first()
    return StaffUser.model_validate(dict(row)) if row is not None else None


async def count_users(session: AsyncSession) -> int:
    conn = await session.connection()
    return int((await conn.execute(select(func.count()).select_from(_users))).scalar_one())


async def list_users(session: AsyncSession) -> list[StaffUser]:
    conn = await session.connection()
    rows = (await conn.execute(select(_users).order_by(_users.c.username))).mappings().all()
    return [StaffUser.model_validate(dict(r)) for r in rows]


async def add_user(session: AsyncSession, *, user: StaffUser) -> None:
    session.add(user)
    await session.flush()


async def set_password_hash(
    session: AsyncSession, *, username: str, password_hash: str, must_change: bool = False
) -> None:
    """A new password; ``must_change`` when it was generated (a reset), so the user picks their own."""
    conn = await session.connection()
    await conn.execute(
        update(_users)
        .where(_users.c.username == username)
        .values(password_hash=password_hash, must_change_password=must_change)
    )


async def update_user(session: AsyncSession, *, username: str, values: dict[str, Any]) -> None:
    """Change an account's display name, role, scope or active flag (only the keys given)."""
    allowed = {"display_name", "role", "county", "township", "village", "active", "member_name"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"not account fields: {sorted(unknown)}")
    conn = await session.connection()
    await conn.execute(update(_users).where(_users.c.username == username).values(**values))


async def delete_user_sessions(session: AsyncSession, *, username: str) -> int:
    """End every session of a user (disabled, password reset or changed); returns how many ended."""
    conn = await session.connection()
    result = await conn.execute(delete(_sessions).where(_sessions.c.username == username))
    return int(result.rowcount or 0)


async def delete_other_sessions(session: AsyncSession, *, username: str, keep_id: str) -> None:
    conn = await session.connection()
    await conn.execute(delete(_sessions).where(_sessions.c.username == username, _sessions.c.id != keep_id))


async def set_patrol_mark(session: AsyncSession, *, username: str, flag_id: int, at: datetime) -> None:
    """Moves the user's "patrolled up to here" mark forward (never back)."""
    conn = await session.connection()
    await conn.execute(
        update(_users)
        .where(_users.c.username == username, _users.c.patrolled_to_flag_id < flag_id)
        .values(patrolled_to_flag_id=flag_id, patrolled_at=at)
    )


async def create_session(session: AsyncSession, *, row: DashboardSession) -> None:
    session.add(row)
    await session.flush()


async def get_session(session: AsyncSession, *, session_id: str) -> DashboardSession | None:
    conn = await session.connection()
    row = (await conn.execute(select(_sessions).where(_sessions.c.id == session_id))).mappings().first()
    return DashboardSession.model_validate(dict(row)) if row is not None else None


async def delete_session(session: AsyncSession, *, session_id: str) -> None:
    conn = await session.connection()
    await conn.execute(delete(_sessions).where(_sessions.c.id == session_id))


async def delete_expired_sessions(session: AsyncSession, *, now: datetime) -> None:
    conn = await session.connection()
    await conn.execute(delete(_sessions).where(_sessions.c.expires_at <= now))


async def add_audit(
    session: AsyncSession, *, at: datetime, username: str, action: str, target: str = "", detail: str = ""
) -> None:
    conn = await session.connection()
    await conn.execute(_audit.insert().values(at=at, username=username, action=action, target=target, detail=detail))


async def add_audit_row(
    session: AsyncSession, *, at: datetime, username: str, action: str, target: str = "", detail: str = ""
) -> int:
    """Add an audit row and return its id (a login attempt is recorded first, then settled)."""
    conn = await session.connection()
    result = await conn.execute(
        _audit.insert()
        .values(at=at, username=username, action=action, target=target, detail=detail)
        .returning(_audit.c.id)
    )
    return int(result.scalar_one())


async def settle_audit_row(session: AsyncSession, *, audit_id: int, action: str, detail: str) -> None:
    conn = await session.connection()
    await conn.execute(update(_audit).where(_audit.c.id == audit_id).values(action=action, detail=detail))


async def audit_rows_since(
    session: AsyncSession, *, actions: Sequence[str], since: datetime, username: str, target: str, before_id: int
) -> Sequence[Any]:
    """(username, target, at) of the rows with one of ``actions`` since ``since`` for this username or this
    target, recorded before row ``before_id``: the login attempts that bear on that attempt. Only earlier
    ones: in a burst, each attempt is judged by those that came before it, so the first correct password
    still gets in while the (limit+1)-th attempt is held back however many arrive at once."""
    conn = await session.connection()
    stmt = select(_audit.c.username, _audit.c.target, _audit.c.at).where(
        _audit.c.at >= since,
        _audit.c.action.in_(list(actions)),
        (_audit.c.username == username) | (_audit.c.target == target),
        _audit.c.id < before_id,
    )
    return (await conn.execute(stmt)).all()


async def list_audit(
    session: AsyncSession, *, limit: int, before_id: int | None = None, username: str | None = None
) -> Sequence[Any]:
    conn = await session.connection()
    stmt = select(_audit).order_by(_audit.c.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(_audit.c.id < before_id)
    if username:
        stmt = stmt.where(_audit.c.username == username)
    return (await conn.execute(stmt)).mappings().all()
