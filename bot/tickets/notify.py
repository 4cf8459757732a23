"""The one notifier: who hears about a ticket, a flag or a broadcast, and in what words.

Every outbox row the bot queues is decided here. A caller says what happened (an ``Event``: what, to
which ticket, caused by which message or by the dashboard) and the notifier decides

- the audience: the ticket's group, or each reporter privately when the ticket is confidential or has
  no group; the assignee; the discipline staff of the ticket's place; the sender of the message that
  caused it, where they wrote;
- the words: a template (``bot/templates.toml``) with display names and dates formatted in Chinese,
  never a raw key;
- the rules that hold for every message: a confidential ticket never reaches a group or a cadre; a quiet
  group gets no acknowledgements (an answer to someone there goes privately);
- the dedupe key, derived from the cause (the message id, or the ticket's version for a dashboard
  action, or the day for a job), so a crash and a retry queue each message once.

``deliveries`` is the decision as data (what to send, to whom, under which key) and ``notify`` sends it;
the outbox (``bot/outbox.py``) is the only transport under it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import AlertConfig
from bot.directory import Directory
from bot.outbox import OutboxService
from bot.templates import Templates
from bot.tickets import calendar
from bot.tickets.roster import county_staff, staff_for, township_staff
from storage.models import Group, Member, Ticket
from storage.repos import outbox as outbox_repo
from storage.repos import tickets as repo

ALERT_KEY = "alert:"
ALERT_GROUP_KEY = "alert-group:"
BANQUET_ALERT_KEY = "banquet-alert:"
NOBODY = {"village": "村两委", "township": "乡镇纪委", "county": "县纪委"}
"""Who a ticket is with when the roster names nobody, by level."""


class What(StrEnum):
    """What happened to a ticket."""

    OPENED = "opened"
    MERGED = "merged"
    CONFIDENTIAL_OPENED = "confidential_opened"
    ACCEPTED = "accepted"
    PROGRESS = "progress"
    RESOLVED = "resolved"
    PHOTO_REQUESTED = "photo_requested"
    PHOTO_ADDED = "photo_added"
    RATED = "rated"
    REOPENED = "reopened"
    ESCALATED = "escalated"
    EXTENSION_REQUESTED = "extension_requested"
    EXTENDED = "extended"
    TRANSFERRED = "transferred"
    SPLIT = "split"
    MERGED_BY_STAFF = "merged_by_staff"


class To(StrEnum):
    """An audience."""

    REPORTED = "reported"
    """Where the ticket's reporters are: its group, or each reporter privately (confidential, no group)."""
    ASSIGNEE = "assignee"
    """The person the ticket is assigned to, privately."""
    ASSIGNEE_UNLESS_GROUP = "assignee_unless_group"
    """The assignee privately, when no group heard of it (quiet, confidential, private report)."""
    STAFF = "staff"
    """The discipline staff who supervise the ticket's place, each privately."""
    SENDER = "sender"
    """The sender of the message that caused it, where they wrote it (a quiet group: privately)."""
    SENDER_PRIVATE = "sender_private"
    """The sender of the message that caused it, privately."""
    SENDER_IF_PRIVATE = "sender_if_private"
    """The sender, privately, when the chat they wrote in does not hear of it: they wrote privately, or about a
    confidential ticket (from a group, the group's message answers them)."""


class Mention(StrEnum):
    NONE = "none"
    ASSIGNEE = "assignee"
    REPORTERS = "reporters"


@dataclass(frozen=True, slots=True)
class Origin:
    """The chat message that caused an event: its id, who wrote it, and in which group (None: privately)."""

    message_id: int
    member: Member
    group: Group | None


@dataclass(frozen=True, slots=True)
class Event:
    """What happened to which ticket, caused by which message (``origin``; None: the dashboard or a job)."""

    what: What
    ticket: Ticket
    origin: Origin | None = None
    actor: str = ""
    """The display name of who acted (never a login name)."""
    values: Mapping[str, Any] = field(default_factory=dict)
    """Event-specific template values (a progress text, a reason, days, a count …)."""
    image_path: str | None = None
    other: Ticket | None = None
    """SPLIT: the ticket split from; MERGED_BY_STAFF: the ticket merged away."""
    member: Member | None = None
    """TRANSFERRED: the new assignee."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one audience, before the audience is looked up."""

    to: To
    template: str
    key: str
    quiet: bool = False
    """True: a quiet group does not get it."""
    mention: Mention = Mention.NONE
    ticket: Ticket | None = None
    """The ticket whose audience it is, when not the event's (a merge tells the source's group too)."""


