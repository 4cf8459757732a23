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
from classifiers import CATEGORIES
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


ROLE_ALIASES = {"村民": "villager", "党员": "party_member", "村干部": "cadre", "工作人员": "staff"}
"""A roster kept in Excel may name the role in Chinese."""
ROSTER_COLUMNS = ("name", "role", "village", "township", "county", "group", "categories", "head", "platform_id")
_YES = ("1", "yes", "true", "是", "y")
_NO = ("", "0", "no", "false", "否", "n")


@dataclass(frozen=True, slots=True)
class RosterProblem:
    """Why one row (or, at line 1, the whole file) of a roster cannot be taken, in Chinese."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class ParsedRoster:
    """Every row of a roster file: the good ones as entries, the bad ones as problems, each with its line."""

    entries: list[tuple[int, RosterEntry]]
    problems: list[RosterProblem]
    fatal: bool = False
    """The file as a whole cannot be read (encoding, header): no row was looked at."""


def read_roster(path: Path, config: Config) -> list[RosterEntry]:
    """Parse a roster CSV (columns ROSTER_COLUMNS; name and role required).

    The roster is edited by staff (often in Excel), so every value is checked and an error names the file,
    the line and the column, in Chinese: unknown or missing columns, a row with too many or too few cells,
    unknown roles, categories and yes/no values, places not in the configured hierarchy, and the same
    person twice.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: 无法读取花名册:{exc.strerror or exc}") from exc
    parsed = parse_roster(data, config)
    if parsed.problems:
        first = parsed.problems[0]
        where = f"{path}: " if parsed.fatal and first.line == 0 else f"{path}:{first.line}: "
        raise InputError(where + first.message)
    return [entry for _line, entry in parsed.entries]


