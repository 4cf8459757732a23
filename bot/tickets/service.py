"""Ticket state changes and what the bot says about them; shared by group messages, private chats, the
scheduled jobs and the dashboard's actions.

Every change is one ``UPDATE … WHERE version = :old`` (so two cadres resolving at once resolve once) plus
a ticket event with actor, time and text; every reply is an outbox row keyed by what caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import Config
from bot.directory import Directory
from bot.outbox import OutboxService
from bot.templates import Templates
from bot.tickets import calendar
from bot.tickets.roster import next_level, responsible
from storage.models import Group, Member, Ticket
from storage.repos import tickets as repo

log = logging.getLogger(__name__)

SYSTEM = "系统"
ACTIVE = ("open", "accepted")


class TextTools(Protocol):
    def normalize(self, text: str) -> str: ...

    def keywords(self, text: str) -> frozenset[str]: ...


class ClassifierSource(Protocol):
    """What the workflow needs of ``classifiers.ClassifierHolder``."""

    @property
    def current(self) -> TextTools: ...


@dataclass(frozen=True, slots=True)
class Actor:
    """Who changes a ticket: a member (chat) or a dashboard user (name only)."""

    name: str
    member: Member | None = None

    @staticmethod
    def of(member: Member) -> Actor:
        return Actor(member.name, member)


Check = Callable[[Ticket], str | None]


class TicketService:
    def __init__(
        self, *, outbox: OutboxService, templates: Templates, config: Config, clock: Clock, directory: Directory
    ) -> None:
        self.outbox = outbox
        self.directory = directory
        self.templates = templates
        self.config = config
        self.clock = clock
        self.tz = clock.tz

    # --- small helpers ------------------------------------------------------------------------------

    def deadline_for(self, kind: str, received: datetime) -> datetime:
        days = self.config.deadlines.working_days.get(kind, 10)  # type: ignore[call-overload]
        return calendar.deadline_after(received, days, at=self.config.deadlines.end_of_day, tz=self.tz)

    def fmt(self, moment: datetime | None) -> str:
        return calendar.format_deadline(moment, self.tz) if moment is not None else "—"

    def render(self, name: str, **values: Any) -> str:
        return self.templates.render(name, **values)

    async def transition(
        self, session: AsyncSession, ticket_id: int, check: Check, values: Callable[[Ticket], dict[str, Any]]
    ) -> tuple[Ticket | None, str | None]:
        """Re-read, check, update at the read version; retried when another writer got in between.

        Returns (the ticket after the change, None) or (the ticket as found, the reason it was refused).
        """
        for _ in range(3):
            ticket = await repo.get_ticket(session, ticket_id)
            if ticket is None:
                return None, "unknown"
            problem = check(ticket)
            if problem is not None:
                return ticket, problem
            changed = await repo.update_ticket(session, ticket_id, version=ticket.version, values=values(ticket))
            if changed is not None:
                return changed, None
        return await repo.get_ticket(session, ticket_id), "conflict"

    async def event(
        self, session: AsyncSession, ticket: Ticket, *, at: datetime, type: str, actor: str, text: str
    ) -> None:
        assert ticket.id is not None
        await repo.add_event(session, ticket_id=ticket.id, at=at, type=type, actor=actor, text=text)

    async def group_of(self, session: AsyncSession, ticket: Ticket) -> Group | None:
        if ticket.confidential or not ticket.group_name:
            return None
        return await self.directory.group_named(session, ticket.group_name)

    async def reporter_members(self, session: AsyncSession, ticket: Ticket) -> list[Member]:
        assert ticket.id is not None
        reps = await repo.reporters(session, ticket.id)
        found = await repo.members_by_platform_ids(session, [r.platform_id for r in reps])
        return [found[r.platform_id] for r in reps if r.platform_id in found]

    async def member(self, session: AsyncSession, platform_id: str | None) -> Member | None:
        if not platform_id:
            return None
        return await self.directory.member(session, platform_id)

    async def post(
        self,
        session: AsyncSession,
        ticket: Ticket,
        *,
        key: str,
        text: str,
        image_path: str | None = None,
        mentions: Sequence[Member] = (),
        mention_assignee: bool = False,
        respect_quiet: bool = False,
    ) -> None:
        """Say something about a ticket where its reporters are: its group, or privately when confidential.

        ``mention_assignee`` @s the person the ticket is assigned to, looked up here.
        """
        if mention_assignee:
            assignee = await self.member(session, ticket.assignee_platform_id)
            mentions = [*mentions, assignee] if assignee is not None else mentions
        group = await self.group_of(session, ticket)
        if group is not None:
            if respect_quiet and group.quiet:
                return
            await self.outbox.to_group(
                session, key=key, group=group, text=text, image_path=image_path, mentions=mentions
            )
            return
        for member in await self.reporter_members(session, ticket):
            await self.outbox.to_member(
                session, key=f"{key}:{member.platform_id}", member=member, text=text, image_path=image_path
            )

    async def reply(self, session: AsyncSession, *, key: str, group: Group | None, member: Member, text: str) -> None:
        """Answer the sender of a message where they wrote it."""
        if group is not None:
            await self.outbox.to_group(session, key=key, group=group, text=text)
        else:
            await self.outbox.to_member(session, key=key, member=member, text=text)

    async def tell(self, session: AsyncSession, *, key: str, member: Member | None, text: str) -> None:
        if member is not None:
            await self.outbox.to_member(session, key=key, member=member, text=text)

    # --- opening ------------------------------------------------------------------------------------

    async def open(
        self,
        session: AsyncSession,
        *,
        kind: str,
        category: str | None,
        at: datetime,
        reporter: Member,
        message_id: int,
        text: str,
        norm_text: str,
        keywords: frozenset[str],
        group: Group | None,
        account: str,
        confidential: bool,
        level: str = "village",
        parent: Ticket | None = None,
    ) -> tuple[Ticket, Member | None]:
        place: Group | Member = group if group is not None else reporter
        village, township, county = place.village, place.township, place.county
        assignee = await responsible(
            session, level=level, village=village, township=township, county=county, category=category
        )
        if confidential and (assignee is None or assignee.role != "staff"):
            level = "township" if level == "village" else level
            assignee = await responsible(
                session, level=level, village=village, township=township, county=county, category=category
            )
        ticket = Ticket(
            kind=kind,
            category=category,
            account=account,
            group_name=group.name if group is not None else None,
            county=county,
            township=township,
            village=village,
            assignee_name=assignee.name if assignee else None,
            assignee_platform_id=assignee.platform_id if assignee else None,
            level=level,
            status="open",
            confidential=confidential,
            priority=(parent.priority + 1) if parent is not None else 0,
            deadline=self.deadline_for(kind, at),
            opened_at=at,
            parent_id=parent.id if parent is not None else None,
            text=text,
            norm_text=norm_text,
            keywords=sorted(keywords),
        )
        ticket = await repo.add_ticket(session, ticket)
        assert ticket.id is not None
        await repo.add_reporter(
            session,
            ticket_id=ticket.id,
            platform_id=reporter.platform_id,
            name=reporter.name,
            message_id=message_id,
            at=at,
        )
        await repo.link_message(session, ticket_id=ticket.id, message_id=message_id)
        opened_text = text if parent is None else f"重复反映(原工单 #{parent.id}),提级督办:{text}"
        await self.event(session, ticket, at=at, type="opened", actor=reporter.name, text=opened_text)
        if assignee is not None:
            await self.event(
                session,
                ticket,
                at=at,
                type="assigned",
                actor=SYSTEM,
                text=f"{assignee.name}({self.templates.level_names.get(level, level)})",
            )
        return ticket, assignee

    async def merge(
        self,
        session: AsyncSession,
        ticket: Ticket,
        *,
        reporter: Member,
        message_id: int,
        at: datetime,
        text: str,
        keywords: frozenset[str],
    ) -> tuple[Ticket, bool]:
        """Add a reporter to an open ticket; True when they are new (多人反映 raises the priority)."""
        assert ticket.id is not None
        await repo.link_message(session, ticket_id=ticket.id, message_id=message_id)
        added = await repo.add_reporter(
            session,
            ticket_id=ticket.id,
            platform_id=reporter.platform_id,
            name=reporter.name,
            message_id=message_id,
            at=at,
        )
        if not added:
            await self.event(session, ticket, at=at, type="merged", actor=reporter.name, text=f"再次反映:{text}")
            return ticket, False
        merged_keywords = sorted(set(ticket.keywords or []) | set(keywords))
        updated, _ = await self.transition(
            session,
            ticket.id,
            lambda t: None,
            lambda t: {"priority": t.priority + 1, "keywords": merged_keywords},
        )
        await self.event(session, ticket, at=at, type="merged", actor=reporter.name, text=text)
        return updated or ticket, True

    # --- escalation, reopening ----------------------------------------------------------------------

    async def escalate(
        self,
        session: AsyncSession,
        ticket_id: int,
        *,
        actor: Actor,
        at: datetime,
        reason: str,
        event_type: str = "escalated",
        reopen: bool = False,
    ) -> tuple[Ticket | None, str | None]:
        """One level up (village → township → county) with the level's responsible person and a new deadline."""
        current = await repo.get_ticket(session, ticket_id)
        if current is None:
            return None, "unknown"
        target = next_level(current.level)
        if target is None and not reopen:
            return current, "top"
        level = target or current.level
        assignee = await responsible(
            session,
            level=level,
            village=current.village,
            township=current.township,
            county=current.county,
            category=current.category,
        )
        deadline = self.deadline_for(current.kind, at)

        def check(t: Ticket) -> str | None:
            if reopen:
                return None if t.status in ("resolved", "closed") else "state"
            return None if t.status in ACTIVE else ("closed" if t.status == "closed" else "resolved")

        def values(t: Ticket) -> dict[str, Any]:
            keep = not reopen and t.deadline is not None and t.deadline > deadline  # an approved extension stays
            change: dict[str, Any] = {
                "level": level,
                "deadline": t.deadline if keep else deadline,
                "reminded_for": None,
                "priority": t.priority + 1,
            }
            if assignee is not None:
                change["assignee_name"] = assignee.name
                change["assignee_platform_id"] = assignee.platform_id
            if reopen:
                change.update(status="accepted", resolved_at=None, closed_at=None, rating_requested_at=None)
            return change

        ticket, problem = await self.transition(session, ticket_id, check, values)
        if ticket is None or problem is not None:
            return ticket, problem
        level_name = self.templates.level_names.get(level, level)
        text = f"{reason}(提级至{level_name},由{ticket.assignee_name or '—'}负责)" if target else reason
        await self.event(session, ticket, at=at, type=event_type, actor=actor.name, text=text)
        if reopen and target:
            await self.event(session, ticket, at=at, type="escalated", actor=actor.name, text=f"提级至{level_name}督办")
        return ticket, None

    # --- resolution, photos, ratings ----------------------------------------------------------------

    async def resolve(
        self, session: AsyncSession, ticket_id: int, *, actor: Actor, at: datetime, note: str, message_id: int | None
    ) -> tuple[Ticket | None, str | None]:
        def check(t: Ticket) -> str | None:
            if t.status == "closed":
                return "closed"
            if t.status == "resolved":
                return "resolved"
            return None

        ticket, problem = await self.transition(
            session,
            ticket_id,
            check,
            lambda t: {
                "status": "resolved",
                "resolved_at": at,
                "resolution_note": note,
                "photo_missing": False,
                "rating_requested_at": None,
                "first_response_at": t.first_response_at or at,
            },
        )
        if ticket is None or problem is not None:
            return ticket, problem
        if message_id is not None:
            await repo.link_message(session, ticket_id=ticket_id, message_id=message_id)
        await self.event(session, ticket, at=at, type="resolved", actor=actor.name, text=note)
        return ticket, None

    async def add_photo(
        self,
        session: AsyncSession,
        ticket: Ticket,
        *,
        path: str | None,
        message_id: int | None,
        at: datetime,
        actor: str,
    ) -> None:
        assert ticket.id is not None
        if path is None:
            await self.event(session, ticket, at=at, type="photo", actor=actor, text="办结照片下载失败,照片缺失")
            return
        await repo.add_photo(session, ticket_id=ticket.id, path=path, message_id=message_id, at=at, uploaded_by=actor)
        if message_id is not None:
            await repo.link_message(session, ticket_id=ticket.id, message_id=message_id)
        await self.event(session, ticket, at=at, type="photo", actor=actor, text=path)

    async def announce_resolution(
        self, session: AsyncSession, ticket_id: int, *, at: datetime, photo_path: str | None, photo_missing: bool
    ) -> Ticket | None:
        """Post the resolution (with its photo) where the reporters are and ask them to rate; once per resolution."""
        ticket, problem = await self.transition(
            session,
            ticket_id,
            lambda t: None if t.status == "resolved" and t.rating_requested_at is None else "announced",
            lambda t: {"rating_requested_at": at, "photo_missing": photo_missing, "rating": None},
        )
        if ticket is None or problem is not None:
            return None
        reporters = await self.reporter_members(session, ticket)
        text = self.render(
            "ticket_resolved",
            ticket_id=ticket.id,
            kind=ticket.kind,
            note=ticket.resolution_note or "",
            actor=ticket.assignee_name or "",
            reporters=[m.name for m in reporters],
            photo_missing=photo_missing,
        )
        await self.post(
            session,
            ticket,
            key=f"resolved:{ticket.id}:v{ticket.version}",
            text=text,
            image_path=photo_path,
            mentions=reporters,
        )
        return ticket

    async def rate(
        self, session: AsyncSession, ticket_id: int, *, rating: str, rater: Member, at: datetime, text: str
    ) -> tuple[Ticket | None, str | None]:
        """满意 / 基本满意 close the ticket; 不满意 reopens it one level up."""
        if rating == "unsatisfied":
            ticket, problem = await self.escalate(
                session,
                ticket_id,
                actor=Actor.of(rater),
                at=at,
                reason=f"评价不满意:{text}",
                event_type="reopened",
                reopen=True,
            )
            if ticket is not None and problem is None:
                await self.event(session, ticket, at=at, type="rated", actor=rater.name, text=f"unsatisfied:{text}")
                await repo.update_ticket(session, ticket_id, version=ticket.version, values={"rating": "unsatisfied"})
                # a new resolution of the reopened ticket asks again; the rating shown is the latest answer
            return ticket, problem
        ticket, problem = await self.transition(
            session,
            ticket_id,
            lambda t: None if t.status == "resolved" else t.status,
            lambda t: {"rating": rating, "status": "closed", "closed_at": at},
        )
        if ticket is None or problem is not None:
            return ticket, problem
        await self.event(session, ticket, at=at, type="rated", actor=rater.name, text=f"{rating}:{text}")
        await self.event(session, ticket, at=at, type="closed", actor=SYSTEM, text="评价后办结归档")
        return ticket, None

    # --- extensions, transfers ----------------------------------------------------------------------

    async def extend(
        self, session: AsyncSession, ticket_id: int, *, actor: Actor, at: datetime, working_days: int
    ) -> tuple[Ticket | None, str | None]:
        def values(t: Ticket) -> dict[str, Any]:
            base = t.deadline or self.deadline_for(t.kind, at)
            new = calendar.extend_deadline(base, working_days, at=self.config.deadlines.end_of_day, tz=self.tz)
            return {"deadline": new, "reminded_for": None}

        ticket, problem = await self.transition(
            session, ticket_id, lambda t: None if t.status in ACTIVE else t.status, values
        )
        if ticket is None or problem is not None:
            return ticket, problem
        await self.event(
            session,
            ticket,
            at=at,
            type="extended",
            actor=actor.name,
            text=f"延期{working_days}个工作日,新时限{self.fmt(ticket.deadline)}",
        )
        return ticket, None

    async def transfer(
        self, session: AsyncSession, ticket_id: int, *, to: Member, actor: Actor, at: datetime
    ) -> tuple[Ticket | None, str | None]:
        ticket, problem = await self.transition(
            session,
            ticket_id,
            lambda t: None if t.status != "closed" else "closed",
            lambda t: {"assignee_name": to.name, "assignee_platform_id": to.platform_id},
        )
        if ticket is None or problem is not None:
            return ticket, problem
        await self.event(session, ticket, at=at, type="transferred", actor=actor.name, text=f"转交{to.name}办理")
        return ticket, None

    def photo_window(self) -> timedelta:
        return timedelta(minutes=self.config.deadlines.photo_window_minutes)