class Notifier:
    def __init__(
        self, *, outbox: OutboxService, templates: Templates, directory: Directory, tz: tzinfo, public_url: str = ""
    ) -> None:
        self.outbox = outbox
        self.templates = templates
        self.directory = directory
        self.tz = tz
        self.public_url = public_url

    # --- words ----------------------------------------------------------------------------------------

    def fmt(self, moment: datetime | None) -> str:
        return calendar.format_deadline(moment, self.tz) if moment is not None else "—"

    def render(self, name: str, **values: Any) -> str:
        return self.templates.render(name, **values)

    def assignee_name(self, ticket: Ticket) -> str:
        return ticket.assignee_name or NOBODY.get(ticket.level, "村两委")

    def values(self, event: Event) -> dict[str, Any]:
        ticket = event.ticket
        base: dict[str, Any] = {
            "ticket_id": ticket.id,
            "kind": ticket.kind,
            "category": ticket.category or "other",
            "village": ticket.village,
            "level": ticket.level,
            "assignee": self.assignee_name(ticket),
            "deadline": self.fmt(ticket.deadline),
            "actor": event.actor,
        }
        if event.origin is not None:
            base.setdefault("reporter", event.origin.member.name)
        return {**base, **event.values}

    # --- the decision ---------------------------------------------------------------------------------

    def deliveries(self, event: Event) -> list[Delivery]:
        """Who hears of ``event``, in which template, under which dedupe key."""
        ticket, origin = event.ticket, event.origin
        mid = origin.message_id if origin is not None else None
        cause = str(mid) if mid is not None else f"{ticket.id}:v{ticket.version}"
        what = event.what
        if what == What.OPENED:
            parent = event.values.get("parent_id")
            if not ticket.assignee_platform_id:
                template = "ticket_ack_unassigned"
            elif parent is not None:
                template = "ticket_ack_repeat"
            else:
                template = "ticket_ack_consult" if ticket.kind == "consult" else "ticket_ack"
            return [
                Delivery(To.REPORTED, template, f"ack:{cause}", quiet=True, mention=Mention.ASSIGNEE),
                Delivery(To.ASSIGNEE_UNLESS_GROUP, "ticket_assigned", f"assigned:{ticket.id}"),
            ]
        if what == What.MERGED:
            return [Delivery(To.REPORTED, "ticket_ack_merged", f"ack:{cause}", quiet=True, mention=Mention.ASSIGNEE)]
        if what == What.CONFIDENTIAL_OPENED:
            in_group = origin is not None and origin.group is not None
            return [
                Delivery(To.ASSIGNEE, "ticket_staff_new", f"staff-new:{ticket.id}"),
                Delivery(
                    To.SENDER_PRIVATE,
                    "ticket_clue_private" if in_group else "ticket_private_ack",
                    f"clue:{cause}" if in_group else f"ack:{cause}",
                ),
            ]
        if what in (What.ACCEPTED, What.PROGRESS):
            template = f"ticket_{what}"
            if origin is None:
                return [Delivery(To.REPORTED, template, f"{what}:{cause}", quiet=True)]
            if origin.group is None or ticket.confidential:
                return [
                    Delivery(To.SENDER, template, f"reply:{cause}"),
                    Delivery(To.REPORTED, template, f"relay:{cause}", quiet=True),
                ]
            return [Delivery(To.REPORTED, template, f"reply:{cause}", quiet=True)]
        if what == What.RESOLVED:
            return [
                Delivery(
                    To.REPORTED, "ticket_resolved", f"resolved:{ticket.id}:v{ticket.version}", mention=Mention.REPORTERS
                )
            ]
        if what == What.PHOTO_REQUESTED:
            return [Delivery(To.SENDER_PRIVATE, "ticket_photo_request", f"photo-request:{cause}")]
        if what == What.PHOTO_ADDED:
            return [Delivery(To.REPORTED, "ticket_photo_added", f"photo:{ticket.id}:v{ticket.version}")]
        if what == What.RATED:
            if event.values.get("rating") == "unsatisfied":
                return [
                    Delivery(To.REPORTED, "ticket_reopened", f"rated:{cause}", mention=Mention.ASSIGNEE),
                    Delivery(To.ASSIGNEE_UNLESS_GROUP, "ticket_reopened", f"rated:{cause}:assignee"),
                ]
            return [Delivery(To.REPORTED, "ticket_rating_thanks", f"rated:{cause}", quiet=True)]
        if what == What.REOPENED:
            return [
                Delivery(To.REPORTED, "ticket_reopened_by_staff", f"reopened:{cause}", mention=Mention.ASSIGNEE),
                Delivery(To.ASSIGNEE_UNLESS_GROUP, "ticket_reopened_by_staff", f"reopened:{cause}:assignee"),
            ]
        if what == What.ESCALATED:
            return [
                Delivery(To.REPORTED, "ticket_escalated", f"escalated:{cause}", mention=Mention.ASSIGNEE),
                Delivery(To.SENDER_IF_PRIVATE, "ticket_escalated", f"reply:{cause}:self"),
                Delivery(To.ASSIGNEE, "ticket_transferred", f"escalated:{cause}:assignee"),
            ]
        if what == What.EXTENSION_REQUESTED:
            return [
                Delivery(To.STAFF, "ticket_extension_requested", f"extension:{cause}"),
                Delivery(To.SENDER, "ticket_extension_pending", f"reply:{cause}"),
            ]
        if what == What.EXTENDED:
            return [
                Delivery(To.REPORTED, "ticket_extended", f"extended:{cause}"),
                Delivery(To.SENDER_IF_PRIVATE, "ticket_extended", f"reply:{cause}"),
            ]
        if what == What.TRANSFERRED:
            return [Delivery(To.ASSIGNEE, "ticket_transferred", f"transfer:{cause}")]
        if what == What.SPLIT:
            source = event.other.id if event.other is not None else ticket.id
            return [
                Delivery(
                    To.REPORTED, "ticket_split", f"split:{source}:{ticket.id}", quiet=True, mention=Mention.ASSIGNEE
                )
            ]
        if what == What.MERGED_BY_STAFF:
            gone = event.other
            assert gone is not None
            key = f"merged:{gone.id}:{ticket.id}"
            out = [Delivery(To.REPORTED, "ticket_merged_by_staff", key, quiet=True)]
            if gone.group_name != ticket.group_name:
                out.append(Delivery(To.REPORTED, "ticket_merged_by_staff", f"{key}:source", quiet=True, ticket=gone))
            return out
        raise ValueError(f"no delivery for {what}")

    # --- sending --------------------------------------------------------------------------------------

    async def notify(self, session: AsyncSession, event: Event) -> None:
        """Decide the audience and words of ``event`` and queue them in the outbox."""
        values = self.values(event)
        if event.what == What.RESOLVED:
            ticket = event.ticket
            values.setdefault("note", ticket.resolution_note or "")
            values.setdefault("photo_missing", ticket.photo_missing)
            values.setdefault("reporters", [m.name for m in await self.reporter_members(session, ticket)])
            values["actor"] = event.actor or self.assignee_name(ticket)
        group_heard = False
        for delivery in self.deliveries(event):
            ticket = delivery.ticket or event.ticket
            text = self.render(delivery.template, **values)
            if delivery.to == To.REPORTED:
                group_heard |= await self._to_reported(session, ticket, delivery, text, event.image_path)
            elif delivery.to in (To.ASSIGNEE, To.ASSIGNEE_UNLESS_GROUP):
                if delivery.to == To.ASSIGNEE_UNLESS_GROUP and group_heard:
                    continue
                member = event.member or await self._member(session, ticket.assignee_platform_id)
                await self._private(session, ticket, delivery.key, member, text)
            elif delivery.to == To.STAFF:
                staff = staff_for(await repo.all_staff(session), township=ticket.township, county=ticket.county)
                for member in staff:
                    await self._private(session, ticket, f"{delivery.key}:{member.platform_id}", member, text)
            elif event.origin is not None:
                origin = event.origin
                if delivery.to == To.SENDER_IF_PRIVATE and origin.group is not None and not ticket.confidential:
                    continue
                if delivery.to in (To.SENDER, To.SENDER_IF_PRIVATE):
                    await self._answer(session, origin, delivery.key, text, confidential=ticket.confidential)
                else:
                    await self._private(session, ticket, delivery.key, origin.member, text, reporter=True)

    async def answer(
        self,
        session: AsyncSession,
        origin: Origin,
        template: str,
        *,
        suffix: str = "",
        confidential: bool = False,
        **values: Any,
    ) -> None:
        """Answer the sender of a message where they wrote (help, a refusal, which ticket to rate); about a
        confidential ticket, privately."""
        text = self.render(template, **values)
        key = f"reply:{origin.message_id}{suffix}"
        await self._answer(session, origin, key, text, confidential=confidential)

    async def _answer(self, session: AsyncSession, origin: Origin, key: str, text: str, *, confidential: bool) -> None:
        group = origin.group
        if group is not None and not group.quiet and not confidential:
            await self.outbox.to_group(session, key=key, group=group, text=text)
        else:
            await self.outbox.to_member(session, key=key, member=origin.member, text=text)

    async def _to_reported(
        self, session: AsyncSession, ticket: Ticket, delivery: Delivery, text: str, image_path: str | None
    ) -> bool:
        """Into the ticket's group (True), or to each reporter privately; a quiet group gets nothing."""
        group = None
        if not ticket.confidential and ticket.group_name:
            group = await self.directory.group_named(session, ticket.group_name)
        if group is not None:
            if delivery.quiet and group.quiet:
                return False
            mentions: list[Member] = []
            if delivery.mention == Mention.ASSIGNEE:
                assignee = await self._member(session, ticket.assignee_platform_id)
                mentions = [assignee] if assignee is not None else []
            elif delivery.mention == Mention.REPORTERS:
                mentions = await self.reporter_members(session, ticket)
            await self.outbox.to_group(
                session, key=delivery.key, group=group, text=text, image_path=image_path, mentions=mentions
            )
            return True
        for member in await self.reporter_members(session, ticket):
            await self.outbox.to_member(
                session, key=f"{delivery.key}:{member.platform_id}", member=member, text=text, image_path=image_path
            )
        return False

    async def _private(
        self,
        session: AsyncSession,
        ticket: Ticket,
        key: str,
        member: Member | None,
        text: str,
        *,
        reporter: bool = False,
    ) -> None:
        """Privately to one person; of a confidential ticket, never to a cadre (except its own reporter)."""
        if member is None:
            return
        if ticket.confidential and member.role == "cadre" and not reporter:
            return
        await self.outbox.to_member(session, key=key, member=member, text=text)

    async def _member(self, session: AsyncSession, platform_id: str | None) -> Member | None:
        return await self.directory.member(session, platform_id) if platform_id else None

    async def reporter_members(self, session: AsyncSession, ticket: Ticket) -> list[Member]:
        assert ticket.id is not None
        reps = await repo.reporters(session, ticket.id)
        found = await repo.members_by_platform_ids(session, [r.platform_id for r in reps])
        return [found[r.platform_id] for r in reps if r.platform_id in found]

    # --- the scheduled jobs' messages -----------------------------------------------------------------

    def _items(self, rows: Sequence[Any], *, deadline: datetime | None = None) -> list[dict[str, Any]]:
        return [
            {
                "id": r.id,
                "category": getattr(r, "category", None) or "other",
                "village": r.village,
                "level": getattr(r, "level", "village"),
                "overdue": bool(getattr(r, "overdue", False)),
                "deadline": self.fmt(deadline or r.deadline),
            }
            for r in rows
        ]

    async def reminder(self, session: AsyncSession, *, member: Member, rows: Sequence[Any], day: date) -> None:
        """Deadlines coming up, to the person responsible."""
        text = self.render("ticket_reminder", assignee=member.name, tickets=self._items(rows))
        await self.outbox.to_member(
            session, key=f"remind:{member.platform_id}:{day.isoformat()}", member=member, text=text
        )

    async def overdue_escalated(
        self, session: AsyncSession, *, member: Member, level: str, rows: Sequence[Any], deadline: datetime, day: date
    ) -> None:
        """Tickets escalated for being overdue, to their new assignee."""
        text = self.render(
            "ticket_overdue_escalated",
            assignee=member.name,
            level=level,
            tickets=self._items(rows, deadline=deadline),
        )
        key = f"overdue:{member.platform_id}:{level}:{day.isoformat()}"
        await self.outbox.to_member(session, key=key, member=member, text=text)

    async def digest(
        self,
        session: AsyncSession,
        *,
        member: Member,
        day: date,
        counts: Mapping[str, int],
        flags: Mapping[str, int],
        escalated: Sequence[Any],
    ) -> None:
        """The staff member's daily digest of their scope."""
        text = self.render(
            "ticket_digest",
            date=f"{day.month}月{day.day}日",
            scope=member.township or member.county or "全部",
            new=counts.get("new", 0),
            active=counts.get("active", 0),
            overdue=counts.get("overdue", 0),
            escalated=counts.get("escalated", 0),
            resolved=counts.get("resolved", 0),
            awaiting_rating=counts.get("awaiting_rating", 0),
            flags=flags.get("flags", 0),
            high_flags=flags.get("high", 0),
            tickets=self._items(escalated),
            url=self.public_url,
        )
        await self.outbox.to_member(
            session, key=f"digest:{member.platform_id}:{day.isoformat()}", member=member, text=text
        )

    # --- flags and broadcasts -------------------------------------------------------------------------

    async def flag_alert(
        self,
        session: AsyncSession,
        *,
        config: AlertConfig,
        message_id: int,
        at: datetime,
        place: Group | Member,
        group: Group | None,
        sender: Member,
        labels: Sequence[str],
        severity: str,
        text: str,
    ) -> None:
        """A flag that cannot wait for the digest, to the discipline staff of its place, privately, at once
        (``burst`` one by one per ``group_minutes``; more are lines of one grouped message)."""
        values: dict[str, Any] = {
            "village": place.village,
            "group": group.name if group is not None else "",
            "sender": sender.name,
            "role": sender.role,
            "labels": [label for label in labels if label in config.labels] or list(labels),
            "severity": severity,
            "text": text,
            "at": self.fmt(at),
            "url": self.public_url,
        }
        staff = await repo.all_staff(session)
        for member in _alert_recipients(config, staff, township=place.township, county=place.county):
            if member.platform_id == sender.platform_id:
                continue
            await self._alert_one(session, config=config, member=member, values=values, at=at, message_id=message_id)

    async def _alert_one(
        self,
        session: AsyncSession,
        *,
        config: AlertConfig,
        member: Member,
        values: dict[str, Any],
        at: datetime,
        message_id: int,
    ) -> None:
        window = timedelta(minutes=config.group_minutes)
        recent = await outbox_repo.count_created_since(
            session, chat_id=member.platform_id, key_prefix=ALERT_KEY, since=at - window
        )
        if recent < config.burst:
            key = f"{ALERT_KEY}{message_id}:{member.platform_id}"
            await self.outbox.to_member(session, key=key, member=member, text=self.render("flag_alert", **values))
            return
        # many at once: one grouped message per staff member and window, sent when the window ends
        start = datetime.fromtimestamp(at.timestamp() // window.total_seconds() * window.total_seconds(), at.tzinfo)
        until = start + window
        group_key = f"{ALERT_GROUP_KEY}{member.platform_id}:{start.isoformat()}"
        line = self.render("flag_alert_line", **values)
        if await outbox_repo.append_pending(session, dedupe_key=group_key, text=line):
            return
        heading = self.render("flag_alert_group", minutes=config.group_minutes, until=self.fmt(until))
        await self.outbox.to_member(session, key=group_key, member=member, text=f"{heading}\n{line}", not_before=until)

    async def banquet_alert(
        self, session: AsyncSession, *, member: Member, message_id: int, values: Mapping[str, Any]
    ) -> None:
        """A party member's or cadre's banquet coming up, to one discipline staff member, once per banquet."""
        await self.outbox.to_member(
            session,
            key=f"{BANQUET_ALERT_KEY}{message_id}:{member.platform_id}",
            member=member,
            text=self.render("banquet_alert", **values),
        )

    def broadcast_text(self, *, kind: str, text: str) -> str:
        """A broadcast exactly as the group will see it (the dashboard's preview shows this)."""
        template = "broadcast_notice" if kind == "notice" else "broadcast_clarification"
        return self.render(template, text=text)

    async def broadcast(
        self,
        session: AsyncSession,
        *,
        record_id: int,
        kind: str,
        group: Group,
        text: str,
        not_before: datetime | None = None,
    ) -> int | None:
        """A notice or clarification staff send to a group (a quiet group included: staff chose it), at once
        or at ``not_before`` (scheduled)."""
        return await self.outbox.to_group(
            session,
            key=f"broadcast:{record_id}:{group.name}",
            group=group,
            text=self.broadcast_text(kind=kind, text=text),
            not_before=not_before,
        )


def _alert_recipients(config: AlertConfig, staff: list[Member], *, township: str, county: str) -> list[Member]:
    if config.recipients == "township":
        return staff_for(staff, township=township, county=county)
    if config.recipients == "county":
        return county_staff(staff, county=county)
    return township_staff(staff, township=township) + county_staff(staff, county=county)
