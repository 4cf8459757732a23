"""Groups and members: where a message comes from and who is responsible for what."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Group, Member
from storage.repos.common import insert_ignore


async def get_group(session: AsyncSession, name: str) -> Group | None:
    return (await session.exec(select(Group).where(Group.name == name))).first()


async def get_group_by_platform_id(session: AsyncSession, platform_id: str) -> Group | None:
    return (await session.exec(select(Group).where(Group.platform_id == platform_id))).first()


async def get_or_create_group(session: AsyncSession, *, values: dict[str, Any]) -> Group:
    """The group named ``values["name"]``, inserted with ``values`` unless it exists (insert-or-get).

    Safe when many messages (or bot processes) meet a new group at once: the unique name decides, and
    every caller gets the one row, never a constraint error.
    """
    await insert_ignore(session, Group, ("name",), values)
    group = await get_group(session, values["name"])
    assert group is not None  # inserted just now or by whoever won; rows are never deleted
    return group


async def list_groups(session: AsyncSession) -> list[Group]:
    return list((await session.exec(select(Group).order_by(col(Group.name)))).all())


async def save(session: AsyncSession, row: Group | Member) -> None:
    session.add(row)


async def get_member(session: AsyncSession, platform_id: str) -> Member | None:
    return (await session.exec(select(Member).where(Member.platform_id == platform_id))).first()


async def get_or_create_member(session: AsyncSession, *, values: dict[str, Any]) -> Member:
    """The person with ``values["platform_id"]``, inserted with ``values`` unless they exist (insert-or-get).

    Two first messages from a new sender handled at once both end here: the unique platform id decides
    which insert stores the row, and both get it, on SQLite and PostgreSQL alike.
    """
    await insert_ignore(session, Member, ("platform_id",), values)
    member = await get_member(session, values["platform_id"])
    assert member is not None  # inserted just now or by whoever won; rows are never deleted
    return member


async def find_members_by_name(session: AsyncSession, name: str) -> list[Member]:
    return list((await session.exec(select(Member).where(Member.name == name))).all())


async def village_cadres(session: AsyncSession, *, village: str) -> list[Member]:
    statement = select(Member).where(Member.village == village, Member.role == "cadre").order_by(col(Member.id))
    return list((await session.exec(statement)).all())


async def staff_members(
    session: AsyncSession, *, township: str | None = None, county: str | None = None
) -> list[Member]:
    statement = select(Member).where(Member.role == "staff")
    if township is not None:
        statement = statement.where(Member.township == township)
    if county is not None:
        statement = statement.where(Member.county == county)
    return list((await session.exec(statement.order_by(col(Member.id)))).all())


async def people_by_group(session: AsyncSession) -> dict[str, list[dict[str, str]]]:
    """Roster people per group name, for the simulator's speaker list."""
    statement = select(Member).where(col(Member.on_roster).is_(True)).order_by(col(Member.id))
    people: dict[str, list[dict[str, str]]] = {}
    for member in (await session.exec(statement)).all():
        if member.group_name:
            people.setdefault(member.group_name, []).append({"name": member.name, "role": member.role})
    return people


async def roster_members(session: AsyncSession) -> list[Member]:
    """Everyone on the roster (set from the roster file or by staff), in the order they were added."""
    statement = select(Member).where(col(Member.on_roster).is_(True)).order_by(col(Member.id))
    return list((await session.exec(statement)).all())
