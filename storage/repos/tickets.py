"""Tickets: every query of the ticket workflow, the daily check's bulk statements and the JSON report.

State changes go through ``update_ticket``: ``UPDATE … WHERE id = :id AND version = :old`` bumps the
version, so of two cadres resolving the same ticket at once exactly one update matches. Which stages a
query means (``stages=``) is the caller's: the state machine in ``bot/tickets/states.py`` owns them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Flag, Member, Message, Ticket, TicketEvent, TicketMessage, TicketPhoto, TicketReporter
from storage.repos.common import insert_ignore

CHUNK = 500


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


# --- single tickets -------------------------------------------------------------------------------


async def add_ticket(session: AsyncSession, ticket: Ticket) -> Ticket:
    session.add(ticket)
    await session.flush()
    return ticket


# The hottest queries are built once, with parameters: building a statement and its cache key on every
# call cost as much as running it (see BENCHMARKS.md, Pipeline).
_GET_TICKET = select(Ticket).where(Ticket.id == bindparam("ticket_id")).execution_options(populate_existing=True)


async def get_ticket(session: AsyncSession, ticket_id: int) -> Ticket | None:
    return (await session.exec(_GET_TICKET, params={"ticket_id": ticket_id})).first()


async def update_ticket(
    session: AsyncSession, ticket_id: int, *, version: int, values: dict[str, Any]
) -> Ticket | None:
    """Apply ``values`` if the ticket is still at ``version``: the ticket as changed (read back by the
    same statement), or None when another writer changed it first."""
    statement = (
        update(Ticket)
        .where(col(Ticket.id) == ticket_id, col(Ticket.version) == version)
        .values(**values, version=version + 1)
        .returning(Ticket)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    result = await session.exec(statement)
    changed: Ticket | None = result.scalars().first()
    return changed


async def add_event(session: AsyncSession, *, ticket_id: int, at: datetime, type: str, actor: str, text: str) -> None:
    values = {"ticket_id": ticket_id, "at": at, "type": type, "actor": actor, "text": text}
    await session.exec(insert(TicketEvent), params=[values])


async def add_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Many events in one statement (the daily check)."""
    if rows:
        await session.exec(insert(TicketEvent), params=rows)


async def events(session: AsyncSession, ticket_id: int) -> list[TicketEvent]:
    statement = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(col(TicketEvent.id))
    return list((await session.exec(statement)).all())


async def add_reporter(
    session: AsyncSession, *, ticket_id: int, platform_id: str, name: str, message_id: int | None, at: datetime
) -> bool:
    """True when this person was not yet a reporter of the ticket."""
    values = {"ticket_id": ticket_id, "platform_id": platform_id, "name": name, "message_id": message_id, "at": at}
    return await insert_ignore(session, TicketReporter, ("ticket_id", "platform_id"), values) is not None


_COUNT_REPORTERS = (
    select(func.count()).select_from(TicketReporter).where(TicketReporter.ticket_id == bindparam("ticket_id"))
)


async def count_reporters(session: AsyncSession, ticket_id: int) -> int:
    return int((await session.exec(_COUNT_REPORTERS, params={"ticket_id": ticket_id})).one())


async def reporters(session: AsyncSession, ticket_id: int) -> list[TicketReporter]:
    statement = select(TicketReporter).where(TicketReporter.ticket_id == ticket_id).order_by(col(TicketReporter.id))
    return list((await session.exec(statement)).all())


async def move_reporters(
    session: AsyncSession, *, source_id: int, target_id: int, platform_ids: Sequence[str] | None = None
) -> list[TicketReporter]:
    """Move reporters (all, or these) from one ticket to another; one already reporting the target stays
    there once. Returns the reporters moved, as they were on the source."""
    rows = await reporters(session, source_id)
    chosen = [r for r in rows if platform_ids is None or r.platform_id in platform_ids]
    for r in chosen:
        await add_reporter(
            session, ticket_id=target_id, platform_id=r.platform_id, name=r.name, message_id=r.message_id, at=r.at
        )
        if r.message_id is not None:
            await link_message(session, ticket_id=target_id, message_id=r.message_id)
    if chosen:
        await session.exec(
            delete(TicketReporter).where(
                col(TicketReporter.ticket_id) == source_id,
                col(TicketReporter.platform_id).in_([r.platform_id for r in chosen]),
            )
        )
    return chosen


