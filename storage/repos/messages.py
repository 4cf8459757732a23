"""Messages, their classifications and flags."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, String, TextualSelect, bindparam, cast, column, func, insert, table, text, true, update
from sqlalchemy.dialects import postgresql
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Classification, Flag, Message
from storage.repos.common import dialect_module, dialect_name, insert_ignore, with_defaults
from storage.repos.search import IndexRow, index_messages, index_rows
from storage.types import UTCDateTime


def _search_row(message_id: int, values: dict[str, Any]) -> IndexRow:
    return (
        message_id,
        values.get("text") or "",
        values.get("county") or "",
        values.get("township") or "",
        values.get("village") or "",
        values["at"],
    )


async def insert_message(session: AsyncSession, *, values: dict[str, Any]) -> int | None:
    """Store a message once (and index it for search): returns its new id, or None when (account,
    platform_id) is already stored."""
    message_id = await insert_ignore(session, Message, ("account", "platform_id"), values)
    if message_id is not None:
        await index_messages(session, [_search_row(message_id, values)])
    return message_id


async def insert_classified(
    session: AsyncSession, *, values: dict[str, Any], classification: dict[str, Any]
) -> int | None:
    """Store a message once with its classification (values without ``message_id``): its new id, or None
    when (account, platform_id) is already stored (and nothing is written).

    On PostgreSQL one round trip: the classification and the message's search entry are inserted from the
    message's INSERT … RETURNING in one data-modifying WITH, so the three are stored together or not at all
    (even in an autocommitted statement). SQLite has no such WITH, and its statements cost no round trip.
    """
    if dialect_name(session) != "postgresql":
        message_id = await insert_message(session, values=values)
        if message_id is not None:
            await add_classifications(session, [{**classification, "message_id": message_id}])
        return message_id
    values = with_defaults(Message, values)
    search = index_rows("postgresql", [_search_row(0, values)])[0]
    statement = _classified_text(tuple(values), tuple(classification))
    connection = await session.connection()
    params = {**values, **{f"c_{k}": v for k, v in classification.items()}, "s_at": search["at"]}
    row = (await connection.execute(statement, {**params, "s_terms": search["terms"]})).first()
    return None if row is None else int(row[0])


@lru_cache(maxsize=32)
def _classified_text(columns: tuple[str, ...], labels: tuple[str, ...]) -> TextualSelect:
    """The WITH … INSERT of ``insert_classified`` for PostgreSQL, rendered once per column set (as
    ``insert_ignore`` does: a dialect insert with ON CONFLICT is never cached by SQLAlchemy)."""
    messages: Any = Message.__table__  # type: ignore[attr-defined]
    classifications: Any = Classification.__table__  # type: ignore[attr-defined]
    stored = (
        postgresql.insert(messages)
        .values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing(index_elements=["account", "platform_id"])
        .returning(messages.c.id)
        .cte("stored")
    )
    chosen = [bindparam(f"c_{name}", type_=classifications.c[name].type) for name in labels]
    index = table("message_search", column("message_id", Integer()), column("at", UTCDateTime()), column("terms"))
    terms = cast(bindparam("s_terms", type_=String()), postgresql.TSVECTOR)
    indexed = (
        insert(index)
        .from_select(["message_id", "at", "terms"], select(stored.c.id, bindparam("s_at", type_=UTCDateTime()), terms))
        .cte("indexed")
    )
    statement = (
        insert(classifications)
        .from_select(["message_id", *labels], select(stored.c.id, *chosen))
        .returning(classifications.c.message_id)
        .add_cte(indexed)
    )
    sql = str(statement.compile(dialect=postgresql.dialect(paramstyle="named")))
    sql = sql.replace("::", r"\:\:")
    binds = [bindparam(name, type_=messages.c[name].type) for name in columns]
    binds += [bindparam(f"c_{name}", type_=classifications.c[name].type) for name in labels]
    binds += [bindparam("s_at", type_=UTCDateTime()), bindparam("s_terms", type_=String())]
    return text(sql).bindparams(*binds).columns(classifications.c.message_id)


async def store_chat(session: AsyncSession, rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> int:
    """Store many (message values, classification values without message_id) pairs, skipping messages
    already stored; returns how many were new.

    One INSERT … ON CONFLICT DO NOTHING RETURNING for all the messages, which SQLAlchemy sends as
    multi-row VALUES pages ("insertmanyvalues") built from one compiled row, then one for the
    classifications of those that were new.
    """
    if not rows:
        return 0
    table: Any = Message.__table__  # type: ignore[attr-defined]
    statement = (
        dialect_module(dialect_name(session))
        .insert(table)
        .on_conflict_do_nothing(index_elements=["account", "platform_id"])
        .returning(table.c.id, table.c.account, table.c.platform_id)
    )
    connection = await session.connection()
    result = await connection.execute(statement, [values for values, _ in rows])
    new = {(account, platform_id): message_id for message_id, account, platform_id in result}
    classifications = []
    indexed = []
    for values, labels in rows:
        message_id = new.pop((values["account"], values["platform_id"]), None)
        if message_id is not None:
            classifications.append({**labels, "message_id": message_id})
            indexed.append(_search_row(message_id, values))
    await add_classifications(session, classifications)
    await index_messages(session, indexed)
    return len(classifications)


async def count_kept_raw(session: AsyncSession) -> int:
    """How many messages are stored as they came because the pipeline failed on them (a partial index)."""
    statement = select(func.count()).select_from(Message).where(col(Message.kept_raw) == true())
    return int((await session.exec(statement)).one())


async def kept_raw_ids(session: AsyncSession, *, after_id: int = 0, limit: int = 200) -> list[int]:
    """Ids of messages kept raw, oldest first, after ``after_id``."""
    statement = (
        select(Message.id)
        .where(col(Message.kept_raw) == true(), col(Message.id) > after_id)
        .order_by(col(Message.id))
        .limit(limit)
    )
    return [i for i in (await session.exec(statement)).all() if i is not None]


async def claim_kept_raw(session: AsyncSession, message_id: int, *, values: dict[str, Any]) -> bool:
    """Fill in a kept-raw message's place, role and sender from ``values`` and clear its mark, if it is
    still kept raw: False when another run (a second staff member, the command line) took it first."""
    statement = (
        update(Message)
        .where(col(Message.id) == message_id, col(Message.kept_raw) == true())
        .values({**values, "kept_raw": False})
        .execution_options(synchronize_session=False)
    )
    connection = await session.connection()
    if (await connection.execute(statement)).rowcount != 1:
        return False
    message = await session.get(Message, message_id, populate_existing=True)
    if message is not None:  # indexed again with its place, which was unknown when it was kept raw
        await index_messages(session, [_search_row(message_id, message.model_dump())])
    return True


async def get_message(session: AsyncSession, message_id: int) -> Message | None:
    return await session.get(Message, message_id)


async def find_message(session: AsyncSession, *, account: str, platform_id: str) -> Message | None:
    statement = select(Message).where(Message.account == account, Message.platform_id == platform_id)
    return (await session.exec(statement)).first()


async def set_media_path(session: AsyncSession, message_id: int, path: str) -> None:
    message = await session.get(Message, message_id)
    if message is not None:
        message.media_path = path
        session.add(message)


async def set_text(session: AsyncSession, message_id: int, text: str) -> None:
    """Replace a message's text (a voice message's transcript), and index it again so search finds it."""
    statement = (
        update(Message)
        .where(col(Message.id) == message_id)
        .values(text=text)
        .execution_options(synchronize_session=False)
    )
    await session.exec(statement)
    message = await session.get(Message, message_id, populate_existing=True)
    if message is not None:
        await index_messages(session, [_search_row(message_id, message.model_dump())])


async def get_flag(session: AsyncSession, message_id: int) -> Flag | None:
    return (await session.exec(select(Flag).where(Flag.message_id == message_id))).first()


async def add_classifications(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Classification rows (their values) in one multi-row Core INSERT: adding ORM objects would make the
    next statement flush the unit of work, which costs more than the rest of handling a chat message."""
    if rows:
        await session.exec(insert(Classification), params=rows)


