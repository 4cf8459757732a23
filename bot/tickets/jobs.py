"""Scheduled ticket jobs on the bot's clock (live or replay): the daily check (日盘点、常提醒), the hourly
follow-up (ratings never given) and the staff's daily digest.

Which tickets a job touches, and what it leaves them as, come from the state machine's table
(``states.stages_allowing``); the daily check applies it in bulk statements.

Each acts on the moment it was scheduled for, in bulk statements (a city has tens of thousands of open
tickets), and is idempotent: a reminded deadline is remembered, an escalation moves the deadline, a
closed ticket is no longer resolved, and every message's outbox key names the day.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.scheduler import Job, daily
from bot.tickets import calendar, states
from bot.tickets.roster import pick_staff
from bot.tickets.service import SYSTEM, SYSTEM_ACTOR, Applied, TicketService
from storage.engine import SessionFactory
from storage.models import Member
from storage.repos import tickets as repo

log = logging.getLogger(__name__)


class TicketJobs:
    def __init__(self, *, session_factory: SessionFactory, service: TicketService) -> None:
        self._sessions = session_factory
        self._service = service
        self._config = service.config

    def jobs(self) -> list[Job]:
        schedule = self._config.schedule
        return [
            Job("tickets.daily_check", daily(schedule.daily_check, schedule.timezone), self.daily_check),
            Job("tickets.followup", CronTrigger(minute=5, timezone=schedule.timezone), self.followup),
            Job("tickets.daily_digest", daily(schedule.daily_digest, schedule.timezone), self.daily_digest),
        ]

    # --- the daily check ----------------------------------------------------------------------------

    async def daily_check(self, scheduled_for: datetime) -> None:
        today = scheduled_for.astimezone(self._service.tz).date()
        async with self._sessions() as session:
            escalated = await self._escalate_overdue(session, scheduled_for, today)
            reminded = await self._remind(session, scheduled_for, today)
            await session.commit()
        log.info("daily check %s: %d escalated, %d reminded", today, escalated, reminded)

    async def _remind(self, session: AsyncSession, now: datetime, today: date) -> int:
        deadlines = self._config.deadlines
        horizon = calendar.end_of_day(
            self._service.calendar.add_working_days(today, deadlines.remind_days_before),
            deadlines.end_of_day,
            self._service.tz,
        )
        rows = await repo.due_for_reminder(
            session, now=now, until=horizon, stages=states.names(states.stages_allowing(states.Op.ESCALATE))
        )
        if not rows:
            return 0
        by_assignee: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            if row.assignee_platform_id:
                by_assignee[row.assignee_platform_id].append(row)
        members = await repo.members_by_platform_ids(session, by_assignee)
        for platform_id, items in by_assignee.items():
            member = members.get(platform_id)
            if member is None:
                continue
            await self._service.notifier.reminder(session, member=member, rows=items, day=today)
        await repo.add_events(
            session,
            [
                {
                    "ticket_id": r.id,
                    "at": now,
                    "type": "reminded",
                    "actor": SYSTEM,
                    "text": f"到期提醒{r.assignee_name or ''}(时限{self._service.fmt(r.deadline)})",
                }
                for r in rows
            ],
        )
        await repo.mark_reminded(session, [r.id for r in rows])
        return len(rows)

    async def _escalate_overdue(self, session: AsyncSession, now: datetime, today: date) -> int:
        rows = await repo.overdue(session, now=now, stages=states.names(states.stages_allowing(states.Op.MARK_OVERDUE)))
        if not rows:
            return 0
        top = [r.id for r in rows if states.next_level(r.level) is None]
        if top:
            await repo.mark_overdue(session, top)
            await repo.add_events(
                session,
                [
                    {"ticket_id": i, "at": now, "type": "overdue", "actor": SYSTEM, "text": "逾期未办结(已在县级督办)"}
                    for i in top
                ],
            )
        groups: dict[tuple[str, str, str, str], list[Any]] = defaultdict(list)
        escalation = states.TABLE[states.Op.ESCALATE]
        moves = {str(old): (str(new or old), str(states.STATUS_OF[new or old])) for old, new in escalation.items()}
        for r in rows:
            level = states.next_level(r.level)
            if level is not None:
                groups[(level, r.township, r.county, r.kind)].append(r)
        staff = await repo.all_staff(session)
        notices: dict[tuple[str, str], list[Any]] = defaultdict(list)
        new_deadlines: dict[tuple[str, str], datetime] = {}
        assignees: dict[str, Member] = {}
        moved_total = 0
        for (level, township, county, kind), items in groups.items():
            assignee = pick_staff(staff, level=level, township=township, county=county)
            deadline = self._service.deadline_for(kind, now)
            moved = set(
                await repo.escalate_overdue(
                    session,
                    [r.id for r in items],
                    now=now,
                    level=level,
                    assignee_name=assignee.name if assignee else None,
                    assignee_platform_id=assignee.platform_id if assignee else None,
                    deadline=deadline,
                    stages=moves,
                )
            )
            level_name = self._service.templates.level_names.get(level, level)
            events = []
            for r in items:
                if r.id not in moved:
                    continue
                who = assignee.name if assignee else (r.assignee_name or "—")
                events.append(
                    {
                        "ticket_id": r.id,
                        "at": now,
                        "type": "escalated",
                        "actor": SYSTEM,
                        "text": f"逾期未办结,提级至{level_name}督办(由{who}负责)",
                    }
                )
                if assignee is not None:
                    assignees[assignee.platform_id] = assignee
                    notices[(assignee.platform_id, level)].append(r)
                    new_deadlines[(assignee.platform_id, level)] = deadline
            await repo.add_events(session, events)
            moved_total += len(moved)
        for (platform_id, level), items in notices.items():
            await self._service.notifier.overdue_escalated(
                session,
                member=assignees[platform_id],
                level=level,
                rows=items,
                deadline=new_deadlines[(platform_id, level)],
                day=today,
            )
        return moved_total + len(top)

    # --- hourly follow-up ---------------------------------------------------------------------------

    async def followup(self, scheduled_for: datetime) -> None:
        now = scheduled_for
        async with self._sessions() as session:
            wait = self._config.deadlines.rating_wait_days
            expired = await repo.rating_expired(
                session, before=now - timedelta(days=wait), stage=str(states.Stage.AWAITING_RATING)
            )
            for ticket in expired:
                assert ticket.id is not None
                result = await self._service.close(
                    session, ticket.id, actor=SYSTEM_ACTOR, at=now, expired=True, text=f"{wait}天内评价期满"
                )
                if not isinstance(result, Applied):
                    log.info("ticket %s not closed: %s", ticket.id, result.reason)
            await session.commit()

    # --- the staff's daily digest -------------------------------------------------------------------

    async def daily_digest(self, scheduled_for: datetime) -> None:
        now = scheduled_for
        today = now.astimezone(self._service.tz).date()
        since = now - timedelta(days=1)
        async with self._sessions() as session:
            active = states.names(states.ACTIVE)
            counts = await repo.digest_counts(
                session, since=since, now=now, active=active, awaiting=states.names(states.RESOLVED)
            )
            flags = await repo.flag_counts(session, since=since)
            for member in await repo.all_staff(session):
                total = _sum_scope(counts, member)
                flag_total = _sum_scope(flags, member)
                tickets = await repo.escalated_active(
                    session, county=member.county, township=member.township, stages=active
                )
                if not any(total.values()) and not any(flag_total.values()) and not tickets:
                    continue
                await self._service.notifier.digest(
                    session, member=member, day=today, counts=total, flags=flag_total, escalated=tickets
                )
            await session.commit()


def _sum_scope(counts: dict[tuple[str, str], dict[str, int]], member: Member) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for (county, township), values in counts.items():
        if member.county and county and county != member.county:
            continue
        if member.township and township != member.township:
            continue
        for key, value in values.items():
            total[key] += value
    return dict(total)