async def message_text(session: AsyncSession, message_id: int | None) -> str:
    if message_id is None:
        return ""
    found = (await session.exec(select(Message.text).where(Message.id == message_id))).first()
    return found or ""


async def is_reporter(session: AsyncSession, *, ticket_id: int, platform_id: str) -> bool:
    statement = select(TicketReporter.id).where(
        TicketReporter.ticket_id == ticket_id, TicketReporter.platform_id == platform_id
    )
    return (await session.exec(statement)).first() is not None


async def ticket_of_message(session: AsyncSession, message_id: int) -> int | None:
    """The (first) ticket a message belongs to, or None."""
    statement = (
        select(TicketMessage.ticket_id)
        .where(TicketMessage.message_id == message_id)
        .order_by(col(TicketMessage.ticket_id))
        .limit(1)
    )
    return (await session.exec(statement)).first()


async def link_message(session: AsyncSession, *, ticket_id: int, message_id: int) -> None:
    values = {"ticket_id": ticket_id, "message_id": message_id}
    await insert_ignore(session, TicketMessage, ("ticket_id", "message_id"), values)


async def add_photo(
    session: AsyncSession, *, ticket_id: int, path: str, message_id: int | None, at: datetime, uploaded_by: str
) -> None:
    session.add(TicketPhoto(ticket_id=ticket_id, path=path, message_id=message_id, at=at, uploaded_by=uploaded_by))
    await session.flush()


async def photos(session: AsyncSession, ticket_id: int) -> list[TicketPhoto]:
    statement = select(TicketPhoto).where(TicketPhoto.ticket_id == ticket_id).order_by(col(TicketPhoto.id))
    return list((await session.exec(statement)).all())


# --- finding tickets for a message ----------------------------------------------------------------


def _same_problem_tickets(*conditions: Any, category: bool) -> Any:
    """Tickets of a village, category (or none) and kind that also meet ``conditions``, newest first."""
    same_category = Ticket.category == bindparam("category") if category else col(Ticket.category).is_(None)
    return (
        select(Ticket)
        .where(
            Ticket.village == bindparam("village"),
            same_category,
            Ticket.kind == bindparam("kind"),
            col(Ticket.confidential).is_(False),
            *conditions,
        )
        .order_by(col(Ticket.id).desc())
    )


_REPORTED_SINCE = (
    select(TicketReporter.id)
    .where(TicketReporter.ticket_id == Ticket.id, col(TicketReporter.at) >= bindparam("since"))
    .exists()
)
_STAGES: Any = bindparam("stages", expanding=True)
_MERGE_CANDIDATES = {
    has_category: _same_problem_tickets(col(Ticket.stage).in_(_STAGES), _REPORTED_SINCE, category=has_category)
    for has_category in (True, False)
}
_REPEAT_CANDIDATES = {
    has_category: _same_problem_tickets(
        col(Ticket.stage).in_(_STAGES),
        col(Ticket.resolved_at) >= bindparam("since"),
        category=has_category,
    )
    for has_category in (True, False)
}


async def merge_candidates(
    session: AsyncSession, *, village: str, category: str | None, kind: str, since: datetime, stages: Sequence[str]
) -> list[Ticket]:
    """Tickets in ``stages`` of the same village, category and kind with a report since ``since``, newest first."""
    params = {"village": village, "category": category, "kind": kind, "since": since, "stages": list(stages)}
    return list((await session.exec(_MERGE_CANDIDATES[category is not None], params=params)).all())


