"""The ticket workflow behind every stored message: reports become tickets, cadres' ``#12`` replies move
them, photos close them, reporters rate them. Called by the ingest inside the message's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import Config
from bot.directory import Directory
from bot.ingest import Inbound
from bot.media import MediaStore
from bot.outbox import OutboxService
from bot.scheduler import Job
from bot.templates import Templates
from bot.tickets import alerts, commands, states
from bot.tickets.actions import TicketActions
from bot.tickets.commands import Action, Command
from bot.tickets.jobs import TicketJobs
from bot.tickets.merge import same_problem
from bot.tickets.notify import Event, Notifier, Origin, What
from bot.tickets.roster import may_act, may_see
from bot.tickets.service import Actor, ClassifierSource, TicketService
from storage.engine import SessionFactory
from storage.models import Message, Ticket
from storage.repos import tickets as repo

log = logging.getLogger(__name__)

Step = Callable[[AsyncSession], Awaitable[None]]
"""The workflow's handling of one message, bound to it, waiting for the transaction."""

OFFICIAL = ("cadre", "staff")
REPEAT_WINDOW = timedelta(days=30)
"""A report of the same problem this long after a resolution is a repeat complaint (提级督办)."""
MIN_PRIVATE_REPORT = 8
"""A private message this short that the classifier calls nothing gets the help text, not a ticket."""


