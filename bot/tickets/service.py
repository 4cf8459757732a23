"""Ticket state changes and what the bot says about them; shared by group messages, private chats, the
scheduled jobs and the dashboard's actions.

Every change is decided by the state machine (``states.apply``) and written as one
``UPDATE … WHERE version = :old`` (so two cadres resolving at once resolve once) plus a ticket event with
actor, time and text; every reply is an outbox row keyed by what caused it. A refused action writes
nothing and comes back as a ``states.Refusal`` whose wording is a template.
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
from bot.templates import Templates
from bot.tickets import calendar, states
from bot.tickets.notify import Event, Notifier, What
from bot.tickets.roster import responsible
from storage.models import Group, Member, Ticket, TicketReporter
from storage.repos import tickets as repo

log = logging.getLogger(__name__)

SYSTEM = "系统"
_NEEDS_REPORTERS = frozenset({states.Op.RATE, states.Op.EXPIRE_RATING, states.Op.CLOSE, states.Op.SPLIT})
_COLUMNS = (
    "level",
    "deadline",
    "overdue",
    "first_response_at",
    "resolved_at",
    "closed_at",
    "rating_requested_at",
    "resolution_note",
    "photo_missing",
    "rating",
)


def state_of(ticket: Ticket, reporters: Sequence[TicketReporter] = ()) -> states.State:
    """The state machine's view of a stored ticket."""
    return states.State(
        stage=states.Stage(ticket.stage),
        kind=ticket.kind,
        level=ticket.level,
        confidential=ticket.confidential,
        deadline=ticket.deadline,
        overdue=ticket.overdue,
        first_response_at=ticket.first_response_at,
        resolved_at=ticket.resolved_at,
        closed_at=ticket.closed_at,
        rating_requested_at=ticket.rating_requested_at,
        resolution_note=ticket.resolution_note,
        photo_missing=ticket.photo_missing,
        rating=ticket.rating,
        reporters=tuple(r.platform_id for r in reporters),
        ratings=tuple(sorted((r.platform_id, r.rating) for r in reporters if r.rating)),
    )


def _columns(before: states.State, outcome: states.Outcome) -> dict[str, Any]:
    after = outcome.state
    change: dict[str, Any] = {"stage": str(after.stage), "status": str(after.status)}
    for name in _COLUMNS:
        if getattr(after, name) != getattr(before, name):
            change[name] = getattr(after, name)
    if "deadline" in change:
        change["reminded_for"] = None
    if outcome.raise_priority:
        change["priority"] = Ticket.priority + 1
    return change


@dataclass(frozen=True, slots=True)
class Applied:
    """An action the state machine accepted: the ticket as written, and the state before it."""

    ticket: Ticket
    before: states.State
    outcome: states.Outcome


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
    role: states.Role = states.Role.STAFF

    @staticmethod
    def of(member: Member) -> Actor:
        role = {"staff": states.Role.STAFF, "cadre": states.Role.CADRE}.get(member.role, states.Role.REPORTER)
        return Actor(member.name, member, role)


SYSTEM_ACTOR = Actor(SYSTEM, role=states.Role.SYSTEM)


