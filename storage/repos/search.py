"""Search across stored messages (and the tickets and flags they belong to) within a viewer's scope.

The index is one row per message in ``message_search`` (migration 0014): an FTS5 table on SQLite, a
``tsvector`` with a GIN index on PostgreSQL; its terms come from :mod:`storage.search`. Messages are indexed
as they are stored (``index_messages``, called by the message repository), old ones by the migration or
``villagewatch search reindex``.

A search returns a page of hits, newest first, and a cursor for the next page; it never counts the hits
(a common word has millions at city scale). Visibility is the dashboard's one scope rule
(``dashboard._where_scope`` on the message, the private-chat and confidential-clue exclusions of
``message_context``), checked on the messages themselves whatever the index says.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    Text,
    and_,
    bindparam,
    cast,
    column,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import search as terms_of
from storage.repos.common import dialect_name
from storage.repos.dashboard import Scope, _where_scope, flags, messages, ticket_messages, tickets
from storage.types import UTCDateTime

_PG_INDEX = table("message_search", column("message_id", Integer()), column("at", UTCDateTime()), column("terms"))
_FTS_INDEX = table("message_search", column("rowid", Integer()), column("terms"))

# A table that is not a model: FTS5 on SQLite, (message_id, at, terms tsvector) on PostgreSQL.
_PG_INSERT = text(
    "INSERT INTO message_search (message_id, at, terms) VALUES (:id, :at, CAST(:terms AS tsvector))"
    " ON CONFLICT (message_id) DO UPDATE SET terms = EXCLUDED.terms, at = EXCLUDED.at"
).bindparams(bindparam("id", type_=Integer()), bindparam("at", type_=UTCDateTime()), bindparam("terms", type_=String()))
_SQLITE_DELETE = text("DELETE FROM message_search WHERE rowid = :id").bindparams(bindparam("id", type_=Integer()))
_SQLITE_INSERT = text("INSERT INTO message_search (rowid, terms) VALUES (:id, :terms)").bindparams(
    bindparam("id", type_=Integer()), bindparam("terms", type_=String())
)


IndexRow = tuple[int, str, str, str, str, datetime]
"""What a message is indexed by: id, text, county, township, village, time."""


def index_rows(dialect: str, rows: Sequence[IndexRow]) -> list[dict[str, Any]]:
    """The index rows of ``rows`` for ``dialect``."""
    out = []
    for message_id, body, county, township, village, at in rows:
        places = terms_of.place_terms(county=county, township=township, village=village)
        if dialect == "postgresql":
            out.append({"id": message_id, "at": at, "terms": terms_of.pg_vector(body, places, at)})
        else:
            out.append({"id": message_id, "terms": terms_of.fts_document(body, places)})
    return out


async def index_messages(session: AsyncSession, rows: Sequence[IndexRow]) -> None:
    """Index (or index again) messages, in the caller's transaction."""
    if not rows:
        return
    dialect = dialect_name(session)
    params = index_rows(dialect, rows)
    connection = await session.connection()
    if dialect == "postgresql":
        await connection.execute(_PG_INSERT, params)
    else:
        await connection.execute(_SQLITE_DELETE, [{"id": p["id"]} for p in params])
        await connection.execute(_SQLITE_INSERT, params)


async def forget_messages(session: AsyncSession, message_ids: Sequence[int]) -> None:
    """Take messages out of the index (their text was blanked by retention)."""
    connection = await session.connection()
    pg = dialect_name(session) == "postgresql"
    for start in range(0, len(message_ids), 10_000):
        chunk = list(message_ids[start : start + 10_000])
        if pg:
            await connection.execute(_PG_INDEX.delete().where(_PG_INDEX.c.message_id.in_(chunk)))
        else:
            await connection.execute(_SQLITE_DELETE, [{"id": i} for i in chunk])


async def reindex(session: AsyncSession, *, after_id: int, limit: int) -> int:
    """Index the next ``limit`` messages after ``after_id`` (by id); returns the last id done, 0 at the end."""
    connection = await session.connection()
    stmt = (
        select(
            messages.c.id, messages.c.text, messages.c.county, messages.c.township, messages.c.village, messages.c.at
        )
        .where(messages.c.id > after_id)
        .order_by(messages.c.id)
        .limit(limit)
    )
    found = (await connection.execute(stmt)).all()
    rows = [(r[0], r[1] or "", r[2] or "", r[3] or "", r[4] or "", r[5]) for r in found]
    await index_messages(session, rows)
    return rows[-1][0] if rows else 0


@dataclass(frozen=True)
class SearchFilter:
    text: str
    kind: str = "messages"
    """messages (every message), tickets (messages of a ticket), flags (flagged messages)."""
    township: str | None = None
    village: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    """Exclusive."""