class TicketWorkflow:
    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        outbox: OutboxService,
        templates: Templates,
        config: Config,
        clock: Clock,
        classifiers: ClassifierSource,
        media: MediaStore,
        directory: Directory,
    ) -> None:
        self._sessions = session_factory
        self._config = config
        self._classifiers = classifiers
        self._media = media
        self.notifier = Notifier(
            outbox=outbox,
            templates=templates,
            directory=directory,
            tz=clock.tz,
            public_url=config.dashboard.public_url,
        )
        self.service = TicketService(
            notifier=self.notifier, templates=templates, config=config, clock=clock, directory=directory
        )
        self.actions = TicketActions(
            session_factory=session_factory, service=self.service, media=media, classifiers=classifiers
        )
        self._jobs = TicketJobs(session_factory=session_factory, service=self.service)

    def jobs(self) -> list[Job]:
        return self._jobs.jobs()

    @property
    def scheduled(self) -> TicketJobs:
        """The job bodies, callable directly (tests, benchmarks)."""
        return self._jobs

    # --- routing ------------------------------------------------------------------------------------

    async def handle(self, session: AsyncSession, inbound: Inbound) -> None:
        step = self.route(inbound)
        if step is not None:
            await step(session)

    def wants(self, inbound: Inbound) -> bool:
        return self.route(inbound) is not None

    def route(self, inbound: Inbound) -> Step | None:
        """What this message asks of the workflow, decided without the database; None when nothing.

        Most of a group's messages are chat that no ticket cares about; knowing that before storing
        them lets a replay or an import store such messages many to a statement. A flag that alerts
        (``[alerts]``) reaches the discipline staff at once, besides whatever else the message asks.
        """
        step = self._route(inbound)
        if not alerts.wants_alert(self._config.alerts, inbound):
            return step
        return partial(self._alert_then, inbound=inbound, then=step)

    async def _alert_then(self, session: AsyncSession, *, inbound: Inbound, then: Step | None) -> None:
        await alerts.send_alert(session, notifier=self.notifier, config=self._config.alerts, inbound=inbound)
        if then is not None:
            await then(session)

    def _route(self, inbound: Inbound) -> Step | None:
        message, sender = inbound.message, inbound.sender
        official = sender.role in OFFICIAL
        text = (inbound.incoming.text or "").strip()
        if message.kind == "image":
            if not official:
                return None
            command = commands.parse_command(text) if text else None
            if command is not None:  # "#1 办结 管道已修好" sent with its photo
                return partial(self._command, inbound=inbound, command=command)
            return partial(self._photo, inbound=inbound)
        if not text:
            return None
        command = commands.parse_command(text)
        if command is None and inbound.incoming.quote_text:
            quoted = commands.ticket_refs(inbound.incoming.quote_text)
            if quoted:
                command = commands.parse_command(f"#{quoted[0]} {text}")
                if not official and command is not None and command.action != Action.PROGRESS:
                    command = Command(command.ticket_id, Action.PROGRESS, command.text)
        if official and command is not None:
            return partial(self._command, inbound=inbound, command=command)
        rest = self._route_text(inbound, text, command, official=official)
        rating = commands.parse_rating(text)
        if rating is not None:
            return partial(self._rating_or, inbound=inbound, rating=str(rating), command=command, rest=rest)
        return rest

    def _route_text(self, inbound: Inbound, text: str, command: Command | None, *, official: bool) -> Step | None:
        if command is not None and command.action != Action.PROGRESS:
            refusal = states.Refusal(states.Reason.NOT_ALLOWED)
            return partial(self._answer, inbound=inbound, template=refusal.template, ticket_id=command.ticket_id)
        if inbound.message.private:
            if official:
                return partial(self._answer, inbound=inbound, template="ticket_cadre_help")
            return partial(self._private_report, inbound=inbound, text=text)
        labels = inbound.result.labels
        if "clue" in labels:
            return partial(self._clue_in_group, inbound=inbound, text=text)
        if "demand" in labels:
            return partial(self._report, inbound=inbound, kind="demand", text=text)
        if "consult" in labels:
            return partial(self._report, inbound=inbound, kind="consult", text=text)
        return None

    async def _rating_or(
        self, session: AsyncSession, *, inbound: Inbound, rating: str, command: Command | None, rest: Step | None
    ) -> None:
        """A rating word rates the ticket waiting for one; with none waiting, the message goes on its way."""
        if await self._rating(session, inbound, rating, command):
            return
        if rest is not None:
            await rest(session)

    async def _answer(
        self, session: AsyncSession, inbound: Inbound, template: str, *, suffix: str = "", **values: Any
    ) -> None:
        """Reply to the sender where they wrote; in a quiet group, privately."""
        await self.notifier.answer(session, _origin(inbound), template, suffix=suffix, **values)

    # --- reports ------------------------------------------------------------------------------------

    async def _report(self, session: AsyncSession, inbound: Inbound, kind: str, text: str) -> None:
        group, at = inbound.group, inbound.message.at
        assert group is not None
        tools = self._classifiers.current
        norm, keywords = tools.normalize(text), tools.keywords(text)
        category = inbound.result.category or "other"
        threshold = self._config.merge.similarity / 100
        if group.village:
            since = at - timedelta(hours=self._config.merge.window_hours)
            for candidate in await repo.merge_candidates(
                session,
                village=group.village,
                category=category,
                kind=kind,
                since=since,
                stages=states.names(states.stages_allowing(states.Op.MERGE)),
            ):
                if same_problem(norm, keywords, candidate.norm_text, candidate.keywords, threshold=threshold):
                    await self._merged(session, inbound, candidate, text, keywords)
                    return
            for old in await repo.repeat_candidates(
                session,
                village=group.village,
                category=category,
                kind=kind,
                since=at - REPEAT_WINDOW,
                stages=states.names(states.RESOLVED | states.CLOSED),
            ):
                if same_problem(norm, keywords, old.norm_text, old.keywords, threshold=threshold):
                    await self._open(session, inbound, kind, category, text, norm, keywords, parent=old)
                    return
        await self._open(session, inbound, kind, category, text, norm, keywords, parent=None)

    async def _open(
        self,
        session: AsyncSession,
        inbound: Inbound,
        kind: str,
        category: str,
        text: str,
        norm: str,
        keywords: frozenset[str],
        *,
        parent: Ticket | None,
    ) -> None:
        level = "village"
        if parent is not None:
            level = states.next_level(parent.level) or parent.level
        ticket, _assignee = await self.service.open(
            session,
            kind=kind,
            category=category,
            at=inbound.message.at,
            reporter=inbound.sender,
            message_id=inbound.message_id,
            text=text,
            norm_text=norm,
            keywords=keywords,
            group=inbound.group,
            account=inbound.message.account,
            confidential=False,
            level=level,
            parent=parent,
        )
        values = {"parent_id": parent.id} if parent is not None else {}
        await self.service.notify(session, Event(What.OPENED, ticket, origin=_origin(inbound), values=values))

    async def _merged(
        self, session: AsyncSession, inbound: Inbound, ticket: Ticket, text: str, keywords: frozenset[str]
    ) -> None:
        ticket, _ = await self.service.merge(
            session,
            ticket,
            reporter=inbound.sender,
            message_id=inbound.message_id,
            at=inbound.message.at,
            text=text,
            keywords=keywords,
        )
        assert ticket.id is not None
        count = await repo.count_reporters(session, ticket.id)
        await self.service.notify(session, Event(What.MERGED, ticket, origin=_origin(inbound), values={"count": count}))

    async def _confidential(self, session: AsyncSession, inbound: Inbound, kind: str, text: str) -> Ticket:
        tools = self._classifiers.current
        ticket, _assignee = await self.service.open(
            session,
            kind=kind,
            category=inbound.result.category,
            at=inbound.message.at,
            reporter=inbound.sender,
            message_id=inbound.message_id,
            text=text,
            norm_text=tools.normalize(text),
            keywords=tools.keywords(text),
            group=inbound.group,
            account=inbound.message.account,
            confidential=True,
            level="township",
        )
        await self.service.notify(
            session,
            Event(What.CONFIDENTIAL_OPENED, ticket, origin=_origin(inbound), values={"text": text, "kind": kind}),
        )
        return ticket

    async def _clue_in_group(self, session: AsyncSession, inbound: Inbound, text: str) -> None:
        await self._confidential(session, inbound, "clue", text)

    async def _private_report(self, session: AsyncSession, inbound: Inbound, text: str) -> None:
        labels = inbound.result.labels
        if "clue" in labels:
            kind = "clue"
        elif "demand" in labels or "consult" in labels:
            kind = "demand" if "demand" in labels else "consult"
        elif len(text) >= MIN_PRIVATE_REPORT and not ({"feedback", "spam"} & set(labels)):
            kind = "demand"
        else:
            await self._answer(session, inbound, "ticket_private_help")
            return
        await self._confidential(session, inbound, kind, text)

    # --- ratings ------------------------------------------------------------------------------------

    async def _rating(self, session: AsyncSession, inbound: Inbound, rating: str, command: Command | None) -> bool:
        sender = inbound.sender
        awaiting = str(states.Stage.AWAITING_RATING)
        if command is not None:
            ticket = await repo.get_ticket(session, command.ticket_id)
            if ticket is None or not await repo.is_reporter(
                session, ticket_id=command.ticket_id, platform_id=sender.platform_id
            ):
                return False
            if ticket.stage != awaiting:
                if ticket.status == states.Status.CLOSED:
                    await self._refuse(session, inbound, ticket, states.Refusal(states.Reason.CLOSED))
                    return True
                return False
        else:
            waiting = await repo.awaiting_rating(session, platform_id=sender.platform_id, stage=awaiting)
            if not waiting:
                return False
            if len(waiting) > 1:
                await self._answer(session, inbound, "ticket_rating_which", ids=[t.id for t in waiting])
                return True
            ticket = waiting[0]
        assert ticket.id is not None
        await repo.link_message(session, ticket_id=ticket.id, message_id=inbound.message_id)
        text = (inbound.incoming.text or "").strip()
        result = await self.service.rate(
            session, ticket.id, rating=rating, rater=sender, at=inbound.message.at, text=text
        )
        if isinstance(result, states.Refusal):
            await self._refuse(session, inbound, ticket, result)
            return True
        values = {"rating": rating, "closed": result.outcome.closed_now}
        await self.service.notify(
            session, Event(What.RATED, result.ticket, origin=_origin(inbound), actor=sender.name, values=values)
        )
        return True

    # --- cadres' and staff's commands ---------------------------------------------------------------

    async def _refuse(self, session: AsyncSession, inbound: Inbound, ticket: Ticket, refusal: states.Refusal) -> None:
        """A refusal in Chinese, where the sender wrote; about a confidential ticket, privately."""
        await self.notifier.answer(
            session, _origin(inbound), refusal.template, confidential=ticket.confidential, ticket_id=ticket.id
        )

    async def _command(self, session: AsyncSession, inbound: Inbound, command: Command) -> None:
        sender = inbound.sender
        ticket = await repo.get_ticket(session, command.ticket_id)
        if ticket is None or not may_see(ticket, sender):
            await self._answer(session, inbound, "ticket_unknown", ticket_id=command.ticket_id)
            return
        if not may_act(ticket, sender):
            await self._refuse(session, inbound, ticket, states.Refusal(states.Reason.NOT_ALLOWED))
            return
        assert ticket.id is not None
        await repo.link_message(session, ticket_id=ticket.id, message_id=inbound.message_id)
        action = command.action
        if action == Action.PROGRESS and ticket.kind == "consult" and ticket.stage in states.ACTIVE:
            action = Action.RESOLVE  # a cadre's reply to a consultation is its answer
        handler = {
            Action.ACCEPT: self._accept,
            Action.PROGRESS: self._progress,
            Action.RESOLVE: self._resolve,
            Action.EXTEND: self._extend,
            Action.ESCALATE: self._escalate,
        }[action]
        refusal = await handler(session, inbound, ticket, command)
        if refusal is not None:
            await self._refuse(session, inbound, ticket, refusal)
        elif inbound.message.kind == "image" and action != Action.RESOLVE:
            await self.service.attach_photo(
                session,
                ticket.id,
                actor=Actor.of(sender),
                at=inbound.message.at,
                path=inbound.message.media_path,
                message_id=inbound.message_id,
            )
        log.debug("ticket %s: %s by %s", ticket.id, action, sender.name)

    async def _accept(
        self, session: AsyncSession, inbound: Inbound, ticket: Ticket, command: Command
    ) -> states.Refusal | None:
        assert ticket.id is not None
        result = await self.service.simple(
            session,
            ticket.id,
            states.Op.ACCEPT,
            actor=Actor.of(inbound.sender),
            at=inbound.message.at,
            text=command.text,
        )
        if isinstance(result, states.Refusal):
            return result
        await self.service.notify(
            session, Event(What.ACCEPTED, result.ticket, origin=_origin(inbound), actor=inbound.sender.name)
        )
        return None

    async def _progress(
        self, session: AsyncSession, inbound: Inbound, ticket: Ticket, command: Command
    ) -> states.Refusal | None:
        assert ticket.id is not None
        result = await self.service.simple(
            session,
            ticket.id,
            states.Op.PROGRESS,
            actor=Actor.of(inbound.sender),
            at=inbound.message.at,
            text=command.text,
        )
        if isinstance(result, states.Refusal):
            return result
        if result.before.stage in states.RESOLVED:
            return None  # a remark after the resolution: recorded, not announced
        await self.service.notify(
            session,
            Event(
                What.PROGRESS,
                result.ticket,
                origin=_origin(inbound),
                actor=inbound.sender.name,
                values={"text": command.text},
            ),
        )
        return None

    async def _resolve(
        self, session: AsyncSession, inbound: Inbound, ticket: Ticket, command: Command
    ) -> states.Refusal | None:
        """办结: a photo in the same message, or sent just before, goes with it; else the cadre is asked
        privately for one and the ticket waits for it (待补照片)."""
        assert ticket.id is not None
        at, sender = inbound.message.at, inbound.sender
        note = _strip_words(command.text, ("办结",)) or "问题已处理"
        photo: Message | None = None
        if inbound.message.kind == "image":
            photo = inbound.message
        elif ticket.kind == "demand":
            photo = await repo.recent_unused_image(
                session,
                sender_platform_id=sender.platform_id,
                since=at - self.service.photo_window(),
                before_id=inbound.message_id,
            )
        actor = Actor.of(sender)
        result = await self.service.resolve(
            session, ticket.id, actor=actor, at=at, note=note, message_id=inbound.message_id
        )
        if isinstance(result, states.Refusal):
            return result
        if result.ticket.stage == states.Stage.AWAITING_RATING:  # an answer or a verification result
            await self.service.announce_resolution(session, result.ticket, photo_path=None)
            return None
        if photo is not None:
            # Only a real image goes back into the group (checked by content); anything else is recorded
            # as a missing photo (path None), never posted.
            path = await self._media.real_photo(photo.media_path)
            assert photo.id is not None
            await self.service.attach_photo(session, ticket.id, actor=actor, at=at, path=path, message_id=photo.id)
            return None
        await self.service.notify(
            session, Event(What.PHOTO_REQUESTED, result.ticket, origin=_origin(inbound), actor=sender.name)
        )
        return None

    async def _photo(self, session: AsyncSession, inbound: Inbound) -> None:
        """An image from a cadre or staff member who resolved a ticket that waits for its photo."""
        sender = inbound.sender
        ticket = await repo.awaiting_photo_from(
            session, sender_platform_id=sender.platform_id, stage=str(states.Stage.AWAITING_PHOTO)
        )
        if ticket is None or ticket.id is None:
            return
        # Only a real image goes back into the group; anything else is recorded as a missing photo (None).
        path = await self._media.real_photo(inbound.message.media_path)
        await self.service.attach_photo(
            session,
            ticket.id,
            actor=Actor.of(sender),
            at=inbound.message.at,
            path=path,
            message_id=inbound.message_id,
        )

    async def _extend(
        self, session: AsyncSession, inbound: Inbound, ticket: Ticket, command: Command
    ) -> states.Refusal | None:
        """延期: a cadre asks (extension_requested); staff approve, the only way the deadline moves."""
        assert ticket.id is not None
        at, sender = inbound.message.at, inbound.sender
        if sender.role == "staff":
            requested = 5
            for event in reversed(await repo.events(session, ticket.id)):
                if event.type == "extension_requested":
                    requested = commands.requested_days(event.text, 5)
                    break
            days = commands.requested_days(command.text, requested)
            result = await self.service.extend(session, ticket.id, actor=Actor.of(sender), at=at, working_days=days)
            if isinstance(result, states.Refusal):
                return result
            await self.service.notify(
                session,
                Event(What.EXTENDED, result.ticket, origin=_origin(inbound), actor=sender.name, values={"days": days}),
            )
            return None
        days = commands.requested_days(command.text, 5)
        reason = _strip_words(command.text, ("延期",)) or "—"
        result = await self.service.simple(
            session,
            ticket.id,
            states.Op.REQUEST_EXTENSION,
            actor=Actor.of(sender),
            at=at,
            text=f"申请延期{days}个工作日:{reason}",
        )
        if isinstance(result, states.Refusal):
            return result
        await self.service.notify(
            session,
            Event(
                What.EXTENSION_REQUESTED,
                result.ticket,
                origin=_origin(inbound),
                actor=sender.name,
                values={"days": days, "reason": reason},
            ),
        )
        return None

    async def _escalate(
        self, session: AsyncSession, inbound: Inbound, ticket: Ticket, command: Command
    ) -> states.Refusal | None:
        assert ticket.id is not None
        at, sender = inbound.message.at, inbound.sender
        reason = _strip_words(command.text, ("转镇", "转县", "上报")) or "申请上级协调"
        result = await self.service.escalate(session, ticket.id, actor=Actor.of(sender), at=at, reason=reason)
        if isinstance(result, states.Refusal):
            return result
        await self.service.notify(
            session,
            Event(What.ESCALATED, result.ticket, origin=_origin(inbound), actor=sender.name, values={"reason": reason}),
        )
        return None


def _origin(inbound: Inbound) -> Origin:
    return Origin(inbound.message_id, inbound.sender, inbound.group)


def _strip_words(text: str, words: tuple[str, ...]) -> str:
    for word in words:
        if text.startswith(word):
            text = text[len(word) :]
            break
    return text.strip(" ,，。:：、;；!！")
