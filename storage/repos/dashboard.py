"""Every query the dashboard makes: patrol digest, ticket board, statistics, broadcasts, exports.

A :class:`Scope` limits each query to what a viewer may see; the dashboard builds it from the login,
this module only applies it, in SQL (``_where_scope``), the one place the visibility rule lives: a read
of one row takes the scope too, so out-of-scope and absent look the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.selectable import TextualSelect
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Broadcast,
    Flag,
    FlagReview,
    Group,
    Member,
    Message,
    Outbox,
    StaffUser,
    Ticket,
    TicketEvent,
    TicketMessage,
    TicketPhoto,
    TicketReporter,
)
from storage.types import UTCDateTime

flags: Any = Flag.__table__  # type: ignore[attr-defined]
reviews: Any = FlagReview.__table__  # type: ignore[attr-defined]
messages: Any = Message.__table__  # type: ignore[attr-defined]
tickets: Any = Ticket.__table__  # type: ignore[attr-defined]
groups: Any = Group.__table__  # type: ignore[attr-defined]
reporters: Any = TicketReporter.__table__  # type: ignore[attr-defined]
events: Any = TicketEvent.__table__  # type: ignore[attr-defined]
ticket_messages: Any = TicketMessage.__table__  # type: ignore[attr-defined]
photos: Any = TicketPhoto.__table__  # type: ignore[attr-defined]
broadcasts: Any = Broadcast.__table__  # type: ignore[attr-defined]
outbox: Any = Outbox.__table__  # type: ignore[attr-defined]
members: Any = Member.__table__  # type: ignore[attr-defined]
staff_users: Any = StaffUser.__table__  # type: ignore[attr-defined]

SEVERITIES = ("high", "normal", "low")
DONE = ("resolved", "closed")
SATISFIED = ("satisfied", "basically_satisfied")


@dataclass(frozen=True)
class Scope:
    """What a viewer may see. ``None`` means no limit at that level."""

    county: str | None = None
    township: str | None = None
    village: str | None = None
    confidential: bool = True
    """May see confidential tickets, clue tickets and clue/confidential flags (discipline staff only)."""

    def admits(self, *, county: str, township: str, village: str) -> bool:
        """Whether a place lies inside this scope: the rule of :func:`_where_scope`, for a row not yet stored
        (a roster row being imported)."""
        return all(
            limit is None or value == limit
            for limit, value in ((self.county, county), (self.township, township), (self.village, village))
        )


def _where_scope(table: Any, scope: Scope) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if scope.county is not None:
        conds.append(table.c.county == scope.county)
    if scope.township is not None:
        conds.append(table.c.township == scope.township)
    if scope.village is not None:
        conds.append(table.c.village == scope.village)
    if not scope.confidential and "confidential" in table.c:
        conds.append(table.c.confidential == false())
        if table is flags:
            conds.append(not_(cast(flags.c.labels, Text).like('%"clue"%')))
        elif table is tickets:
            conds.append(tickets.c.kind != "clue")
    return conds


async def flag_for_message(session: AsyncSession, *, message_id: int) -> bool:
    conn = await session.connection()
    return (await conn.execute(select(flags.c.id).where(flags.c.message_id == message_id))).first() is not None


async def get_message(session: AsyncSession, *, message_id: int, scope: Scope) -> RowMapping | None:
    """One stored message, or None when absent or outside ``scope`` (private chats need confidential access)."""
    conds = _where_scope(messages, scope)
    if not scope.confidential:
        conds.append(messages.c.private == false())
    conn = await session.connection()
    return (await conn.execute(select(messages).where(messages.c.id == message_id, *conds))).mappings().first()


async def on_visible_ticket(session: AsyncSession, *, message_id: int, scope: Scope) -> bool:
    """Whether the message belongs to a ticket inside ``scope`` (a cadre sees a ticket's photos, no more)."""
    statement = (
        select(ticket_messages.c.id)
        .select_from(ticket_messages.join(tickets, tickets.c.id == ticket_messages.c.ticket_id))
        .where(ticket_messages.c.message_id == message_id, *_where_scope(tickets, scope))
        .limit(1)
    )
    conn = await session.connection()
    return (await conn.execute(statement)).first() is not None


def _is_pg(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


# ---------------------------------------------------------------- patrol digest

_FLAG_COLS = [
    flags.c.id,
    flags.c.message_id,
    flags.c.at,
    flags.c.group_name,
    flags.c.sender_name,
    flags.c.role,
    flags.c.county,
    flags.c.township,
    flags.c.village,
    flags.c.labels,
    flags.c.severity,
    flags.c.tier,
    flags.c.reasons,
    flags.c.rules,
    flags.c.keywords,
    flags.c.verdict,
    flags.c.confidential,
    flags.c.from_image,
    messages.c.text,
    messages.c.kind.label("message_kind"),
    messages.c.media_path,
]

LAST_ID = 2**31 - 1
"""A cursor id above every row (PostgreSQL integer ids): the next page starts at the top of a section."""

UNJUDGED = "none"
"""The verdict filter value of flags nobody judged yet (未判)."""


@dataclass(frozen=True)
class FlagFilter:
    """The digest's filters; each None means "any". ``verdict`` is a verdict code or :data:`UNJUDGED`."""

    township: str | None = None
    village: str | None = None
    label: str | None = None
    severity: str | None = None
    tier: str | None = None
    verdict: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _flag_conds(scope: Scope, filt: FlagFilter) -> list[ColumnElement[bool]]:
    conds = _where_scope(flags, scope)
    for col, value in ((flags.c.township, filt.township), (flags.c.village, filt.village), (flags.c.tier, filt.tier)):
        if value:
            conds.append(col == value)
    if filt.label:
        # labels are a JSON list of plain codes: '["banquet", "clue"]' (the clue rule above reads it the same way)
        conds.append(cast(flags.c.labels, Text).like(f'%"{filt.label}"%'))
    if filt.verdict == UNJUDGED:
        conds.append(flags.c.verdict.is_(None))
    elif filt.verdict:
        conds.append(flags.c.verdict == filt.verdict)
    if filt.since is not None:
        conds.append(flags.c.at >= filt.since)
    if filt.until is not None:
        conds.append(flags.c.at < filt.until)
    return conds


async def digest_page(
    session: AsyncSession,
    *,
    scope: Scope,
    after_id: int,
    cursor: tuple[int, int] | None,
    limit: int,
    unreviewed_only: bool = False,
    filt: FlagFilter = FlagFilter(),
) -> tuple[list[RowMapping], tuple[int, int] | None]:
    """Flags with id > ``after_id`` that pass ``filt``: high severity first, then newest first.

    ``cursor`` is (severity index, last id shown); the second value returned is the cursor of the next
    page, or None. One indexed query per severity keeps this fast at city scale.
    """
    if unreviewed_only and filt.verdict is None:
        filt = replace(filt, verdict=UNJUDGED)
    conn = await session.connection()
    start_sev, before_id = cursor if cursor else (0, None)
    wanted = [i for i, sev in enumerate(SEVERITIES) if filt.severity in (None, sev)]
    conds = _flag_conds(scope, filt)
    out: list[RowMapping] = []
    for sev_index in [i for i in wanted if i >= start_sev]:
        want = limit - len(out)
        stmt = (
            select(*_FLAG_COLS)
            .select_from(flags.join(messages, messages.c.id == flags.c.message_id))
            .where(flags.c.severity == SEVERITIES[sev_index], flags.c.id > after_id, *conds)
            .order_by(flags.c.id.desc())
            .limit(want + 1)
        )
        if sev_index == start_sev and before_id is not None and before_id < LAST_ID:
            stmt = stmt.where(flags.c.id < before_id)
        rows = list((await conn.execute(stmt)).mappings().all())
        if len(rows) > want:
            out.extend(rows[:want])
            return out, (sev_index, out[-1]["id"])
        out.extend(rows)
        if len(out) == limit:
            # the page is full exactly at a section's end: is there anything after it?
            for later in [i for i in wanted if i > sev_index]:
                probe = (
                    select(flags.c.id)
                    .where(flags.c.severity == SEVERITIES[later], flags.c.id > after_id, *conds)
                    .limit(1)
                )
                if (await conn.execute(probe)).first() is not None:
                    return out, (later, LAST_ID)  # "from the top" of that section
            return out, None
    return out, None


FILTERED_COUNT_CAP = 1000
"""A filtered digest counts at most this many flags per severity (shown as "1000+"): a filter no index serves
(a label, a verdict) would otherwise read every flag of a city to count them."""


async def count_flags_after(
    session: AsyncSession, *, scope: Scope, after_id: int, filt: FlagFilter = FlagFilter()
) -> dict[str, int]:
    """Flags with id > ``after_id`` per severity; exact without a filter (an index count), at most
    :data:`FILTERED_COUNT_CAP` with one."""
    conn = await session.connection()
    conds = _flag_conds(scope, filt)
    capped = filt != FlagFilter()
    out = {}
    for sev in SEVERITIES:
        if filt.severity not in (None, sev):
            out[sev] = 0
            continue
        where = [flags.c.severity == sev, flags.c.id > after_id, *conds]
        if capped:
            inner = select(flags.c.id).where(*where).limit(FILTERED_COUNT_CAP).subquery()
            stmt = select(func.count()).select_from(inner)
        else:
            stmt = select(func.count()).select_from(flags).where(*where)
        out[sev] = int((await conn.execute(stmt)).scalar_one())
    return out


async def max_flag_id(session: AsyncSession) -> int:
    conn = await session.connection()
    return int((await conn.execute(select(func.coalesce(func.max(flags.c.id), 0)))).scalar_one())


async def get_flag(session: AsyncSession, *, flag_id: int, scope: Scope) -> RowMapping | None:
    """One flag, or None when it does not exist or lies outside ``scope`` (the caller cannot tell which)."""
    conn = await session.connection()
    stmt = (
        select(*_FLAG_COLS)
        .select_from(flags.join(messages, messages.c.id == flags.c.message_id))
        .where(flags.c.id == flag_id, *_where_scope(flags, scope))
    )
    return (await conn.execute(stmt)).mappings().first()


_CONTEXT_HIDDEN = (
    " AND NOT EXISTS (SELECT 1 FROM flags f WHERE f.message_id = m.id"
    " AND (f.confidential OR CAST(f.labels AS TEXT) LIKE '%\"clue\"%'))"
    " AND NOT EXISTS (SELECT 1 FROM ticket_messages tm JOIN tickets t ON t.id = tm.ticket_id"
    " WHERE tm.message_id = m.id AND (t.confidential OR t.kind = 'clue'))"
)


@lru_cache(maxsize=128)
def _context_sql(count: int, hidden: bool) -> TextualSelect:
    """One statement for ``count`` anchors: the messages just before and just after each, in its group.

    Plain SQL text built once per shape; building it as SQLAlchemy expressions made thousands of objects
    per page and stalled the garbage collector.
    """
    extra = _CONTEXT_HIDDEN if hidden else ""
    cols = "m.id, m.at, m.sender_name, m.role, m.kind, m.text, m.media_path"
    parts = []
    binds: list[BindParameter[Any]] = []
    for i in range(count):
        parts.append(
            f"SELECT * FROM (SELECT CAST(:a{i} AS INTEGER) AS anchor, {cols} FROM messages m WHERE m.group_name = :g{i}"
            f" AND m.at < :t{i}{extra} ORDER BY m.at DESC LIMIT :before) AS b{i}"
        )
        parts.append(
            f"SELECT * FROM (SELECT CAST(:a{i} AS INTEGER) AS anchor, {cols} FROM messages m WHERE m.group_name = :g{i}"
            f" AND m.at >= :t{i} AND m.id <> :a{i}{extra} ORDER BY m.at LIMIT :after) AS c{i}"
        )
        binds += [
            bindparam(f"t{i}", type_=UTCDateTime()),
            bindparam(f"a{i}", type_=Integer()),
            bindparam(f"g{i}", type_=String()),
        ]
    binds += [bindparam("before", type_=Integer()), bindparam("after", type_=Integer())]
    return text(" UNION ALL ".join(parts)).bindparams(*binds).columns(at=UTCDateTime(), anchor=Integer())


@lru_cache(maxsize=4)
def _context_sql_pg(hidden: bool) -> TextualSelect:
    """The same on PostgreSQL for any number of anchors: the anchors as arrays, one LATERAL scan of the
    (group_name, at) index each way per anchor. One statement text whatever the page holds, so it is
    planned once per connection (prepared), not once per page: planning 100 UNION branches cost more than
    running them at city scale (bench_morning)."""
    extra = _CONTEXT_HIDDEN if hidden else ""
    cols = "m.id, m.at, m.sender_name, m.role, m.kind, m.text, m.media_path"
    anchors = (
        "unnest(CAST(:anchors AS INTEGER[]), CAST(:groups AS VARCHAR[]), CAST(:ats AS TIMESTAMP WITHOUT TIME ZONE[]))"
        " AS a(anchor, g, t)"
    )
    sql = (
        f"SELECT a.anchor, x.* FROM {anchors} CROSS JOIN LATERAL (SELECT {cols} FROM messages m"
        f" WHERE m.group_name = a.g AND m.at < a.t{extra} ORDER BY m.at DESC LIMIT :before) AS x"
        f" UNION ALL SELECT a.anchor, y.* FROM {anchors} CROSS JOIN LATERAL (SELECT {cols} FROM messages m"
        f" WHERE m.group_name = a.g AND m.at >= a.t AND m.id <> a.anchor{extra} ORDER BY m.at LIMIT :after) AS y"
    )
    return text(sql).columns(at=UTCDateTime(), anchor=Integer())


async def message_context(
    session: AsyncSession,
    *,
    anchors: Sequence[tuple[int, str | None, datetime]],
    before: int,
    after: int,
    scope: Scope = Scope(),
) -> dict[int, list[RowMapping]]:
    """Messages around each anchor (message id, group, time), in one statement; anchor id → messages.

    Without confidential access, messages that are clue/confidential flags or belong to a confidential
    or clue ticket are left out of the context.
    """
    anchors = [a for a in anchors if a[1]]
    result: dict[int, list[RowMapping]] = {}
    if not anchors:
        return result
    params: dict[str, Any] = {"before": before, "after": after}
    stmt: TextualSelect
    if _is_pg(session):
        params["anchors"] = [message_id for message_id, _, _ in anchors]
        params["groups"] = [group_name for _, group_name, _ in anchors]
        params["ats"] = [at.astimezone(UTC).replace(tzinfo=None) for _, _, at in anchors]
        stmt = _context_sql_pg(not scope.confidential)
    else:
        for i, (message_id, group_name, at) in enumerate(anchors):
            params[f"a{i}"] = message_id
            params[f"g{i}"] = group_name
            params[f"t{i}"] = at
        stmt = _context_sql(len(anchors), not scope.confidential)
    conn = await session.connection()
    for row in (await conn.execute(stmt, params)).mappings():
        result.setdefault(row["anchor"], []).append(row)
    for rows in result.values():
        rows.sort(key=lambda r: (r["at"], r["id"]))
    return result


async def record_verdict(
    session: AsyncSession, *, flag_id: int, username: str, verdict: str, note: str, at: datetime
) -> None:
    """A review of a flag; a "note" keeps the flag's verdict, anything else replaces it."""
    conn = await session.connection()
    await conn.execute(reviews.insert().values(flag_id=flag_id, at=at, username=username, verdict=verdict, note=note))
    if verdict != "note":
        await conn.execute(update(flags).where(flags.c.id == flag_id).values(verdict=verdict))


async def review_notes(
    session: AsyncSession, *, flag_ids: Sequence[int], per_flag: int = 3
) -> dict[int, list[RowMapping]]:
    """The latest reviews with a note of each flag (newest first, at most ``per_flag``), with the reviewer's
    display name: what the digest's cards show under a flag."""
    if not flag_ids:
        return {}
    conn = await session.connection()
    stmt = (
        select(
            reviews.c.flag_id,
            reviews.c.at,
            reviews.c.verdict,
            reviews.c.note,
            func.coalesce(staff_users.c.display_name, "").label("reviewer"),
        )
        .select_from(reviews.outerjoin(staff_users, staff_users.c.username == reviews.c.username))
        .where(reviews.c.flag_id.in_(list(flag_ids)), reviews.c.note != "")
        .order_by(reviews.c.id.desc())
    )
    out: dict[int, list[RowMapping]] = {}
    for row in (await conn.execute(stmt)).mappings():
        found = out.setdefault(row["flag_id"], [])
        if len(found) < per_flag:
            found.append(row)
    return out


async def flag_reviews(session: AsyncSession, *, flag_id: int) -> Sequence[RowMapping]:
    """Every review of a flag, oldest first, with the reviewer's display name (``reviewer``, may be empty)."""
    conn = await session.connection()
    stmt = (
        select(reviews, func.coalesce(staff_users.c.display_name, "").label("reviewer"))
        .select_from(reviews.outerjoin(staff_users, staff_users.c.username == reviews.c.username))
        .where(reviews.c.flag_id == flag_id)
        .order_by(reviews.c.id)
    )
    return (await conn.execute(stmt)).mappings().all()


async def reviewed_flag_rules(session: AsyncSession) -> Sequence[Any]:
    """(rules, verdict) of every flag with a verdict, for per-rule precision."""
    conn = await session.connection()
    stmt = select(flags.c.rules, flags.c.verdict).where(flags.c.verdict.is_not(None))
    return (await conn.execute(stmt)).all()


# ---------------------------------------------------------------- ticket board


@dataclass(frozen=True)
class TicketFilter:
    status: str | None = None
    kind: str | None = None
    category: str | None = None
    township: str | None = None
    village: str | None = None
    overdue: bool | None = None
    rating: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    assignees: tuple[str, ...] | None = None
    """我的: tickets assigned to one of these names (the viewer's roster and display names), still open."""
    attention: Attention | None = None
    """待我处理: open tickets that wait for the viewer's level."""


@dataclass(frozen=True)
class Attention:
    """Open tickets at one of ``levels``, or overdue (when ``overdue``), or in one of ``stages``."""

    levels: tuple[str, ...] = ()
    overdue: bool = False
    stages: tuple[str, ...] = ()


ACTIVE = ("open", "accepted")
BOARD_SORTS = ("opened", "deadline", "priority", "reporters")


def _ticket_conds(scope: Scope, filt: TicketFilter) -> list[ColumnElement[bool]]:
    conds = _where_scope(tickets, scope)
    if filt.assignees is not None:
        conds.append(tickets.c.assignee_name.in_(list(filt.assignees) or [""]))
        conds.append(tickets.c.status.in_(ACTIVE))
    if filt.attention is not None:
        need = filt.attention
        either: list[ColumnElement[bool]] = []
        if need.levels:
            either.append(tickets.c.level.in_(list(need.levels)))
        if need.overdue:
            either.append(tickets.c.overdue == true())
        if need.stages:
            either.append(tickets.c.stage.in_(list(need.stages)))
        conds.append(tickets.c.status.in_(ACTIVE))
        conds.append(or_(*either) if either else false())
    for col, value in (
        (tickets.c.status, filt.status),
        (tickets.c.kind, filt.kind),
        (tickets.c.category, filt.category),
        (tickets.c.township, filt.township),
        (tickets.c.village, filt.village),
        (tickets.c.rating, filt.rating),
    ):
        if value:
            conds.append(col == value)
    if filt.overdue is not None:
        conds.append(tickets.c.overdue == filt.overdue)
    if filt.since is not None:
        conds.append(tickets.c.opened_at >= filt.since)
    if filt.until is not None:
        conds.append(tickets.c.opened_at < filt.until)
    if filt.text:
        escaped = filt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(tickets.c.text.like(f"%{escaped}%", escape="\\"))
    return conds


_BOARD_COLS = [
    tickets.c.id,
    tickets.c.kind,
    tickets.c.category,
    tickets.c.group_name,
    tickets.c.county,
    tickets.c.township,
    tickets.c.village,
    tickets.c.assignee_name,
    tickets.c.level,
    tickets.c.status,
    tickets.c.overdue,
    tickets.c.confidential,
    tickets.c.deadline,
    tickets.c.opened_at,
    tickets.c.resolved_at,
    tickets.c.rating,
    tickets.c.priority,
    tickets.c.stage,
    func.substr(tickets.c.text, 1, 80).label("text"),
    select(func.count())
    .select_from(reporters)
    .where(reporters.c.ticket_id == tickets.c.id)
    .correlate(tickets)
    .scalar_subquery()
    .label("reporter_count"),
]


def _board_order(sort: str) -> list[Any]:
    """Newest first, or a work queue's order: overdue first, then the nearest deadline (none last)."""
    by_deadline = [
        case((tickets.c.status.in_(ACTIVE), 0), else_=1),
        tickets.c.overdue.desc(),
        case((tickets.c.deadline.is_(None), 1), else_=0),
        tickets.c.deadline.asc(),
    ]
    if sort == "deadline":
        return [*by_deadline, tickets.c.id.asc()]
    if sort == "priority":
        return [tickets.c.priority.desc(), *by_deadline, tickets.c.id.asc()]
    if sort == "reporters":
        return [literal_column("reporter_count").desc(), *by_deadline, tickets.c.id.asc()]
    return [tickets.c.opened_at.desc(), tickets.c.id.desc()]


async def board_page(
    session: AsyncSession, *, scope: Scope, filt: TicketFilter, limit: int, offset: int, sort: str = "opened"
) -> tuple[list[RowMapping], int]:
    conn = await session.connection()
    conds = _ticket_conds(scope, filt)
    total = int((await conn.execute(select(func.count()).select_from(tickets).where(*conds))).scalar_one())
    stmt = select(*_BOARD_COLS).where(*conds).order_by(*_board_order(sort)).limit(limit).offset(offset)
    rows = list((await conn.execute(stmt)).mappings().all())
    return rows, total


async def get_ticket(session: AsyncSession, *, ticket_id: int, scope: Scope) -> RowMapping | None:
    """One ticket, or None when it does not exist or lies outside ``scope`` (the caller cannot tell which)."""
    conn = await session.connection()
    stmt = select(tickets).where(tickets.c.id == ticket_id, *_where_scope(tickets, scope))
    return (await conn.execute(stmt)).mappings().first()


async def ticket_details(session: AsyncSession, *, ticket_id: int) -> dict[str, Sequence[RowMapping]]:
    """Reporters, events, linked messages and photos of one ticket."""
    conn = await session.connection()
    out: dict[str, Sequence[RowMapping]] = {}
    out["reporters"] = (
        (await conn.execute(select(reporters).where(reporters.c.ticket_id == ticket_id).order_by(reporters.c.at)))
        .mappings()
        .all()
    )
    out["events"] = (
        (await conn.execute(select(events).where(events.c.ticket_id == ticket_id).order_by(events.c.at, events.c.id)))
        .mappings()
        .all()
    )
    out["messages"] = (
        (
            await conn.execute(
                select(
                    messages.c.id,
                    messages.c.at,
                    messages.c.sender_name,
                    messages.c.role,
                    messages.c.kind,
                    messages.c.text,
                    messages.c.media_path,
                    messages.c.group_name,
                    messages.c.private,
                )
                .select_from(ticket_messages.join(messages, messages.c.id == ticket_messages.c.message_id))
                .where(ticket_messages.c.ticket_id == ticket_id)
                .order_by(messages.c.at)
            )
        )
        .mappings()
        .all()
    )
    out["photos"] = (
        (await conn.execute(select(photos).where(photos.c.ticket_id == ticket_id).order_by(photos.c.at)))
        .mappings()
        .all()
    )
    return out


async def get_photo(session: AsyncSession, *, photo_id: int) -> RowMapping | None:
    conn = await session.connection()
    return (await conn.execute(select(photos).where(photos.c.id == photo_id))).mappings().first()


async def places(session: AsyncSession, *, scope: Scope) -> list[tuple[str, str]]:
    """(township, village) pairs of the configured groups in scope, for filter menus."""
    conn = await session.connection()
    stmt = (
        select(groups.c.township, groups.c.village)
        .distinct()
        .where(*_where_scope(groups, scope))
        .order_by(groups.c.township, groups.c.village)
    )
    return [(r[0], r[1]) for r in (await conn.execute(stmt)).all()]


async def configured_places(session: AsyncSession) -> list[tuple[str, str, str]]:
    """(county, township, village) of every configured group: the hierarchy synced from the config."""
    conn = await session.connection()
    stmt = (
        select(groups.c.county, groups.c.township, groups.c.village)
        .distinct()
        .where(groups.c.configured == true(), groups.c.village != "")
        .order_by(groups.c.county, groups.c.township, groups.c.village)
    )
    return [(r[0], r[1], r[2]) for r in (await conn.execute(stmt)).all()]


async def groups_in_scope(session: AsyncSession, *, scope: Scope, township: str | None = None) -> list[RowMapping]:
    conn = await session.connection()
    stmt = (
        select(groups.c.name, groups.c.township, groups.c.village)
        .where(*_where_scope(groups, scope))
        .order_by(groups.c.township, groups.c.village, groups.c.name)
    )
    if township:
        stmt = stmt.where(groups.c.township == township)
    return list((await conn.execute(stmt)).mappings().all())


# ---------------------------------------------------------------- roster


@dataclass(frozen=True)
class MemberFilter:
    on_roster: bool | None = None
    role: str | None = None
    township: str | None = None
    village: str | None = None
    text: str | None = None
    """Part of a name."""


def _member_conds(scope: Scope, filt: MemberFilter) -> list[ColumnElement[bool]]:
    conds = _where_scope(members, scope)
    if filt.on_roster is not None:
        conds.append(members.c.on_roster == filt.on_roster)
    for column, value in (
        (members.c.role, filt.role),
        (members.c.township, filt.township),
        (members.c.village, filt.village),
    ):
        if value:
            conds.append(column == value)
    if filt.text:
        escaped = filt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(members.c.name.like(f"%{escaped}%", escape="\\"))
    return conds


async def members_page(
    session: AsyncSession, *, scope: Scope, filt: MemberFilter, limit: int, offset: int
) -> tuple[list[RowMapping], int]:
    """People the bot knows in ``scope``: roster members and those only seen in a group (on_roster false)."""
    conn = await session.connection()
    conds = _member_conds(scope, filt)
    total = int((await conn.execute(select(func.count()).select_from(members).where(*conds))).scalar_one())
    stmt = (
        select(members)
        .where(*conds)
        .order_by(members.c.township, members.c.village, members.c.role, members.c.name, members.c.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await conn.execute(stmt)).mappings().all()), total


async def iter_roster_members(session: AsyncSession, *, scope: Scope) -> list[RowMapping]:
    """Every roster member in ``scope``, for the export."""
    conn = await session.connection()
    stmt = select(members).where(members.c.on_roster == true(), *_where_scope(members, scope)).order_by(members.c.id)
    return list((await conn.execute(stmt)).mappings().all())


async def get_member(session: AsyncSession, *, member_id: int, scope: Scope) -> RowMapping | None:
    conn = await session.connection()
    stmt = select(members).where(members.c.id == member_id, *_where_scope(members, scope))
    return (await conn.execute(stmt)).mappings().first()


# ---------------------------------------------------------------- statistics


def _seconds(session: AsyncSession, later: Any, earlier: Any) -> ColumnElement[Any]:
    if _is_pg(session):
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _bucket(session: AsyncSession, col: Any, granularity: str, tz_hours: int) -> ColumnElement[Any]:
    if _is_pg(session):
        fmt = {"day": "YYYY-MM-DD", "week": 'IYYY-"W"IW', "month": "YYYY-MM"}[granularity]
        return func.to_char(col + literal_column(f"interval '{int(tz_hours)} hours'"), fmt)
    fmt = {"day": "%Y-%m-%d", "week": "%Y-W%W", "month": "%Y-%m"}[granularity]
    return func.strftime(fmt, col, f"{int(tz_hours):+d} hours")


def _dimension(session: AsyncSession, dimension: str, tz_hours: int) -> ColumnElement[Any]:
    if dimension in ("township", "village", "category", "kind"):
        if dimension == "village":
            return tickets.c.township + literal(" / ") + tickets.c.village
        return func.coalesce(tickets.c[dimension], "")
    if dimension in ("day", "week", "month"):
        return _bucket(session, tickets.c.opened_at, dimension, tz_hours)
    raise ValueError(f"unknown dimension {dimension!r}")


async def ticket_stats(
    session: AsyncSession,
    *,
    scope: Scope,
    since: datetime,
    until: datetime,
    dimension: str,
    tz_hours: int = 8,
    medians: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per value of ``dimension`` (township, village, category, kind, day, week, month), and the total.

    Counts are aggregated in SQL; the medians come from the per-ticket durations computed in SQL.
    """
    conn = await session.connection()
    key = _dimension(session, dimension, tz_hours).label("key")
    conds = [*_where_scope(tickets, scope), tickets.c.opened_at >= since, tickets.c.opened_at < until]
    resolved = tickets.c.resolved_at.is_not(None)

    def _count(cond: ColumnElement[bool]) -> Any:
        return func.sum(case((cond, 1), else_=0))

    stmt = (
        select(
            key,
            func.count().label("received"),
            _count(tickets.c.status.in_(DONE)).label("done"),
            _count(resolved).label("resolved"),
            _count(and_(resolved, tickets.c.deadline.is_not(None), tickets.c.resolved_at <= tickets.c.deadline)).label(
                "on_time"
            ),
            _count(tickets.c.rating.in_(SATISFIED)).label("satisfied"),
            _count(tickets.c.rating.is_not(None)).label("rated"),
            _count(and_(resolved, _seconds(session, tickets.c.resolved_at, tickets.c.opened_at) <= 5 * 86400)).label(
                "within5"
            ),
        )
        .where(*conds)
        .group_by(key)
        .order_by(key)
    )
    rows = [dict(r) for r in (await conn.execute(stmt)).mappings()]
    counts = ("received", "done", "resolved", "on_time", "satisfied", "rated", "within5")
    for r in rows:
        for k in counts:
            r[k] = int(r[k] or 0)
        r["median_response"] = r["median_resolution"] = None
    total: dict[str, Any] = {k: sum(r[k] for r in rows) for k in counts}
    total["median_response"] = total["median_resolution"] = None
    if medians and rows and _is_pg(session):
        # PostgreSQL computes medians itself; shipping every duration to Python costs more.
        grouped = await _pg_medians(session, key=key, conds=conds)
        for r in rows:
            r["median_response"], r["median_resolution"] = grouped.get(r["key"], (None, None))
        overall = await _pg_medians(session, key=literal("all").label("key"), conds=conds)
        total["median_response"], total["median_resolution"] = overall.get("all", (None, None))
    elif medians and rows:
        durations = await _durations(session, key=key, conds=conds)
        for r in rows:
            resp, res = durations.get(r["key"], ([], []))
            r["median_response"] = _median(resp)
            r["median_resolution"] = _median(res)
        total["median_response"] = _median([v for resp, _ in durations.values() for v in resp])
        total["median_resolution"] = _median([v for _, res in durations.values() for v in res])
    return rows, total


async def _pg_medians(
    session: AsyncSession, *, key: Any, conds: list[ColumnElement[bool]]
) -> dict[Any, tuple[float | None, float | None]]:
    conn = await session.connection()
    resp = _seconds(session, tickets.c.first_response_at, tickets.c.opened_at)
    res = _seconds(session, tickets.c.resolved_at, tickets.c.opened_at)
    stmt = (
        select(
            key,
            cast(func.percentile_cont(0.5).within_group(resp), Float),
            cast(func.percentile_cont(0.5).within_group(res), Float),
        )
        .where(*conds)
        .group_by(key)
    )
    return {
        k: (float(a) if a is not None else None, float(b) if b is not None else None)
        for k, a, b in (await conn.execute(stmt)).all()
    }


async def _durations(
    session: AsyncSession, *, key: Any, conds: list[ColumnElement[bool]]
) -> dict[Any, tuple[list[float], list[float]]]:
    conn = await session.connection()
    resp = cast(_seconds(session, tickets.c.first_response_at, tickets.c.opened_at), Float)
    res = cast(_seconds(session, tickets.c.resolved_at, tickets.c.opened_at), Float)
    stmt = select(key, resp, res).where(
        *conds, or_(tickets.c.first_response_at.is_not(None), tickets.c.resolved_at.is_not(None))
    )
    out: dict[Any, tuple[list[float], list[float]]] = {}
    for k, a, b in (await conn.execute(stmt)).all():
        lists = out.setdefault(k, ([], []))
        if a is not None:
            lists[0].append(float(a))
        if b is not None:
            lists[1].append(float(b))
    return out


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    values.sort()
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


HOT_SPOT_ROWS = 20000
"""The most recent tickets a hot-spot analysis reads: a city's few weeks of demands, bounded."""


async def hot_spot_tickets(
    session: AsyncSession, *, scope: Scope, since: datetime, until: datetime, limit: int = HOT_SPOT_ROWS
) -> list[RowMapping]:
    """Demands and consultations opened in [since, until) in ``scope``, newest first, at most ``limit``: their
    category, place, stored key words (the classifier's content words, as merging uses them) and reporter count.
    Confidential and clue tickets never count (a hot spot names villages)."""
    conn = await session.connection()
    stmt = (
        select(
            tickets.c.id,
            tickets.c.category,
            tickets.c.township,
            tickets.c.village,
            tickets.c.keywords,
            select(func.count())
            .select_from(reporters)
            .where(reporters.c.ticket_id == tickets.c.id)
            .correlate(tickets)
            .scalar_subquery()
            .label("reporter_count"),
        )
        .where(
            *_where_scope(tickets, scope),
            tickets.c.opened_at >= since,
            tickets.c.opened_at < until,
            tickets.c.kind.in_(["demand", "consult"]),
            tickets.c.confidential == false(),
        )
        .order_by(tickets.c.opened_at.desc())
        .limit(limit)
    )
    return list((await conn.execute(stmt)).mappings().all())


async def place_ranking(
    session: AsyncSession, *, scope: Scope, since: datetime, until: datetime, by: str = "township", limit: int = 50
) -> list[RowMapping]:
    """Townships (or villages, ``by="village"``) of ``scope`` ranked by their open overdue tickets, then by
    tickets rated 不满意, among tickets opened in [since, until); with what they received. One grouped query."""
    conn = await session.connection()
    key = tickets.c.township if by == "township" else tickets.c.township + literal(" / ") + tickets.c.village
    overdue = func.sum(case((and_(tickets.c.overdue == true(), tickets.c.status.in_(ACTIVE)), 1), else_=0))
    unsatisfied = func.sum(case((tickets.c.rating == "unsatisfied", 1), else_=0))
    stmt = (
        select(
            key.label("key"),
            func.count().label("received"),
            overdue.label("overdue"),
            unsatisfied.label("unsatisfied"),
        )
        .where(*_where_scope(tickets, scope), tickets.c.opened_at >= since, tickets.c.opened_at < until)
        .group_by(key)
        .having(or_(overdue > 0, unsatisfied > 0))
        .order_by(overdue.desc(), unsatisfied.desc(), func.count().desc(), key)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).mappings().all())


# ---------------------------------------------------------------- broadcasts


async def list_broadcasts(session: AsyncSession, *, limit: int) -> list[RowMapping]:
    conn = await session.connection()
    stmt = select(broadcasts).order_by(broadcasts.c.id.desc()).limit(limit)
    return list((await conn.execute(stmt)).mappings().all())


async def outbox_statuses(session: AsyncSession, *, outbox_ids: Sequence[int]) -> dict[int, RowMapping]:
    if not outbox_ids:
        return {}
    conn = await session.connection()
    stmt = select(outbox.c.id, outbox.c.chat_name, outbox.c.status, outbox.c.sent_at, outbox.c.not_before).where(
        outbox.c.id.in_(list(outbox_ids))
    )
    return {r["id"]: r for r in (await conn.execute(stmt)).mappings()}


# ---------------------------------------------------------------- exports


async def iter_export_tickets(
    session: AsyncSession, *, scope: Scope, since: datetime, until: datetime, batch: int = 2000
) -> AsyncIterator[tuple[RowMapping, list[str]]]:
    """Tickets opened in [since, until) with their reporters' names, in id order, in batches."""
    conn = await session.connection()
    last = 0
    conds = [*_where_scope(tickets, scope), tickets.c.opened_at >= since, tickets.c.opened_at < until]
    while True:
        rows = (
            (await conn.execute(select(tickets).where(*conds, tickets.c.id > last).order_by(tickets.c.id).limit(batch)))
            .mappings()
            .all()
        )
        if not rows:
            return
        ids = [r["id"] for r in rows]
        names: dict[int, list[str]] = {}
        for tid, name in (
            await conn.execute(
                select(reporters.c.ticket_id, reporters.c.name)
                .where(reporters.c.ticket_id.in_(ids))
                .order_by(reporters.c.at)
            )
        ).all():
            names.setdefault(tid, []).append(name)
        for r in rows:
            yield r, names.get(r["id"], [])
        last = ids[-1]


async def iter_export_flags(
    session: AsyncSession, *, scope: Scope, since: datetime, until: datetime, batch: int = 5000
) -> AsyncIterator[RowMapping]:
    conn = await session.connection()
    last = 0
    conds = [*_where_scope(flags, scope), flags.c.at >= since, flags.c.at < until]
    while True:
        stmt = (
            select(*_FLAG_COLS)
            .select_from(flags.join(messages, messages.c.id == flags.c.message_id))
            .where(*conds, flags.c.id > last)
            .order_by(flags.c.id)
            .limit(batch)
        )
        rows = (await conn.execute(stmt)).mappings().all()
        if not rows:
            return
        for r in rows:
            yield r
        last = rows[-1]["id"]
