"""Staff correcting the automatic merge: split a report off into its own ticket, merge two tickets that are
one problem. Both go through the state machine, are recorded as events on both tickets, and tell the
villagers what happened where they are (the group, or privately for a confidential ticket) — the count of
people who reported a ticket is always the true one.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.tickets import states
from bot.tickets.notify import Event, What
from bot.tickets.service import Actor, Applied, TicketService
from storage.models import Ticket
from storage.repos import tickets as repo


async def split(
    session: AsyncSession, service: TicketService, ticket_id: int, *, reporter: str, actor: Actor, at: datetime
) -> tuple[Ticket, Ticket] | states.Refusal:
    """Move one reporter (platform id or name) and their report into a new ticket; (source, new)."""
    source = await repo.get_ticket(session, ticket_id)
    if source is None:
        return states.Refusal(states.Reason.UNKNOWN)
    found = [r for r in await repo.reporters(session, ticket_id) if reporter in (r.platform_id, r.name)]
    if len(found) != 1:
        return states.Refusal(states.Reason.NOT_REPORTER)
    moving = found[0]
    result = await service.apply(
        session,
        ticket_id,
        states.Action(states.Op.SPLIT, at),
        actor.role,
        values=lambda t, _o: {"priority": max(0, t.priority - 1)},
    )
    if isinstance(result, states.Refusal):
        return result
    text = await repo.message_text(session, moving.message_id) or source.text
    new = Ticket(
        kind=source.kind,
        category=source.category,
        account=source.account,
        group_name=source.group_name,
        county=source.county,
        township=source.township,
        village=source.village,
        assignee_name=source.assignee_name,
        assignee_platform_id=source.assignee_platform_id,
        level=source.level,
        status=str(states.Status.OPEN),
        stage=str(states.Stage.NEW),
        confidential=source.confidential,
        deadline=service.deadline_for(source.kind, moving.at),
        opened_at=moving.at,
        text=text,
        norm_text=text,
        keywords=[],
    )
    new = await repo.add_ticket(session, new)
    assert new.id is not None
    await repo.move_reporters(session, source_id=ticket_id, target_id=new.id, platform_ids=[moving.platform_id])
    await service.event(session, new, at=moving.at, type="opened", actor=moving.name, text=text)
    await service.event(session, new, at=at, type="split", actor=actor.name, text=f"由工单 #{ticket_id} 拆分立案")
    await service.event(
        session, result.ticket, at=at, type="split", actor=actor.name, text=f"{moving.name}的反映另立工单 #{new.id}"
    )
    await service.notify(
        session,
        Event(
            What.SPLIT,
            new,
            actor=actor.name,
            other=result.ticket,
            values={"source_id": ticket_id, "reporter": moving.name},
        ),
    )
    return result.ticket, new


async def merge(
    session: AsyncSession, service: TicketService, ticket_id: int, *, into: int, actor: Actor, at: datetime
) -> Applied | states.Refusal:
    """Ticket ``ticket_id`` is the same problem as ``into``: its reporters join ``into``, it closes as merged."""
    source, target = await repo.get_ticket(session, ticket_id), await repo.get_ticket(session, into)
    if source is None or target is None or into == ticket_id:
        return states.Refusal(states.Reason.UNKNOWN)
    if (source.village, source.confidential) != (target.village, target.confidential):
        return states.Refusal(states.Reason.NOT_SAME_PLACE)
    joined = await service.apply(
        session,
        into,
        states.Action(states.Op.MERGE, at),
        actor.role,
        values=lambda t, _o: {
            "priority": t.priority + 1,
            "keywords": sorted(set(t.keywords or []) | set(source.keywords or [])),
        },
    )
    if isinstance(joined, states.Refusal):
        return joined
    closed = await service.apply(session, ticket_id, states.Action(states.Op.MERGE_INTO, at), actor.role)
    if isinstance(closed, states.Refusal):
        return closed  # the caller's transaction is rolled back: the target is untouched too
    moved = await repo.move_reporters(session, source_id=ticket_id, target_id=into)
    await service.event(
        session, closed.ticket, at=at, type="merged_into", actor=actor.name, text=f"与工单 #{into} 为同一问题,并入办理"
    )
    names = "、".join(r.name for r in moved) or "—"
    await service.event(
        session, joined.ticket, at=at, type="merged", actor=actor.name, text=f"工单 #{ticket_id} 并入({names})"
    )
    count = await repo.count_reporters(session, into)
    await service.notify(
        session,
        Event(
            What.MERGED_BY_STAFF,
            joined.ticket,
            actor=actor.name,
            other=closed.ticket,
            values={"source_id": ticket_id, "count": count},
        ),
    )
    return joined
