"""The versions of rule files saved from the dashboard's rule editor (who, when, why, the whole file)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import RuleVersion


async def add_version(
    session: AsyncSession,
    *,
    at: datetime,
    username: str,
    action: str,
    reason: str,
    rule_id: str,
    file: str,
    content: str,
    previous: str,
    ruleset_version: str,
) -> RuleVersion:
    row = RuleVersion(
        at=at,
        username=username,
        action=action,
        reason=reason,
        rule_id=rule_id,
        file=file,
        content=content,
        previous=previous,
        ruleset_version=ruleset_version,
    )
    session.add(row)
    await session.flush()
    return row


async def latest_id(session: AsyncSession) -> int:
    """The id of the newest version (0 when rules were never changed from the dashboard)."""
    found = (await session.exec(select(func.max(RuleVersion.id)))).one()
    return int(found or 0)


async def get_version(session: AsyncSession, version_id: int) -> RuleVersion | None:
    return await session.get(RuleVersion, version_id)


async def list_versions(
    session: AsyncSession, *, rule_id: str | None = None, limit: int = 50, offset: int = 0
) -> list[RuleVersion]:
    """Newest first; only one rule's versions when ``rule_id`` is given."""
    stmt = select(RuleVersion)
    if rule_id is not None:
        stmt = stmt.where(RuleVersion.rule_id == rule_id)
    stmt = stmt.order_by(col(RuleVersion.id).desc()).offset(offset).limit(limit)
    return list((await session.exec(stmt)).all())


async def count_versions(session: AsyncSession) -> int:
    return int((await session.exec(select(func.count()).select_from(RuleVersion))).one())


async def files_at(session: AsyncSession, version_id: int | None = None) -> dict[str, str]:
    """Each file's content as of ``version_id`` (the newest when None): the latest version of it up to there.

    A file first changed after ``version_id`` is given as it was before that first change.
    """
    rows = list((await session.exec(select(RuleVersion).order_by(col(RuleVersion.id)))).all())
    out: dict[str, str] = {}
    for row in rows:
        if version_id is None or row.id is not None and row.id <= version_id:
            out[row.file] = row.content
        elif row.file not in out:
            out[row.file] = row.previous
    return out


async def changed_since(session: AsyncSession, version_id: int) -> list[str]:
    """The files changed by versions newer than ``version_id``."""
    stmt = select(RuleVersion.file).where(col(RuleVersion.id) > version_id).distinct()
    return sorted(str(f) for f in (await session.exec(stmt)).all())