async def repeat_candidates(
    session: AsyncSession, *, village: str, category: str | None, kind: str, since: datetime, stages: Sequence[str]
) -> list[Ticket]:
    """Tickets in ``stages`` of the same village, category and kind resolved since ``since``."""
    params = {"village": village, "category": category, "kind": kind, "since": since, "stages": list(stages)}
    return list((await session.exec(_REPEAT_CANDIDATES[category is not None], params=params)).all())


async def awaiting_rating(session: AsyncSession, *, platform_id: str, stage: str) -> list[Ticket]:
    """Tickets in ``stage`` this person reported and has not rated yet."""
    statement = (
        select(Ticket)
        .join(TicketReporter, col(TicketReporter.ticket_id) == Ticket.id)
        .where(
            TicketReporter.platform_id == platform_id,
            Ticket.stage == stage,
            col(TicketReporter.rating).is_(None),
        )
        .order_by(col(Ticket.id))
    )
    return list((await session.exec(statement)).all())


async def awaiting_photo_from(session: AsyncSession, *, sender_platform_id: str, stage: str) -> Ticket | None:
    """The ticket in ``stage`` (awaiting its photo) that this person resolved, the latest resolved first."""
    resolved_by = (
        select(TicketMessage.id)
        .join(Message, col(Message.id) == TicketMessage.message_id)
        .where(
            TicketMessage.ticket_id == Ticket.id,
            Message.sender_platform_id == sender_platform_id,
            col(Message.at) >= Ticket.resolved_at,
        )
        .exists()
    )
    statement = select(Ticket).where(Ticket.stage == stage, resolved_by).order_by(col(Ticket.resolved_at).desc())
    return (await session.exec(statement)).first()


async def set_rating(session: AsyncSession, *, ticket_id: int, platform_id: str, rating: str, at: datetime) -> None:
    await session.exec(
        update(TicketReporter)
        .where(col(TicketReporter.ticket_id) == ticket_id, col(TicketReporter.platform_id) == platform_id)
        .values(rating=rating, rated_at=at)
        .execution_options(synchronize_session=False)
    )


async def clear_ratings(session: AsyncSession, ticket_id: int) -> None:
    """A new round: a reopened or re-resolved ticket asks every reporter again."""
    await session.exec(
        update(TicketReporter)
        .where(col(TicketReporter.ticket_id) == ticket_id, col(TicketReporter.rating).is_not(None))
        .values(rating=None, rated_at=None)
        .execution_options(synchronize_session=False)
    )


async def recent_unused_image(
    session: AsyncSession, *, sender_platform_id: str, since: datetime, before_id: int
) -> Message | None:
    """This person's latest image since ``since`` that is no ticket's photo yet."""
    used = select(TicketPhoto.id).where(TicketPhoto.message_id == Message.id).exists()
    statement = (
        select(Message)
        .where(
            Message.sender_platform_id == sender_platform_id,
            Message.kind == "image",
            col(Message.at) >= since,
            col(Message.id) < before_id,
            ~used,
        )
        .order_by(col(Message.at).desc(), col(Message.id).desc())
    )
    return (await session.exec(statement)).first()


async def members_by_platform_ids(session: AsyncSession, platform_ids: Iterable[str]) -> dict[str, Member]:
    ids = sorted(set(platform_ids))
    if not ids:
        return {}
    found: dict[str, Member] = {}
    for chunk in _chunks(ids):  # type: ignore[arg-type]
        statement = select(Member).where(col(Member.platform_id).in_(chunk))
        for member in (await session.exec(statement)).all():
            found[member.platform_id] = member
    return found


async def all_staff(session: AsyncSession) -> list[Member]:
    statement = select(Member).where(Member.role == "staff").order_by(col(Member.id))
    return list((await session.exec(statement)).all())


async def open_tickets_of(session: AsyncSession, *, assignee_platform_id: str, stages: Sequence[str]) -> list[Ticket]:
    statement = (
        select(Ticket)
        .where(Ticket.assignee_platform_id == assignee_platform_id, col(Ticket.stage).in_(list(stages)))
        .order_by(col(Ticket.deadline), col(Ticket.id))
    )
    return list((await session.exec(statement)).all())


