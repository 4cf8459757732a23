"""The versions of rule files saved from the dashboard's rule editor (who, when, why, the whole file)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Text, cast, func, or_
from sqlalchemy import select as sql_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Classification, Flag, Message, RuleVersion
from storage.repos.dashboard import Scope

SCAN_MESSAGES = 50_000
"""A rule's recent matches and shadow hits are looked for among this many of the newest messages in scope."""


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
        if version_id is None or (row.id is not None and row.id <= version_id):
            out[row.file] = row.content
        elif row.file not in out:
            out[row.file] = row.previous
    return out


async def changed_since(session: AsyncSession, version_id: int) -> list[str]:
    """The files changed by versions newer than ``version_id``."""
    stmt = select(RuleVersion.file).where(col(RuleVersion.id) > version_id).distinct()
    return sorted(str(f) for f in (await session.exec(stmt)).all())


async def rule_matches(
    session: AsyncSession,
    *,
    since: datetime,
    scope: Scope,
    rule_ids: Collection[str],
    shadow: bool,
    limit: int = 20,
    scan: int = SCAN_MESSAGES,
) -> list[tuple[Message, str, list[str]]]:
    """The newest messages in ``scope`` since ``since`` that one of ``rule_ids`` matched (its shadow matches
    when ``shadow``): (message, rule id, keywords), looked for among the newest ``scan`` messages there, so a
    page showing them costs the same in a city as in a village. Private chats only for a scope that sees
    confidential ones."""
    if not rule_ids:
        return []
    conds = [col(Message.at) >= since]
    for name in ("county", "township", "village"):
        value = getattr(scope, name)
        if value is not None:
            conds.append(getattr(Message, name) == value)
    if not scope.confidential:
        conds.append(col(Message.private).is_(False))
    newest = select(col(Message.id)).where(*conds).order_by(col(Message.at).desc()).limit(scan).subquery()
    column = Classification.shadow_matches if shadow else Classification.matches
    text_of = cast(col(column), Text)
    stmt = (
        select(Message, column)
        .join(newest, newest.c.id == Message.id)
        .join(Classification, col(Classification.message_id) == Message.id)
        .where(or_(*(text_of.like(f'%"{rid}"%') for rid in rule_ids)))
        .order_by(col(Message.at).desc())
        .limit(limit * 4)
    )
    wanted = set(rule_ids)
    out: list[tuple[Message, str, list[str]]] = []
    for message, found in (await session.exec(stmt)).all():
        for match in found or []:
            if match.get("rule") in wanted:
                out.append((message, str(match["rule"]), [str(k) for k in match.get("keywords", [])]))
                break
        if len(out) >= limit:
            break
    return out


async def flag_rule_counts(session: AsyncSession, *, since: datetime, scope: Scope) -> Counter[str]:
    """How many flags in ``scope`` since ``since`` each rule took part in."""
    stmt = select(Flag.rules).where(col(Flag.at) >= since)
    for name in ("county", "township", "village"):
        value = getattr(scope, name)
        if value is not None:
            stmt = stmt.where(getattr(Flag, name) == value)
    if not scope.confidential:
        stmt = stmt.where(col(Flag.confidential).is_(False))
    counts: Counter[str] = Counter()
    for rules in (await session.exec(stmt)).all():
        counts.update(rules or [])
    return counts


async def recent_texts(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    county: str | None,
    township: str | None,
    village: str | None,
    limit: int,
) -> list[tuple[int, datetime, str, str, str, str]]:
    """(id, at, group, sender, text, role) of the newest stored messages with text in a period and place,
    for the rule editor's dry run: plain rows, not ORM objects, as it reads up to tens of thousands."""
    stmt = sql_select(
        col(Message.id),
        col(Message.at),
        col(Message.group_name),
        col(Message.sender_name),
        col(Message.text),
        col(Message.role),
    ).where(col(Message.at) >= start, col(Message.at) < end, col(Message.text) != "")
    for name, value in (("county", county), ("township", township), ("village", village)):
        if value:
            stmt = stmt.where(getattr(Message, name) == value)
    stmt = stmt.order_by(col(Message.at).desc()).limit(limit)
    conn = await session.connection()
    return [
        (int(r[0]), r[1], str(r[2] or ""), str(r[3] or ""), str(r[4]), str(r[5] or "villager"))
        for r in (await conn.execute(stmt)).all()
    ]