async def get_classification(session: AsyncSession, message_id: int) -> Classification | None:
    return await session.get(Classification, message_id)


async def add_flag(session: AsyncSession, flag: Flag) -> None:
    await session.exec(insert(Flag), params=[flag.model_dump(exclude={"id"})])


async def flag_of(session: AsyncSession, message_id: int) -> Flag | None:
    return (await session.exec(select(Flag).where(Flag.message_id == message_id))).first()


async def list_flags(session: AsyncSession) -> list[tuple[Flag, Message]]:
    statement = select(Flag, Message).join(Message, col(Message.id) == Flag.message_id).order_by(col(Flag.id))
    return [(flag, message) for flag, message in (await session.exec(statement)).all()]


async def messages_between(
    session: AsyncSession, *, start: datetime, end: datetime, limit: int = 100_000
) -> list[Message]:
    statement = (
        select(Message)
        .where(col(Message.at) >= start, col(Message.at) < end)
        .order_by(col(Message.at), col(Message.id))
        .limit(limit)
    )
    return list((await session.exec(statement)).all())


async def recent_in_group(
    session: AsyncSession, *, group_name: str, sender_platform_id: str, since: datetime
) -> list[Message]:
    statement = (
        select(Message)
        .where(
            Message.group_name == group_name,
            Message.sender_platform_id == sender_platform_id,
            col(Message.at) >= since,
        )
        .order_by(col(Message.at).desc())
    )
    return list((await session.exec(statement)).all())


async def messages_with_classification(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    county: str | None = None,
    township: str | None = None,
    village: str | None = None,
    limit: int = 20_000,
) -> list[tuple[Message, Classification | None]]:
    """Stored messages in a period and scope with their current classification (for the rule bench)."""
    statement = (
        select(Message, Classification)
        .join(Classification, col(Classification.message_id) == Message.id, isouter=True)
        .where(col(Message.at) >= start, col(Message.at) < end)
    )
    if county:
        statement = statement.where(Message.county == county)
    if township:
        statement = statement.where(Message.township == township)
    if village:
        statement = statement.where(Message.village == village)
    statement = statement.order_by(col(Message.at).desc()).limit(limit)
    return [(m, c) for m, c in (await session.exec(statement)).all()]