_HIT_COLS = [
    messages.c.id,
    messages.c.at,
    messages.c.group_name,
    messages.c.private,
    messages.c.sender_name,
    messages.c.role,
    messages.c.kind,
    messages.c.text,
    messages.c.county,
    messages.c.township,
    messages.c.village,
]


def _hidden_from(scope: Scope) -> list[ColumnElement[bool]]:
    """Without confidential access: no private chats, no message of a clue/confidential flag or ticket (the
    rule of ``dashboard.message_context``)."""
    if scope.confidential:
        return []
    hf, htm, ht = flags.alias("hf"), ticket_messages.alias("htm"), tickets.alias("ht")
    hidden_flag = exists().where(
        hf.c.message_id == messages.c.id,
        or_(hf.c.confidential, cast(hf.c.labels, Text).like('%"clue"%')),
    )
    hidden_ticket = exists().where(
        htm.c.message_id == messages.c.id,
        ht.c.id == htm.c.ticket_id,
        or_(ht.c.confidential, ht.c.kind == "clue"),
    )
    return [messages.c.private == false(), ~hidden_flag, ~hidden_ticket]


def _places(scope: Scope, filt: SearchFilter) -> dict[str, str]:
    """The place terms a search can require: the viewer's scope narrowed by the filter."""
    places = {"county": scope.county or "", "township": filt.township or scope.township or "", "village": ""}
    places["village"] = filt.village or scope.village or ""
    return terms_of.place_terms(**places)


SPLIT = 5000
"""A query the planner expects to have more hits than this is read week by week, newest first; one with
fewer has all its hits sorted at once (inside the index table)."""


def _conditions(scope: Scope, filt: SearchFilter, cursor: tuple[datetime, int] | None) -> list[ColumnElement[bool]]:
    """What every hit must satisfy, checked on the message itself: the scope rule, the filter, the cursor."""
    conds: list[ColumnElement[bool]] = [*_where_scope(messages, scope), *_hidden_from(scope)]
    if filt.township:
        conds.append(messages.c.township == filt.township)
    if filt.village:
        conds.append(messages.c.village == filt.village)
    if filt.since is not None:
        conds.append(messages.c.at >= filt.since)
    if filt.until is not None:
        conds.append(messages.c.at < filt.until)
    if cursor is not None:
        at = bindparam("c_at", cursor[0], type_=messages.c.at.type)
        conds.append(tuple_(messages.c.at, messages.c.id) < tuple_(at, bindparam("c_id", cursor[1], type_=Integer())))
    return conds


def _page_statement(
    scope: Scope, filt: SearchFilter, conds: list[ColumnElement[bool]], source: Any, join_on: Any, limit: int
) -> Any:
    cols: list[Any] = list(_HIT_COLS)
    conds = list(conds)
    from_: Any = messages.join(source, join_on) if source is not None else messages
    if filt.kind == "tickets":
        from_ = from_.join(ticket_messages, ticket_messages.c.message_id == messages.c.id).join(
            tickets, tickets.c.id == ticket_messages.c.ticket_id
        )
        cols += [tickets.c.id.label("ticket_id"), tickets.c.status.label("ticket_status")]
        conds += _where_scope(tickets, scope)
    elif filt.kind == "flags":
        from_ = from_.join(flags, flags.c.message_id == messages.c.id)
        cols += [flags.c.id.label("flag_id"), flags.c.labels.label("flag_labels")]
        conds += _where_scope(flags, scope)
    newest_first = (messages.c.at.desc(), messages.c.id.desc())
    return select(*cols).select_from(from_).where(and_(*conds)).order_by(*newest_first).limit(limit)


def _tsquery(text_value: str) -> Any:
    return cast(bindparam("tsq", text_value, type_=String()), TSQUERY)


async def _pg_estimate(connection: Any, tsquery: str) -> float:
    """How many messages the planner expects the query to match: its statistics of the index's terms
    answer in a millisecond, where counting or probing the matches costs as much as the matches."""
    literal = "'" + tsquery.replace("'", "''") + "'"  # text(): ``:`` in a place term would read as a parameter
    sql = f"EXPLAIN (FORMAT JSON) SELECT 1 FROM message_search WHERE terms @@ CAST({literal} AS tsquery)"
    plan = (await connection.exec_driver_sql(sql)).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"])


async def _pg_candidates(
    connection: Any, tsquery: str, filt: SearchFilter, after: tuple[datetime, int] | None, count: int
) -> list[tuple[int, datetime]]:
    """The newest ``count`` matches (id, time) older than ``after``: sorted inside the index table, which
    carries each message's time, so only the messages of one page are read from ``messages``."""
    conds: list[ColumnElement[bool]] = [_PG_INDEX.c.terms.op("@@")(_tsquery(tsquery))]
    if filt.since is not None:
        conds.append(_PG_INDEX.c.at >= filt.since)
    if filt.until is not None:
        conds.append(_PG_INDEX.c.at < filt.until)
    if after is not None:
        at = bindparam("a_at", after[0], type_=UTCDateTime())
        last = tuple_(at, bindparam("a_id", after[1], Integer()))
        conds.append(tuple_(_PG_INDEX.c.at, _PG_INDEX.c.message_id) < last)
    stmt = (
        select(_PG_INDEX.c.message_id, _PG_INDEX.c.at)
        .where(*conds)
        .order_by(_PG_INDEX.c.at.desc(), _PG_INDEX.c.message_id.desc())
        .limit(count)
    )
    return [(int(r[0]), r[1]) for r in (await connection.execute(stmt)).all()]