class TicketService:
    def __init__(
        self, *, notifier: Notifier, templates: Templates, config: Config, clock: Clock, directory: Directory
    ) -> None:
        self.notifier = notifier
        self.directory = directory
        self.templates = templates
        self.config = config
        self.clock = clock
        self.tz = clock.tz
        self.calendar = calendar.WorkCalendar.of(config.deadlines.holidays, config.deadlines.workdays)

    # --- small helpers ------------------------------------------------------------------------------

    def deadline_for(self, kind: str, received: datetime) -> datetime:
        days = self.config.deadlines.working_days.get(kind, 10)  # type: ignore[call-overload]
        return self.calendar.deadline_after(received, days, at=self.config.deadlines.end_of_day, tz=self.tz)

    def fmt(self, moment: datetime | None) -> str:
        return calendar.format_deadline(moment, self.tz) if moment is not None else "—"

    def render(self, name: str, **values: Any) -> str:
        return self.templates.render(name, **values)

    async def apply(
        self,
        session: AsyncSession,
        ticket_id: int,
        action: states.Action,
        role: states.Role,
        *,
        values: Callable[[Ticket, states.Outcome], dict[str, Any]] | None = None,
    ) -> Applied | states.Refusal:
        """Re-read the ticket, ask the state machine, write the new state at the version read.

        Retried when another writer got in between; after three tries the action is refused as a
        conflict. A refused action writes nothing. ``values`` adds columns the machine does not own
        (the assignee of a new level).
        """
        for _ in range(3):
            ticket = await repo.get_ticket(session, ticket_id)
            if ticket is None:
                return states.Refusal(states.Reason.UNKNOWN)
            reporters = await repo.reporters(session, ticket_id) if action.op in _NEEDS_REPORTERS else []
            before = state_of(ticket, reporters)
            outcome = states.apply(before, action, role)
            if isinstance(outcome, states.Refusal):
                return outcome
            change = _columns(before, outcome)
            if values is not None:
                change.update(values(ticket, outcome))
            changed = await repo.update_ticket(session, ticket_id, version=ticket.version, values=change)
            if changed is None:
                continue
            if outcome.reset_ratings:
                await repo.clear_ratings(session, ticket_id)
            if action.op == states.Op.RATE and action.rater and not outcome.reset_ratings:
                await repo.set_rating(
                    session, ticket_id=ticket_id, platform_id=action.rater, rating=str(action.rating), at=action.at
                )
            return Applied(changed, before, outcome)
        return states.Refusal(states.Reason.CONFLICT)

    def refusal_text(self, refusal: states.Refusal, ticket_id: int) -> str:
        return self.render(refusal.template, ticket_id=ticket_id)

    async def event(
        self, session: AsyncSession, ticket: Ticket, *, at: datetime, type: str, actor: str, text: str
    ) -> None:
        assert ticket.id is not None
        await repo.add_event(session, ticket_id=ticket.id, at=at, type=type, actor=actor, text=text)

    async def member(self, session: AsyncSession, platform_id: str | None) -> Member | None:
        if not platform_id:
            return None
        return await self.directory.member(session, platform_id)

    async def notify(self, session: AsyncSession, event: Event) -> None:
        await self.notifier.notify(session, event)

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
            status=str(states.Status.OPEN),
            stage=str(states.Stage.NEW),
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
        result = await self.apply(
            session,
            ticket.id,
            states.Action(states.Op.MERGE, at, text=text),
            states.Role.SYSTEM,
            values=lambda t, _o: {"priority": t.priority + 1, "keywords": merged_keywords},
        )
        await self.event(session, ticket, at=at, type="merged", actor=reporter.name, text=text)
        return (result.ticket if isinstance(result, Applied) else ticket), True

    # --- the actions ----------------------------------------------------------------------------------
    # Each returns what ``apply`` returned and records the event(s); what to say about it is the caller's.

    async def simple(
        self, session: AsyncSession, ticket_id: int, op: states.Op, *, actor: Actor, at: datetime, text: str = ""
    ) -> Applied | states.Refusal:
        """accept, progress, note, mark a request for an extension: a state change and one event."""
        result = await self.apply(session, ticket_id, states.Action(op, at, text=text), actor.role)
        if isinstance(result, Applied):
            await self.event(session, result.ticket, at=at, type=_EVENT_OF[op], actor=actor.name, text=text)
        return result

    async def escalate(
        self, session: AsyncSession, ticket_id: int, *, actor: Actor, at: datetime, reason: str
    ) -> Applied | states.Refusal:
        """One level up (village → township → county) with the level's responsible person and a new term."""
        current = await repo.get_ticket(session, ticket_id)
        if current is None:
            return states.Refusal(states.Reason.UNKNOWN)
        target = states.next_level(current.level)
        assignee = None
        if target is not None:
            assignee = await responsible(
                session,
                level=target,
                village=current.village,
                township=current.township,
                county=current.county,
                category=current.category,
            )
        action = states.Action(states.Op.ESCALATE, at, text=reason, deadline=self.deadline_for(current.kind, at))
        result = await self.apply(session, ticket_id, action, actor.role, values=_assign(assignee))
        if isinstance(result, states.Refusal):
            return result
        ticket = result.ticket
        level_name = self.templates.level_names.get(ticket.level, ticket.level)
        text = f"{reason}(提级至{level_name},由{ticket.assignee_name or '—'}负责)"
        await self.event(session, ticket, at=at, type="escalated", actor=actor.name, text=text)
        return result

    async def resolve(
        self,
        session: AsyncSession,
        ticket_id: int,
        *,
        actor: Actor,
        at: datetime,
        note: str,
        message_id: int | None,
        photo: bool = False,
    ) -> Applied | states.Refusal:
        """办结: with a photo (or for a consultation/clue) the resolution is announced; else 待补照片."""
        action = states.Action(states.Op.RESOLVE, at, text=note, photo=photo)
        result = await self.apply(session, ticket_id, action, actor.role)
        if isinstance(result, states.Refusal):
            return result
        if message_id is not None:
            await repo.link_message(session, ticket_id=ticket_id, message_id=message_id)
        await self.event(session, result.ticket, at=at, type="resolved", actor=actor.name, text=note)
        return result

    async def attach_photo(
        self,
        session: AsyncSession,
        ticket_id: int,
        *,
        actor: Actor,
        at: datetime,
        path: str | None,
        message_id: int | None,
    ) -> Applied | states.Refusal:
        """A photo for the ticket (``path`` None: it could not be downloaded). Awaiting its photo, the
        resolution is announced with it; awaiting ratings, it is posted after the announcement; before
        the resolution it is only attached (uploading never resolves)."""
        action = states.Action(states.Op.ATTACH_PHOTO, at, photo=path is not None)
        result = await self.apply(session, ticket_id, action, actor.role)
        if isinstance(result, states.Refusal):
            return result
        ticket = result.ticket
        if path is None:
            await self.event(session, ticket, at=at, type="photo", actor=actor.name, text="办结照片下载失败,照片缺失")
        else:
            await repo.add_photo(
                session, ticket_id=ticket_id, path=path, message_id=message_id, at=at, uploaded_by=actor.name
            )
            await self.event(session, ticket, at=at, type="photo", actor=actor.name, text="上传了一张照片")
        if message_id is not None:
            await repo.link_message(session, ticket_id=ticket_id, message_id=message_id)
        if result.before.stage == states.Stage.AWAITING_PHOTO:
            await self.announce_resolution(session, ticket, photo_path=path)
        elif result.before.stage == states.Stage.AWAITING_RATING and path is not None:
            await self.notify(session, Event(What.PHOTO_ADDED, ticket, actor=actor.name, image_path=path))
        return result

    async def waive_photo(
        self, session: AsyncSession, ticket_id: int, *, actor: Actor, at: datetime, reason: str
    ) -> Applied | states.Refusal:
        result = await self.apply(session, ticket_id, states.Action(states.Op.WAIVE_PHOTO, at, text=reason), actor.role)
        if isinstance(result, Applied):
            await self.event(
                session, result.ticket, at=at, type="photo_waived", actor=actor.name, text=reason or "免于补充办结照片"
            )
            await self.announce_resolution(session, result.ticket, photo_path=None)
        return result

    async def announce_resolution(self, session: AsyncSession, ticket: Ticket, *, photo_path: str | None) -> None:
        """Post the resolution (with its photo) where the reporters are and ask every one of them to rate."""
        await self.notify(session, Event(What.RESOLVED, ticket, image_path=photo_path))

    async def rate(
        self, session: AsyncSession, ticket_id: int, *, rating: str, rater: Member, at: datetime, text: str
    ) -> Applied | states.Refusal:
        """A reporter's rating (an event each); 不满意 reopens the ticket one level up at once."""
        current = await repo.get_ticket(session, ticket_id)
        if current is None:
            return states.Refusal(states.Reason.UNKNOWN)
        assignee = None
        target = states.next_level(current.level) or current.level
        if rating == states.Rating.UNSATISFIED and target != current.level:
            assignee = await responsible(
                session,
                level=target,
                village=current.village,
                township=current.township,
                county=current.county,
                category=current.category,
            )
        action = states.Action(
            states.Op.RATE,
            at,
            text=text,
            rating=rating,
            rater=rater.platform_id,
            deadline=self.deadline_for(current.kind, at),
        )
        result = await self.apply(session, ticket_id, action, states.Role.REPORTER, values=_assign(assignee))
        if isinstance(result, states.Refusal):
            return result
        ticket = result.ticket
        name = self.templates.rating_names.get(rating, rating)
        said = name if not text or text == name else f"{name}({text})"
        if rating == states.Rating.UNSATISFIED:
            level_name = self.templates.level_names.get(ticket.level, ticket.level)
            await self.event(session, ticket, at=at, type="reopened", actor=rater.name, text=f"评价不满意:{text}")
            if result.outcome.level_changed:
                await self.event(
                    session, ticket, at=at, type="escalated", actor=rater.name, text=f"提级至{level_name}督办"
                )
        await self.event(session, ticket, at=at, type="rated", actor=rater.name, text=said)
        if result.outcome.closed_now:
            summary = self.templates.rating_names.get(ticket.rating or "", "—")
            await self.event(
                session, ticket, at=at, type="closed", actor=SYSTEM, text=f"全部反映人已评价,办结归档(评价:{summary})"
            )
        return result

    async def close(
        self,
        session: AsyncSession,
        ticket_id: int,
        *,
        actor: Actor,
        at: datetime,
        expired: bool = False,
        text: str = "",
    ) -> Applied | states.Refusal:
        """Close a resolution still waiting for ratings: by staff, or when the rating wait ends."""
        op = states.Op.EXPIRE_RATING if expired else states.Op.CLOSE
        result = await self.apply(session, ticket_id, states.Action(op, at, text=text), actor.role)
        if isinstance(result, Applied):
            ticket = result.ticket
            if ticket.rating is None:
                note = f"{text or '未获评价'},记为未评价"
            else:
                note = f"{text or '办结归档'}(评价:{self.templates.rating_names.get(ticket.rating, ticket.rating)})"
            await self.event(session, ticket, at=at, type="closed", actor=actor.name, text=note)
        return result

    async def reopen(
        self, session: AsyncSession, ticket_id: int, *, actor: Actor, at: datetime, reason: str
    ) -> Applied | states.Refusal:
        current = await repo.get_ticket(session, ticket_id)
        if current is None:
            return states.Refusal(states.Reason.UNKNOWN)
        action = states.Action(states.Op.REOPEN, at, text=reason, deadline=self.deadline_for(current.kind, at))
        result = await self.apply(session, ticket_id, action, actor.role)
        if isinstance(result, Applied):
            await self.event(
                session, result.ticket, at=at, type="reopened", actor=actor.name, text=reason or "重新办理"
            )
        return result

    # --- extensions, transfers ----------------------------------------------------------------------

    async def extend(
        self, session: AsyncSession, ticket_id: int, *, actor: Actor, at: datetime, working_days: int
    ) -> Applied | states.Refusal:
        """Approve an extension: the only way a deadline moves without a change of level."""
        current = await repo.get_ticket(session, ticket_id)
        if current is None:
            return states.Refusal(states.Reason.UNKNOWN)
        base = current.deadline or self.deadline_for(current.kind, at)
        new = self.calendar.extend_deadline(base, working_days, at=self.config.deadlines.end_of_day, tz=self.tz)
        action = states.Action(states.Op.EXTEND, at, deadline=new if working_days >= 1 else None)
        result = await self.apply(session, ticket_id, action, actor.role)
        if isinstance(result, Applied):
            await self.event(
                session,
                result.ticket,
                at=at,
                type="extended",
                actor=actor.name,
                text=f"延期{working_days}个工作日,新时限{self.fmt(result.ticket.deadline)}",
            )
        return result

    async def transfer(
        self, session: AsyncSession, ticket_id: int, *, to: Member, actor: Actor, at: datetime
    ) -> Applied | states.Refusal:
        result = await self.apply(
            session, ticket_id, states.Action(states.Op.TRANSFER, at), actor.role, values=_assign(to)
        )
        if isinstance(result, Applied):
            await self.event(
                session, result.ticket, at=at, type="transferred", actor=actor.name, text=f"转交{to.name}办理"
            )
        return result

    def photo_window(self) -> timedelta:
        return timedelta(minutes=self.config.deadlines.photo_window_minutes)


_EVENT_OF = {
    states.Op.ACCEPT: "accepted",
    states.Op.PROGRESS: "progress",
    states.Op.NOTE: "note",
    states.Op.REQUEST_EXTENSION: "extension_requested",
}


def _assign(member: Member | None) -> Callable[[Ticket, states.Outcome], dict[str, Any]] | None:
    if member is None:
        return None
    return lambda _ticket, _outcome: {"assignee_name": member.name, "assignee_platform_id": member.platform_id}
