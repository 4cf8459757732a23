"""Messages, their classifications and flags."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, bindparam, func, insert, tuple_
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Classification, Flag, Message
from storage.repos.common import as_text, dialect_module, dialect_name, insert_ignore, with_defaults


async def insert_message(session: AsyncSession, *, values: dict[str, Any]) -> int | None:
    """Store a message once: returns its new id, or None when (account, platform_id) is already stored."""
    return await insert_ignore(session, Message, ("account", "platform_id"), values)


async def store_chat(session: AsyncSession, rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> int:
    """Store many (message values, classification values without message_id) pairs in two statements,
    skipping messages already stored; returns how many were new.

    Both statements are the same text each time, so SQLAlchemy compiles them once; a multi-row VALUES
    list differs with every batch's length and cost more to compile than to run.
    """
    if not rows:
        return 0
    rows = [(with_defaults(Message, values), labels) for values, labels in rows]
    dialect = dialect_name(session)
    messages, classifications = _chat_statements(dialect, tuple(rows[0][0]), tuple(rows[0][1]))
    connection = await session.connection()
    known = None
    if not connection.dialect.supports_sane_multi_rowcount:  # asyncpg: executemany counts nothing
        known = await _count_stored(session, [(values["account"], values["platform_id"]) for values, _ in rows])
    stored = await connection.execute(messages, [values for values, _ in rows])
    params = [{**labels, "account": values["account"], "platform_id": values["platform_id"]} for values, labels in rows]
    await connection.execute(classifications, params)
    return len(rows) - known if known is not None else int(stored.rowcount)


async def _count_stored(session: AsyncSession, keys: list[tuple[str, str]]) -> int:
    statement = select(func.count()).where(tuple_(col(Message.account), col(Message.platform_id)).in_(keys))
    return int((await session.exec(statement)).one())


@lru_cache(maxsize=8)
def _chat_statements(
    dialect: str, message_columns: tuple[str, ...], classification_columns: tuple[str, ...]
) -> tuple[TextClause, TextClause]:
    module = dialect_module(dialect)
    messages: Any = Message.__table__  # type: ignore[attr-defined]
    classifications: Any = Classification.__table__  # type: ignore[attr-defined]
    insert_messages = (
        module.insert(messages)
        .values({name: bindparam(name) for name in message_columns})
        .on_conflict_do_nothing(index_elements=["account", "platform_id"])
    )
    # The classification finds its message by (account, platform_id). A message stored before keeps the
    # classification it has (ON CONFLICT); one kept raw, without any, gets this one.
    source = sa_select(
        messages.c.id, *(bindparam(name, type_=classifications.c[name].type) for name in classification_columns)
    ).where(messages.c.account == bindparam("account"), messages.c.platform_id == bindparam("platform_id"))
    insert_classifications = (
        module.insert(classifications)
        .from_select(["message_id", *classification_columns], source)
        .on_conflict_do_nothing(index_elements=["message_id"])
    )
    message_types = {name: messages.c[name].type for name in message_columns}
    classification_types = {name: classifications.c[name].type for name in classification_columns}
    classification_types.update(account=messages.c.account.type, platform_id=messages.c.platform_id.type)
    return (
        as_text(insert_messages, dialect, message_types),
        as_text(insert_classifications, dialect, classification_types),
    )


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


async def add_classifications(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Classification rows (their values) in one multi-row Core INSERT: adding ORM objects would make the
    next statement flush the unit of work, which costs more than the rest of handling a chat message."""
    if rows:
        await session.exec(insert(Classification), params=rows)


async def get_classification(session: AsyncSession, message_id: int) -> Classification | None:
    return await session.get(Classification, message_id)


async def add_flag(session: AsyncSession, flag: Flag) -> None:
    await session.exec(insert(Flag), params=[flag.model_dump(exclude={"id"})])


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