# --- the daily check (bulk) -----------------------------------------------------------------------


async def due_for_reminder(
    session: AsyncSession, *, now: datetime, until: datetime, stages: Sequence[str]
) -> list[Any]:
    """Tickets in ``stages`` due after ``now`` and no later than ``until`` whose current deadline was not reminded."""
    statement: Any = (
        sa_select(
            col(Ticket.id),
            col(Ticket.assignee_platform_id),
            col(Ticket.assignee_name),
            col(Ticket.deadline),
            col(Ticket.category),
            col(Ticket.village),
            col(Ticket.text),
        )
        .where(
            col(Ticket.stage).in_(list(stages)),
            col(Ticket.deadline) > now,
            col(Ticket.deadline) <= until,
            or_(col(Ticket.reminded_for).is_(None), col(Ticket.reminded_for) != col(Ticket.deadline)),
        )
        .order_by(col(Ticket.deadline), col(Ticket.id))
    )
    return list((await session.exec(statement)).all())


async def mark_reminded(session: AsyncSession, ids: Sequence[int]) -> None:
    for chunk in _chunks(ids):
        await session.exec(
            update(Ticket)
            .where(col(Ticket.id).in_(chunk))
            .values(reminded_for=Ticket.deadline, version=Ticket.version + 1)
            .execution_options(synchronize_session=False)
        )


async def overdue(session: AsyncSession, *, now: datetime, stages: Sequence[str]) -> list[Any]:
    """Tickets in ``stages`` past their deadline that are not yet marked (top level) or not yet escalated."""
    statement: Any = (
        sa_select(
            col(Ticket.id),
            col(Ticket.level),
            col(Ticket.county),
            col(Ticket.township),
            col(Ticket.village),
            col(Ticket.kind),
            col(Ticket.assignee_name),
            col(Ticket.deadline),
            col(Ticket.text),
            col(Ticket.group_name),
            col(Ticket.confidential),
            col(Ticket.category),
        )
        .where(
            col(Ticket.stage).in_(list(stages)),
            col(Ticket.deadline) < now,
            or_(col(Ticket.level) != "county", col(Ticket.overdue).is_(False)),
        )
        .order_by(col(Ticket.id))
    )
    return list((await session.exec(statement)).all())


