"""What staff do to tickets from the dashboard: transfer, escalate, approve an extension, note, upload the
resolution photo. Each call is its own transaction; the dashboard has checked the user's scope.

Errors: ``TicketNotFound`` (a LookupError) for an unknown ticket or person, ``TicketStateError`` (a
ValueError) when the ticket's state does not allow the action.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.media import MediaStore
from bot.tickets.errors import TicketNotFound, TicketStateError
from bot.tickets.service import Actor, TicketService
from storage.engine import SessionFactory
from storage.models import Member, Ticket
from storage.repos import directory as directory_repo
from storage.repos import tickets as repo

_PROBLEMS = {
    "closed": "工单已办结归档",
    "resolved": "工单已办结",
    "top": "工单已在县级督办,无法再提级",
    "conflict": "工单正被他人修改,请刷新后重试",
}


def _raise(ticket_id: int, ticket: Ticket | None, problem: str | None) -> Ticket:
    if ticket is None:
        raise TicketNotFound(f"工单 #{ticket_id} 不存在")
    if problem is not None:
        raise TicketStateError(f"工单 #{ticket_id}: {_PROBLEMS.get(problem, problem)}")
    return ticket


class TicketActions:
    def __init__(self, *, session_factory: SessionFactory, service: TicketService, media: MediaStore) -> None:
        self._sessions = session_factory
        self._service = service
        self._media = media

    async def _member(self, session: AsyncSession, who: str) -> Member:
        member = await directory_repo.get_member(session, who)
        if member is None:
            matches = await directory_repo.find_members_by_name(session, who)
            if len(matches) == 1:
                member = matches[0]
        if member is None:
            raise TicketNotFound(f"找不到人员 {who}")
        return member

    async def transfer(self, ticket_id: int, *, to_member: str, actor: str) -> None:
        now = self._service.clock.now()
        async with self._sessions() as session:
            to = await self._member(session, to_member)
            ticket = _raise(
                ticket_id, *await self._service.transfer(session, ticket_id, to=to, actor=Actor(actor), at=now)
            )
            await self._service.tell(
                session,
                key=f"transfer:{ticket_id}:v{ticket.version}",
                member=to,
                text=self._service.render(
                    "ticket_transferred",
                    ticket_id=ticket_id,
                    assignee=to.name,
                    actor=actor,
                    deadline=self._service.fmt(ticket.deadline),
                ),
            )
            await session.commit()

    async def escalate(self, ticket_id: int, *, actor: str, reason: str) -> None:
        now = self._service.clock.now()
        async with self._sessions() as session:
            ticket = _raise(
                ticket_id, *await self._service.escalate(session, ticket_id, actor=Actor(actor), at=now, reason=reason)
            )
            await self._service.post(
                session,
                ticket,
                key=f"escalated:{ticket_id}:v{ticket.version}",
                text=self._service.render(
                    "ticket_escalated",
                    ticket_id=ticket_id,
                    level=ticket.level,
                    assignee=ticket.assignee_name or "",
                    actor=actor,
                    reason=reason,
                    deadline=self._service.fmt(ticket.deadline),
                ),
                mention_assignee=True,
            )
            await session.commit()

    async def approve_extension(self, ticket_id: int, *, actor: str, working_days: int) -> None:
        if working_days < 1:
            raise TicketStateError("延期天数至少为1个工作日")
        now = self._service.clock.now()
        async with self._sessions() as session:
            ticket = _raise(
                ticket_id,
                *await self._service.extend(session, ticket_id, actor=Actor(actor), at=now, working_days=working_days),
            )
            await self._service.post(
                session,
                ticket,
                key=f"extended:{ticket_id}:v{ticket.version}",
                text=self._service.render(
                    "ticket_extended",
                    ticket_id=ticket_id,
                    days=working_days,
                    deadline=self._service.fmt(ticket.deadline),
                ),
            )
            await session.commit()

    async def add_note(self, ticket_id: int, *, actor: str, text: str) -> None:
        now = self._service.clock.now()
        async with self._sessions() as session:
            ticket = _raise(ticket_id, await repo.get_ticket(session, ticket_id), None)
            await self._service.event(session, ticket, at=now, type="note", actor=actor, text=text)
            await session.commit()

    async def upload_resolution_photo(
        self, ticket_id: int, *, actor: str, image: bytes, filename: str, note: str
    ) -> None:
        """Resolve with this photo (an active ticket) or add it to a resolved one, and post it to the group."""
        now = self._service.clock.now()
        path = self._media.save(image, name=filename)
        async with self._sessions() as session:
            ticket = _raise(ticket_id, await repo.get_ticket(session, ticket_id), None)
            if ticket.status == "closed":
                raise TicketStateError(f"工单 #{ticket_id}: {_PROBLEMS['closed']}")
            if ticket.status in ("open", "accepted"):
                ticket = _raise(
                    ticket_id,
                    *await self._service.resolve(
                        session, ticket_id, actor=Actor(actor), at=now, note=note or "问题已处理", message_id=None
                    ),
                )
            elif note:
                await self._service.event(session, ticket, at=now, type="note", actor=actor, text=note)
            await self._service.add_photo(session, ticket, path=path, message_id=None, at=now, actor=actor)
            if ticket.rating_requested_at is None:
                await self._service.announce_resolution(
                    session, ticket_id, at=now, photo_path=path, photo_missing=False
                )
            else:
                await self._service.transition(session, ticket_id, lambda t: None, lambda t: {"photo_missing": False})
                await self._service.post(
                    session,
                    ticket,
                    key=f"photo:{ticket_id}:{path}",
                    text=self._service.render("ticket_photo_added", ticket_id=ticket_id),
                    image_path=path,
                )
            await session.commit()
