"""Who is who: groups from the configured hierarchy, people from the roster file and replay scripts.

Why a service: the ingest must know, for every message, which village a group belongs to and what role
the sender has (a cadre's announcement is a notice, a party member's banquet is high severity).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Config
from bot.errors import InputError
from storage.models import Group, Member
from storage.repos import directory as repo

ROLES = ("villager", "party_member", "cadre", "staff")

_Row = TypeVar("_Row", Group, Member)


@dataclass(frozen=True, slots=True)
class RosterEntry:
    name: str
    role: str
    village: str = ""
    township: str = ""
    county: str = ""
    group: str = ""
    platform_id: str = ""
    categories: tuple[str, ...] = field(default=())
    is_head: bool = False


def read_roster(path: Path, config: Config) -> list[RosterEntry]:
    """Parse a roster CSV (name,role,village,group,categories,head,platform_id); errors name file and line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read roster: {exc}") from exc
    villages = {v.name: (t.name, c.name, v.groups) for c in config.counties for t in c.townships for v in t.villages}
    townships = {t.name: c.name for c in config.counties for t in c.townships}
    entries: list[RosterEntry] = []
    reader = csv.DictReader(io.StringIO(text))
    required = {"name", "role"}
    if reader.fieldnames is None or not required <= set(reader.fieldnames):
        raise InputError(f"{path}:1: the header must have at least the columns name and role")
    for index, row in enumerate(reader, start=2):
        name = (row.get("name") or "").strip()
        role = (row.get("role") or "").strip()
        if not name:
            raise InputError(f"{path}:{index}: name is empty")
        if role not in ROLES:
            raise InputError(f"{path}:{index}: role {role!r} is not one of {', '.join(ROLES)}")
        village = (row.get("village") or "").strip()
        township = (row.get("township") or "").strip()
        county = ""
        group = (row.get("group") or "").strip()
        if village:
            if village not in villages:
                raise InputError(f"{path}:{index}: village {village!r} is not in the configured hierarchy")
            township, county, groups = villages[village]
            group = group or groups[0]
        elif township:
            if township not in townships:
                raise InputError(f"{path}:{index}: township {township!r} is not in the configured hierarchy")
            county = townships[township]
        else:
            county = (row.get("county") or "").strip()
        categories = tuple(c.strip() for c in (row.get("categories") or "").split("|") if c.strip())
        head = (row.get("head") or "").strip().lower() in ("1", "yes", "true", "是", "y")
        entries.append(
            RosterEntry(
                name=name,
                role=role,
                village=village,
                township=township,
                county=county,
                group=group,
                platform_id=(row.get("platform_id") or "").strip(),
                categories=categories,
                is_head=head,
            )
        )
    return entries


