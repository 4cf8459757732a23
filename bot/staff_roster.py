"""The roster as staff keep it from the dashboard (dashboards.ports.Roster): preview, apply, assign, export.

The rules are the roster file's (bot.directory.parse_roster); every change goes through the Directory,
which drops its cache, so the next message already sees the new role. The configured roster file is
rewritten from the stored roster after each change: a restart loads what staff set, not the old file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from bot.config import Config
from bot.directory import ROLES, Directory, RosterEntry, parse_roster, roster_csv
from classifiers import CATEGORIES
from dashboards.ports import ActionRefused, RosterRow
from storage.engine import SessionFactory
from storage.models import Member
from storage.repos import directory as directory_repo

log = logging.getLogger(__name__)


def _row(line: int, entry: RosterEntry) -> RosterRow:
    return RosterRow(
        line=line,
        name=entry.name,
        role=entry.role,
        village=entry.village,
        township=entry.township,
        county=entry.county,
        group=entry.group,
        categories=entry.categories,
        is_head=entry.is_head,
        platform_id=entry.platform_id,
    )


def _entry(row: RosterRow) -> RosterEntry:
    return RosterEntry(
        name=row.name,
        role=row.role,
        village=row.village,
        township=row.township,
        county=row.county,
        group=row.group,
        platform_id=row.platform_id,
        categories=tuple(row.categories),
        is_head=row.is_head,
    )


def _member_entry(member: Member) -> RosterEntry:
    """A stored member as the roster line that would store it again."""
    return RosterEntry(
        name=member.name,
        role=member.role,
        village=member.village,
        township=member.township,
        county=member.county,
        group=member.group_name,
        platform_id=member.platform_id,
        categories=tuple(member.categories or ()),
        is_head=member.is_head,
    )


class StaffRoster:
    def __init__(self, *, config: Config, directory: Directory, sessions: SessionFactory) -> None:
        self._config = config
        self._directory = directory
        self._sessions = sessions

    def preview(self, data: bytes) -> list[RosterRow]:
        parsed = parse_roster(data, self._config)
        rows = [_row(line, entry) for line, entry in parsed.entries]
        rows += [RosterRow(line=p.line, error=p.message) for p in parsed.problems]
        return sorted(rows, key=lambda r: r.line)

    async def apply(self, rows: list[RosterRow], *, actor: str) -> int:
        good = [r for r in rows if r.error is None]
        directory = self._directory
        async with self._sessions() as session, session.begin():
            for row in good:
                await directory.add_member(session, _entry(row))
        directory.forget()  # after the commit too: a message handled meanwhile may have cached the old row
        log.info("roster: %s applied %d rows from the dashboard", actor, len(good))
        await self._save_file()
        return len(good)

    async def assign(
        self, platform_id: str, *, role: str, categories: tuple[str, ...], is_head: bool, actor: str
    ) -> None:
        if role not in ROLES:
            raise ActionRefused(f"身份“{role}”不正确")
        unknown = [c for c in categories if c not in CATEGORIES]
        if unknown:
            raise ActionRefused(f"负责类别“{'、'.join(unknown)}”不认识")
        directory = self._directory
        async with self._sessions() as session, session.begin():
            member = await directory_repo.get_member(session, platform_id)
            if member is None:
                raise ActionRefused("没有这个群成员")
            await directory.add_member(
                session, replace(_member_entry(member), role=role, categories=categories, is_head=is_head)
            )
        directory.forget()
        log.info("roster: %s gave %s the role %s", actor, platform_id, role)
        await self._save_file()

    def export(self, rows: list[RosterRow]) -> str:
        return roster_csv([_entry(r) for r in rows])

    async def _save_file(self) -> None:
        """Rewrite the configured roster file from the stored roster (atomically: a reader never sees half)."""
        path = self._config.roster
        if path is None:
            return
        async with self._sessions() as session:
            members = await directory_repo.roster_members(session)
        text = roster_csv([_member_entry(m) for m in members])
        try:
            _write_atomically(path, text)
        except OSError as exc:  # the database has the change; only the file is stale
            log.error("roster: could not rewrite %s: %s", path, exc)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".roster-", suffix=".csv")
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