async def _pg_search(
    session: AsyncSession,
    *,
    scope: Scope,
    filt: SearchFilter,
    cursor: tuple[datetime, int] | None,
    limit: int,
    query: terms_of.Query,
    places: dict[str, str],
) -> list[RowMapping]:
    """Never one statement that the planner could turn into "scan the newest messages until enough match"
    (a rare name then reads every message) or "sort every hit" (a common word then sorts millions):

    1. a query expected to match fewer than SPLIT messages: its matches from the GIN index, sorted by time
       inside the index table, a batch at a time; only the batch's messages are read and checked;
    2. otherwise the same week by week from the newest (the ``@w:`` term narrows the index to one week)
       until the page is full.
    """
    connection = await session.connection()
    await connection.execute(text("SET LOCAL enable_seqscan = off"))
    try:
        return await _pg_pages(
            connection, scope=scope, filt=filt, cursor=cursor, limit=limit, query=query, places=places
        )
    finally:
        await connection.execute(text("RESET enable_seqscan"))


async def _pg_pages(
    connection: Any,
    *,
    scope: Scope,
    filt: SearchFilter,
    cursor: tuple[datetime, int] | None,
    limit: int,
    query: terms_of.Query,
    places: dict[str, str],
) -> list[RowMapping]:
    conds = _conditions(scope, filt, cursor)
    whole = terms_of.pg_query(query, places)
    if await _pg_estimate(connection, whole) < SPLIT:
        ranges: list[str] = [whole]
    else:
        bounds = [d for d in (cursor[0] if cursor else None, filt.until) if d is not None]
        # the messages' time index answers these at once (the index table has none on its time)
        newest = min(bounds) if bounds else (await connection.execute(select(func.max(messages.c.at)))).scalar_one()
        oldest = filt.since or (await connection.execute(select(func.min(messages.c.at)))).scalar_one()
        if newest is None or oldest is None:
            return []
        weeks = range(terms_of.week_of(newest), terms_of.week_of(oldest) - 1, -1)
        ranges = [terms_of.pg_query(query, places, week) for week in weeks]
    out: list[RowMapping] = []
    for tsquery in ranges:
        after = cursor
        while len(out) <= limit:
            want = limit + 1 - len(out)
            batch = max(2 * want, 20)  # a few more than needed: some may be hidden from this viewer
            candidates = await _pg_candidates(connection, tsquery, filt, after, batch)
            if not candidates:
                break
            ids = [message_id for message_id, _at in candidates]
            stmt = _page_statement(scope, filt, [messages.c.id.in_(ids), *conds], None, None, want)
            out += list((await connection.execute(stmt)).mappings().all())
            if len(candidates) < batch:
                break
            after = (candidates[-1][1], candidates[-1][0])
        if len(out) > limit:
            break
    return out[: limit + 1]


async def search(
    session: AsyncSession,
    *,
    scope: Scope,
    filt: SearchFilter,
    cursor: tuple[datetime, int] | None,
    limit: int,
) -> tuple[list[RowMapping], tuple[datetime, int] | None]:
    """A page of messages matching ``filt`` inside ``scope``, newest first, and the next page's cursor.

    Rows carry the message's columns and, for ``tickets``/``flags``, ``ticket_id``/``ticket_status`` or
    ``flag_id``/``flag_labels``. An empty query finds nothing.
    """
    query = terms_of.parse_query(filt.text)
    if query.empty:
        return [], None
    places = _places(scope, filt)
    if dialect_name(session) == "postgresql":
        rows = await _pg_search(session, scope=scope, filt=filt, cursor=cursor, limit=limit, query=query, places=places)
    else:
        match = literal_column("message_search").op("MATCH")(
            bindparam("ftsq", terms_of.fts_query(query, places), type_=String())
        )
        join_on = _FTS_INDEX.c.rowid == messages.c.id
        stmt = _page_statement(scope, filt, [match, *_conditions(scope, filt, cursor)], _FTS_INDEX, join_on, limit + 1)
        connection = await session.connection()
        rows = list((await connection.execute(stmt)).mappings().all())
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, (rows[-1]["at"], rows[-1]["id"])
    return rows, None


def highlight_words(text: str) -> list[str]:
    """What to mark in a hit: the query's runs as typed (normalised)."""
    return list(terms_of.parse_query(text).words)