async def escalate_overdue(
    session: AsyncSession,
    ids: Sequence[int],
    *,
    now: datetime,
    level: str,
    assignee_name: str | None,
    assignee_platform_id: str | None,
    deadline: datetime,
    stages: dict[str, tuple[str, str]],
) -> list[int]:
    """Move still-overdue tickets one level up with a new assignee and deadline; returns the ids moved.

    ``stages``: each stage the move applies to → the (stage, status) it leaves the ticket in.
    """
    moved: list[int] = []
    new_stage = case(*((col(Ticket.stage) == old, new) for old, (new, _) in stages.items()), else_=col(Ticket.stage))
    new_status = case(*((col(Ticket.stage) == old, st) for old, (_, st) in stages.items()), else_=col(Ticket.status))
    for chunk in _chunks(ids):
        condition = and_(col(Ticket.id).in_(chunk), col(Ticket.stage).in_(list(stages)), col(Ticket.deadline) < now)
        found = [int(i) for i in (await session.exec(select(col(Ticket.id)).where(condition))).all() if i is not None]
        if not found:
            continue
        values: dict[str, Any] = {
            "level": level,
            "overdue": True,
            "deadline": deadline,
            "reminded_for": None,
            "priority": Ticket.priority + 1,
            "version": Ticket.version + 1,
            "stage": new_stage,
            "status": new_status,
        }
        if assignee_name is not None:
            values["assignee_name"] = assignee_name
            values["assignee_platform_id"] = assignee_platform_id
        await session.exec(
            update(Ticket)
            .where(col(Ticket.id).in_(found))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        moved.extend(found)
    return moved


async def mark_overdue(session: AsyncSession, ids: Sequence[int]) -> None:
    for chunk in _chunks(ids):
        await session.exec(
            update(Ticket)
            .where(col(Ticket.id).in_(chunk), col(Ticket.overdue).is_(False))
            .values(overdue=True, version=Ticket.version + 1)
            .execution_options(synchronize_session=False)
        )


async def rating_expired(session: AsyncSession, *, before: datetime, stage: str) -> list[Ticket]:
    """Tickets in ``stage`` (awaiting ratings) that asked for them no later than ``before``."""
    statement = (
        select(Ticket).where(Ticket.stage == stage, col(Ticket.rating_requested_at) <= before).order_by(col(Ticket.id))
    )
    return list((await session.exec(statement)).all())


# --- the daily digest -----------------------------------------------------------------------------


async def digest_counts(
    session: AsyncSession, *, since: datetime, now: datetime, active: Sequence[str], awaiting: Sequence[str]
) -> dict[tuple[str, str], dict[str, int]]:
    """Per (county, township): new, active, overdue, escalated (above village), resolved, awaiting rating
    (``active`` and ``awaiting``: the stages meant)."""
    is_active = col(Ticket.stage).in_(list(active))
    statement: Any = sa_select(
        col(Ticket.county),
        col(Ticket.township),
        _count_if(col(Ticket.opened_at) >= since),
        _count_if(is_active),
        _count_if(and_(is_active, or_(col(Ticket.overdue).is_(True), col(Ticket.deadline) < now))),
        _count_if(and_(is_active, col(Ticket.level) != "village")),
        _count_if(and_(col(Ticket.resolved_at).is_not(None), col(Ticket.resolved_at) >= since)),
        _count_if(col(Ticket.stage).in_(list(awaiting))),
    ).group_by(col(Ticket.county), col(Ticket.township))
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for row in (await session.exec(statement)).all():
        counts[(row[0], row[1])] = {
            "new": int(row[2] or 0),
            "active": int(row[3] or 0),
            "overdue": int(row[4] or 0),
            "escalated": int(row[5] or 0),
            "resolved": int(row[6] or 0),
            "awaiting_rating": int(row[7] or 0),
        }
    return counts


async def flag_counts(session: AsyncSession, *, since: datetime) -> dict[tuple[str, str], dict[str, int]]:
    statement: Any = (
        sa_select(
            col(Flag.county),
            col(Flag.township),
            func.count(),
            _count_if(col(Flag.severity) == "high"),
        )
        .where(col(Flag.at) >= since)
        .group_by(col(Flag.county), col(Flag.township))
    )
    return {
        (row[0], row[1]): {"flags": int(row[2] or 0), "high": int(row[3] or 0)}
        for row in (await session.exec(statement)).all()
    }


def _count_if(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


# --- the report -----------------------------------------------------------------------------------


async def report_rows(
    session: AsyncSession,
) -> tuple[list[Ticket], list[TicketReporter], list[TicketEvent], list[TicketPhoto]]:
    tickets = list((await session.exec(select(Ticket).order_by(col(Ticket.id)))).all())
    reps = list((await session.exec(select(TicketReporter).order_by(col(TicketReporter.id)))).all())
    evs = list((await session.exec(select(TicketEvent).order_by(col(TicketEvent.id)))).all())
    phs = list((await session.exec(select(TicketPhoto).order_by(col(TicketPhoto.id)))).all())
    return tickets, reps, evs, phs


async def escalated_active(
    session: AsyncSession, *, county: str, township: str, stages: Sequence[str], limit: int = 10
) -> list[Ticket]:
    """Tickets in ``stages`` above village level in a scope (empty county/township = any), most urgent first."""
    statement = select(Ticket).where(col(Ticket.stage).in_(list(stages)), Ticket.level != "village")
    if county:
        statement = statement.where(Ticket.county == county)
    if township:
        statement = statement.where(Ticket.township == township)
    statement = statement.order_by(col(Ticket.overdue).desc(), col(Ticket.priority).desc(), col(Ticket.id)).limit(limit)
    return list((await session.exec(statement)).all())
