"""Engines and sessions: SQLite (a file, WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import sqlite_driver

SessionFactory = async_sessionmaker[AsyncSession]


class StorageError(Exception):
    """The database cannot be used as configured."""


def normalise_url(url: str) -> str:
    """Accept the URLs people write (postgresql://, sqlite:///file) and pick the async driver."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.drivername != "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql" and parsed.drivername != "postgresql+asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend not in ("sqlite", "postgresql"):
        raise StorageError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, *, echo: bool = False, inline: bool = False, pre_ping: bool = True) -> AsyncEngine:
    """An engine for ``url``; ``inline`` runs SQLite on the event loop's thread (a replay or an import only,
    see ``sqlite_driver.InlineConnection``); PostgreSQL ignores it.

    ``pre_ping`` (PostgreSQL): each connection taken from the pool is pinged first, a round trip, so a
    connection the server dropped is replaced before use. The bot turns it off: every transaction it runs
    is tried again on failure (a message three times, the outbox and the scheduler on their next round),
    and the first failure on a dropped connection makes the pool replace all its older connections."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ":memory:"
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, echo=echo, async_creator=lambda: sqlite_driver.connect(database, inline=inline)
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=pre_ping)


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def single_statement_sessions(factory: SessionFactory) -> SessionFactory:
    """Sessions for work that is one atomic statement (an UPDATE … RETURNING), on the same pool: on
    PostgreSQL each statement commits by itself (AUTOCOMMIT), so no BEGIN and COMMIT round trips; on
    SQLite, whose statements cost no round trip, the factory itself."""
    engine = factory.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "postgresql":
        return factory
    return make_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"