def parse_roster(data: bytes, config: Config) -> ParsedRoster:
    """Check every row of a roster CSV and report each bad one (for the dashboard's import preview).

    The same checks as :func:`read_roster`, which stops at the first problem.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"花名册不是 UTF-8 编码(第 {exc.start} 字节),请用 UTF-8 另存为 CSV"
        return ParsedRoster([], [RosterProblem(0, message)], fatal=True)
    counties = {c.name for c in config.counties}
    villages = {v.name: (t.name, c.name, v.groups) for c in config.counties for t in c.townships for v in t.villages}
    townships = {t.name: c.name for c in config.counties for t in c.townships}
    every_group = {g for _t, _c, groups in villages.values() for g in groups}

    def fatal(message: str) -> ParsedRoster:
        return ParsedRoster([], [RosterProblem(1, message)], fatal=True)

    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        header = reader.fieldnames
    except csv.Error as exc:
        return fatal(f"表头无法解析:{exc}")
    if header is None:
        return fatal("花名册是空的,第一行应为表头,至少有 name 和 role 两列")
    columns = [h.strip() for h in header]
    reader.fieldnames = columns
    unknown = [c for c in columns if c not in ROSTER_COLUMNS]
    if unknown:
        return fatal(f"表头有不认识的列 {'、'.join(repr(c) for c in unknown)};可用的列:{', '.join(ROSTER_COLUMNS)}")
    doubled = sorted({c for c in columns if columns.count(c) > 1})
    if doubled:
        return fatal(f"表头中的列重复:{'、'.join(doubled)}")
    missing = [c for c in ("name", "role") if c not in columns]
    if missing:
        return fatal(f"表头缺少必需的列 {'、'.join(missing)}(至少要有 name 和 role)")
    entries: list[tuple[int, RosterEntry]] = []
    problems: list[RosterProblem] = []
    seen: dict[str, int] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(RosterProblem(reader.line_num, f"这一行无法解析:{exc}"))
            break  # the reader cannot go on after a broken quote
        line = reader.line_num
        try:
            entry = _roster_row(row, villages, townships, counties, every_group)
        except _RowProblem as exc:
            problems.append(RosterProblem(line, str(exc)))
            continue
        key = entry.platform_id or entry.name
        if key in seen:
            what = f"platform_id“{key}”" if entry.platform_id else f"姓名“{key}”"
            problems.append(
                RosterProblem(line, f"{what}与第 {seen[key]} 行重复;同名的人请在 platform_id 列填写各自的微信号")
            )
            continue
        seen[key] = line
        entries.append((line, entry))
    return ParsedRoster(entries, problems)


class _RowProblem(ValueError):
    """One roster row is wrong; the message says which column and why."""


def _roster_row(
    row: dict[str | None, str | list[str] | None],
    villages: dict[str, tuple[str, str, list[str]]],
    townships: dict[str, str],
    counties: set[str],
    every_group: set[str],
) -> RosterEntry:
    if row.get(None):
        raise _RowProblem(f"这一行的格子比表头多(多出:{'、'.join(map(str, row[None] or []))})")
    if any(value is None for key, value in row.items() if key is not None):
        raise _RowProblem("这一行的格子比表头少,请补齐(可以留空,但逗号要有)")

    def cell(column: str) -> str:
        value = row.get(column)
        return value.strip() if isinstance(value, str) else ""

    name, role = cell("name"), cell("role")
    if not name:
        raise _RowProblem("name(姓名)为空")
    role = ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        choices = "、".join(f"{code}({chinese})" for chinese, code in ROLE_ALIASES.items())
        raise _RowProblem(f"role(身份)“{role}”不正确,应为 {choices} 之一")
    village, township, county, group = cell("village"), cell("township"), cell("county"), cell("group")
    if village:
        if village not in villages:
            raise _RowProblem(f"village(村)“{village}”不在配置的县、镇、村中")
        village_township, village_county, groups = villages[village]
        if township and township != village_township:
            raise _RowProblem(f"township(镇)“{township}”与村“{village}”不符(应为“{village_township}”)")
        if county and county != village_county:
            raise _RowProblem(f"county(县)“{county}”与村“{village}”不符(应为“{village_county}”)")
        township, county = village_township, village_county
        if group and group not in groups:
            raise _RowProblem(f"group(群)“{group}”不是“{village}”的群(可选:{'、'.join(groups)})")
        group = group or groups[0]
    elif township:
        if township not in townships:
            raise _RowProblem(f"township(镇)“{township}”不在配置的县、镇、村中")
        if county and county != townships[township]:
            raise _RowProblem(f"county(县)“{county}”与镇“{township}”不符(应为“{townships[township]}”)")
        county = townships[township]
    elif county and counties and county not in counties:
        raise _RowProblem(f"county(县)“{county}”不在配置的县中")
    if group and group not in every_group:
        raise _RowProblem(f"group(群)“{group}”不是配置中的群")
    categories = tuple(c.strip() for c in cell("categories").split("|") if c.strip())
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise _RowProblem(
            f"categories(负责类别)中的“{'、'.join(unknown)}”不认识;可用:{', '.join(CATEGORIES)},用 | 分隔"
        )
    head = cell("head").lower()
    if head not in _YES and head not in _NO:
        raise _RowProblem(f"head(是否村负责人)“{cell('head')}”应为 是/否(yes/no)或留空")
    return RosterEntry(
        name=name,
        role=role,
        village=village,
        township=township,
        county=county,
        group=group,
        platform_id=cell("platform_id"),
        categories=categories,
        is_head=head in _YES,
    )


def roster_csv(entries: list[RosterEntry]) -> str:
    """A roster file of ``entries`` with every column, read back by :func:`read_roster` as the same entries."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ROSTER_COLUMNS)
    for e in entries:
        writer.writerow(
            [
                e.name,
                e.role,
                e.village,
                e.township,
                e.county,
                e.group,
                "|".join(e.categories),
                "是" if e.is_head else "",
                e.platform_id if e.platform_id != e.name else "",
            ]
        )
    return out.getvalue()


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
                        group = await repo.get_group(session, name) or await repo.get_or_create_group(
                            session, values={"name": name}
                        )
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
        # Insert-or-get: several bot processes of a city load the same roster when they start together.
        member = await repo.get_member(session, platform_id) or await repo.get_or_create_member(
            session, values={"platform_id": platform_id, "name": entry.name}
        )
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
            group = await repo.get_or_create_group(
                session,
                values={
                    "name": name,
                    "village": village,
                    "township": township,
                    "county": county,
                    "configured": True,
                    "account": self.owner(name, current=""),
                },
            )
        if not group.village:
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
        # Insert-or-get, never check-then-insert: the first messages of a new room may be handled at once
        # (or by two processes), and the unique name must not turn one of them into a failure.
        name = topic or platform_id
        group = await repo.get_or_create_group(
            session,
            values={
                "name": name,
                "platform_id": platform_id,
                "account": self.owner(name, current="", arrived_via=account),
                "configured": False,
            },
        )
        owner = self.owner(name, current=group.account, arrived_via=account)
        if group.platform_id != platform_id or owner != group.account:
            group.platform_id = platform_id  # a configured group heard from for the first time
            group.account = owner
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
        # Insert-or-get, never check-then-insert: a new villager's first two posts (or a post in a group and
        # one in private) may be handled at once, and the unique platform id decides which insert stores
        # the row; the other message gets the same person instead of a constraint error.
        member = await repo.get_or_create_member(
            session,
            values={
                "platform_id": platform_id,
                "name": name or platform_id,
                "role": "villager",
                "village": group.village if group else "",
                "township": group.township if group else "",
                "county": group.county if group else "",
                "group_name": group.name if group else "",
            },
        )
        return self._remember(self._members, platform_id, member)
