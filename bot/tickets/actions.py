"""What staff do to tickets from the dashboard: accept, note progress, resolve (with or without a photo),
waive the photo, attach a photo, close, reopen, transfer, escalate, extend. Each call is its own
transaction and goes through the state machine; the dashboard has checked the user's scope.

Errors: ``TicketNotFound`` (a LookupError) for an unknown ticket or person, ``TicketStateError`` (a
ValueError) when the ticket's state does not allow the action — its message is the refusal's wording.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.media import MediaStore
from bot.tickets import regroup, states
from bot.tickets.errors import TicketNotFound, TicketStateError
from bot.tickets.notify import Event, Origin, What
from bot.tickets.service import Actor, Applied, ClassifierSource, TicketService, state_of
from storage.engine import SessionFactory
from storage.models import Member, Ticket
from storage.repos import directory as directory_repo
from storage.repos import messages as messages_repo
from storage.repos import tickets as repo

OPENABLE = ("demand", "consult", "clue")


class TicketActions:
    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        service: TicketService,
        media: MediaStore,
        classifiers: ClassifierSource,
    ) -> None:
        self._sessions = session_factory
        self._service = service
        self._media = media
        self._classifiers = classifiers

    def _check(self, ticket_id: int, result: Applied | states.Refusal) -> Ticket:
        if isinstance(result, states.Refusal):
            if result.reason == states.Reason.UNKNOWN:
                raise TicketNotFound(self._service.refusal_text(result, ticket_id))
            raise TicketStateError(self._service.refusal_text(result, ticket_id))
        return result.ticket

    async def _member(self, session: AsyncSession, who: str) -> Member:
        member = await directory_repo.get_member(session, who)
        if member is None:
            matches = await directory_repo.find_members_by_name(session, who)
            if len(matches) == 1:
                member = matches[0]
        if member is None:
            raise TicketNotFound(f"找不到人员 {who}")
        return member

    async def available(self, ticket_id: int) -> list[str]:
        """The actions staff may take on the ticket now (the page offers only these)."""
        async with self._sessions() as session:
            ticket = await repo.get_ticket(session, ticket_id)
            if ticket is None:
                return []
            state = state_of(ticket, await repo.reporters(session, ticket_id))
        return [str(op) for op in states.available(state, states.Role.STAFF)]

    async def transfer(self, ticket_id: int, *, to_member: str, actor: str) -> None:
        now = self._service.clock.now()
        async with self._sessions() as session:
            to = await self._member(session, to_member)
            ticket = self._check(
                ticket_id, await self._service.transfer(session, ticket_id, to=to, actor=Actor(actor), at=now)
            )
            await self._service.notify(session, Event(What.TRANSFERRED, ticket, actor=actor, member=to))
            await session.commit()

    async def escalate(self, ticket_id: int, *, actor: str, reason: str) -> None:
        now = self._service.clock.now()
        async with self._sessions() as session:
            ticket = self._check(
                ticket_id, await self._service.escalate(session, ticket_id, actor=Actor(actor), at=now, reason=reason)
            )
            await self._service.notify(session, Event(What.ESCALATED, ticket, actor=actor, values={"reason": reason}))
            await session.commit()

    async def approve_extension(self, ticket_id: int, *, actor: str, working_days: int) -> None:
        now = self._service.clock.now()
        async with self._sessions() as session:
            ticket = self._check(
                ticket_id,
                await self._service.extend(session, ticket_id, actor=Actor(actor), at=now, working_days=working_days),
            )
            await self._service.notify(
                session, Event(What.EXTENDED, ticket, actor=actor, values={"days": working_days})
            )
            await session.commit()

    async def add_note(self, ticket_id: int, *, actor: str, text: str) -> None:
        """An internal note (never posted)."""
        await self._simple(ticket_id, states.Op.NOTE, actor=actor, text=text)

    async def accept(self, ticket_id: int, *, actor: str) -> None:
        """Accept, announced where the reporters are (as a cadre's ``#12 受理`` is)."""
        now = self._service.clock.now()
        async with self._sessions() as session:
            result = await self._service.simple(session, ticket_id, states.Op.ACCEPT, actor=Actor(actor), at=now)
            ticket = self._check(ticket_id, result)
            await self._service.notify(session, Event(What.ACCEPTED, ticket, actor=actor))
            await session.commit()

    async def progress(self, ticket_id: int, *, actor: str, text: str) -> None:
        """A progress note, posted where the reporters are (the group, or privately when confidential)."""
        now = self._service.clock.now()
        async with self._sessions() as session:
            result = await self._service.simple(
                session, ticket_id, states.Op.PROGRESS, actor=Actor(actor), at=now, text=text
            )
            ticket = self._check(ticket_id, result)
            await self._service.notify(session, Event(What.PROGRESS, ticket, actor=actor, values={"text": text}))
            await session.commit()

    async def _simple(self, ticket_id: int, op: states.Op, *, actor: str, text: str) -> None:
        now = self._service.clock.now()
        async with self._sessions() as session:
            self._check(
                ticket_id, await self._service.simple(session, ticket_id, op, actor=Actor(actor), at=now, text=text)
            )
            await session.commit()

    async def resolve(
        self, ticket_id: int, *, actor: str, note: str, image: bytes | None = None, filename: str = ""
    ) -> None:
        """办结 from the dashboard: with a photo the resolution is announced with it; without one the ticket
        waits for its photo (待补照片) unless it needs none (a consultation, a clue)."""
        now = self._service.clock.now()
        path = self._media.save(image, name=filename or "photo.jpg") if image else None
        async with self._sessions() as session:
            attached = await repo.photos(session, ticket_id) if path is None else []
            result = await self._service.resolve(
                session,
                ticket_id,
                actor=Actor(actor),
                at=now,
                note=note or "问题已处理",
                message_id=None,
                photo=bool(attached),
            )
            ticket = self._check(ticket_id, result)
            if attached:  # a photo uploaded before the resolution goes with it
                await self._service.announce_resolution(session, ticket, photo_path=attached[-1].path)
            elif ticket.stage == states.Stage.AWAITING_RATING:
                await self._service.announce_resolution(session, ticket, photo_path=None)
                if path is not None:
                    self._check(
                        ticket_id,
                        await self._service.attach_photo(
                            session, ticket_id, actor=Actor(actor), at=now, path=path, message_id=None
                        ),
                    )
            elif path is not None:
                self._check(
                    ticket_id,
                    await self._service.attach_photo(
                        session, ticket_id, actor=Actor(actor), at=now, path=path, message_id=None
                    ),
                )
            await session.commit()

    async def waive_photo(self, ticket_id: int, *, actor: str, reason: str) -> None:
        now = self._service.clock.now()
        async with self._sessions() as session:
            self._check(
                ticket_id,
                await self._service.waive_photo(session, ticket_id, actor=Actor(actor), at=now, reason=reason),
            )
            await session.commit()

    async def upload_photo(self, ticket_id: int, *, actor: str, image: bytes, filename: str) -> None:
        """Attach a photo. A ticket waiting for its resolution photo is announced with it; an active ticket
        only gets the photo (uploading never resolves)."""
        now = self._service.clock.now()
        path = self._media.save(image, name=filename)
        async with self._sessions() as session:
            self._check(
                ticket_id,
                await self._service.attach_photo(
                    session, ticket_id, actor=Actor(actor), at=now, path=path, message_id=None
                ),
            )
            await session.commit()

    async def close(self, ticket_id: int, *, actor: str, text: str) -> None:
        now = self._service.clock.now()
        async with self._sessions() as session:
            self._check(ticket_id, await self._service.close(session, ticket_id, actor=Actor(actor), at=now, text=text))
            await session.commit()

    async def reopen(self, ticket_id: int, *, actor: str, reason: str) -> None:
        now = self._service.clock.now()
        async with self._sessions() as session:
            ticket = self._check(
                ticket_id, await self._service.reopen(session, ticket_id, actor=Actor(actor), at=now, reason=reason)
            )
            await self._service.notify(session, Event(What.REOPENED, ticket, actor=actor, values={"reason": reason}))
            await session.commit()

    async def split(self, ticket_id: int, *, reporter: str, actor: str) -> int:
        """Split one reporter's report off into its own ticket; returns the new ticket's number."""
        now = self._service.clock.now()
        async with self._sessions() as session:
            result = await regroup.split(
                session, self._service, ticket_id, reporter=reporter, actor=Actor(actor), at=now
            )
            if isinstance(result, states.Refusal):
                self._check(ticket_id, result)
                raise AssertionError("unreachable")
            new_id = result[1].id
            await session.commit()
        assert new_id is not None
        return new_id

    async def merge(self, ticket_id: int, *, into: int, actor: str) -> None:
        """Ticket ``ticket_id`` is the same problem as ticket ``into``: merge it there."""
        now = self._service.clock.now()
        async with self._sessions() as session:
            self._check(
                ticket_id, await regroup.merge(session, self._service, ticket_id, into=into, actor=Actor(actor), at=now)
            )
            await session.commit()

    async def open_from_message(self, message_id: int, *, kind: str, category: str | None, actor: str) -> int:
        """立案 from a stored message (found by search): its sender reports it now; a clue or a private message
        is confidential and with the township, like the bot's own (``TicketWorkflow._confidential``)."""
        if kind not in OPENABLE:
            raise TicketStateError("请选择工单类型：诉求、咨询或问题线索")
        now = self._service.clock.now()
        async with self._sessions() as session:
            message = await messages_repo.get_message(session, message_id)
            if message is None or message.kept_raw:
                raise TicketNotFound("找不到这条消息（或它还未处理完）")
            existing = await repo.ticket_of_message(session, message_id)
            if existing is not None:
                raise TicketStateError(f"这条消息已在工单 #{existing} 中")
            reporter = await directory_repo.get_member(session, message.sender_platform_id)
            if reporter is None:
                raise TicketNotFound(f"找不到发送人 {message.sender_name}")
            group = await directory_repo.get_group(session, message.group_name) if message.group_name else None
            confidential = kind == "clue" or message.private or group is None
            tools = self._classifiers.current
            ticket, _assignee = await self._service.open(
                session,
                kind=kind,
                category=(category or "other") if kind != "clue" else category,
                at=now,
                reporter=reporter,
                message_id=message_id,
                text=message.text,
                norm_text=tools.normalize(message.text),
                keywords=tools.keywords(message.text),
                group=group,
                account=message.account,
                confidential=confidential,
                level="township" if confidential else "village",
            )
            assert ticket.id is not None
            await self._service.event(session, ticket, at=now, type="note", actor=actor, text="工作人员从消息搜索立案")
            origin = Origin(message_id=message_id, member=reporter, group=group)
            what = What.CONFIDENTIAL_OPENED if confidential else What.OPENED
            values = {"text": message.text, "kind": kind} if confidential else {}
            await self._service.notify(session, Event(what, ticket, origin=origin, actor=actor, values=values))
            await session.commit()
            return ticket.id