class Directory:
    """Looks up groups and people, with a short-lived in-process cache.

    Every message needs its group and sender; reading them from the database each time would cost more
    than everything else the bot does with a chat message. Entries live ``cache_seconds`` so that a roster
    change made by another process (a city runs many) is seen within a minute; changes made here drop
    the cache at once.
    """

    def __init__(self, config: Config, *, cache_seconds: float = 60.0) -> None:
        self._config = config
        self._cache_seconds = cache_seconds
        self._groups: dict[str, tuple[float, Group]] = {}
        self._groups_by_name: dict[str, tuple[float, Group]] = {}
        self._members: dict[str, tuple[float, Member]] = {}

    def forget(self) -> None:
        self._groups.clear()
        self._groups_by_name.clear()
        self._members.clear()

    def _cached(self, table: dict[str, tuple[float, _Row]], key: str) -> _Row | None:
        hit = table.get(key)
        if hit is None or time.monotonic() - hit[0] > self._cache_seconds:
            return None
        return hit[1]

    def _remember(self, table: dict[str, tuple[float, _Row]], key: str, row: _Row) -> _Row:
        if len(table) > 200_000:
            table.clear()
        table[key] = (time.monotonic(), row)
        return row

    async def sync_config(self, session: AsyncSession) -> None:
        """Make the groups table match the configured hierarchy (new groups added, places updated)."""
        for county in self._config.counties:
            for township in county.townships:
                for village in township.villages:
                    for name in village.groups:
                        group = await repo.get_group(session, name) or Group(name=name)
                        group.county, group.township, group.village = county.name, township.name, village.name
                        group.quiet = village.quiet
                        group.configured = True
                        group.account = self.owner(name, current=group.account)
                        await repo.save(session, group)

    def owner(self, group: str, *, current: str, arrived_via: str | None = None) -> str:
        """Which account a group belongs to, as far as this process knows.

        A group belongs to the account that sits in it: one whose own configured ``groups`` list it, or
        the account a message from the room arrived through. A catch-all account (no ``groups``) only
        takes groups nobody has claimed. A city runs one process per account on one database, so a
        process never takes a group another account already holds just because it started later.
        """
        listed = self._config.listed_account(group)
        if listed is not None:
            return listed
        if current:
            return current
        return arrived_via or self._config.catch_all_account() or ""

    async def add_member(self, session: AsyncSession, entry: RosterEntry) -> Member:
        """Add or update a person; their platform id defaults to their name (simulator, replay)."""
        self.forget()
        platform_id = entry.platform_id or entry.name
        member = await repo.get_member(session, platform_id) or Member(platform_id=platform_id, name=entry.name)
        member.name = entry.name
        member.role = entry.role
        member.village, member.township, member.county = entry.village, entry.township, entry.county
        member.group_name = entry.group
        member.categories = list(entry.categories)
        member.is_head = entry.is_head
        member.on_roster = True
        await repo.save(session, member)
        if entry.group and entry.village:
            await self.ensure_group(
                session, name=entry.group, village=entry.village, township=entry.township, county=entry.county
            )
        return member

    async def ensure_group(
        self, session: AsyncSession, *, name: str, village: str, township: str, county: str
    ) -> Group:
        group = await repo.get_group(session, name)
        if group is None:
            group = Group(name=name, village=village, township=township, county=county, configured=True)
            group.account = self.owner(name, current="")
            await repo.save(session, group)
        elif not group.village:
            group.village, group.township, group.county, group.configured = village, township, county, True
            await repo.save(session, group)
        return group

    async def group_named(self, session: AsyncSession, name: str) -> Group | None:
        """A stored group by name (a ticket's group), from the cache when fresh."""
        cached = self._cached(self._groups_by_name, name)
        if cached is not None:
            return cached
        group = await repo.get_group(session, name)
        return None if group is None else self._remember(self._groups_by_name, name, group)

    async def member(self, session: AsyncSession, platform_id: str) -> Member | None:
        """A stored person by platform id (a ticket's assignee), from the cache when fresh."""
        cached = self._cached(self._members, platform_id)
        if cached is not None:
            return cached
        member = await repo.get_member(session, platform_id)
        return None if member is None else self._remember(self._members, platform_id, member)

    async def group_for(self, session: AsyncSession, *, platform_id: str, topic: str | None, account: str) -> Group:
        """The group a room message belongs to; an unknown room is stored as an unassigned group, never dropped."""
        cached = self._cached(self._groups, platform_id)
        if cached is not None:
            return cached
        group = await repo.get_group_by_platform_id(session, platform_id)
        if group is not None:
            owner = self.owner(group.name, current=group.account, arrived_via=account)
            if owner != group.account:
                group.account = owner
                await repo.save(session, group)
                await session.flush()
            return self._remember(self._groups, platform_id, group)
        name = topic or platform_id
        group = await repo.get_group(session, name)
        if group is None:
            group = Group(name=name, platform_id=platform_id, account=account, configured=False)
        else:
            group.platform_id = platform_id
            group.account = self.owner(name, current=group.account, arrived_via=account)
        await repo.save(session, group)
        await session.flush()
        return self._remember(self._groups, platform_id, group)

    async def member_for(self, session: AsyncSession, *, platform_id: str, name: str, group: Group | None) -> Member:
        """The sender: a known person by platform id, else a roster entry of that village with the same name
        (bound to this platform id from now on), else a new villager."""
        member = self._cached(self._members, platform_id)
        if member is not None and (not name or member.name == name or member.on_roster):
            return member
        member = await repo.get_member(session, platform_id)
        if member is not None:
            if name and member.name != name and not member.on_roster:
                member.name = name
                await repo.save(session, member)
            return self._remember(self._members, platform_id, member)
        if group is not None and group.village:
            for candidate in await repo.find_members_by_name(session, name):
                if candidate.village == group.village and candidate.platform_id == candidate.name:
                    candidate.platform_id = platform_id
                    await repo.save(session, candidate)
                    return self._remember(self._members, platform_id, candidate)
        member = Member(
            platform_id=platform_id,
            name=name or platform_id,
            role="villager",
            village=group.village if group else "",
            township=group.township if group else "",
            county=group.county if group else "",
            group_name=group.name if group else "",
        )
        await repo.save(session, member)
        await session.flush()
        return self._remember(self._members, platform_id, member)
