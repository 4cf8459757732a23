"""aiosqlite connections whose cursors cost one trip to the database thread per statement, not four.

SQLAlchemy's aiosqlite adapter creates a cursor, executes, fetches and closes it, and each of those is
a separate trip to aiosqlite's worker thread. On a two-core county server a trip costs about 100 µs, so
every statement cost about 400 µs before SQLite did any work, which capped the pipeline near 2,000
statements a second. Here ``cursor()`` costs nothing and ``execute`` runs the statement, fetches its rows
and closes the sqlite3 cursor in one trip; the rows are then served from memory, which is what
SQLAlchemy's adapter does with them anyway.

This leans on two private members of ``aiosqlite.Connection`` (``_execute`` and ``_conn``), present from
0.17 to 0.22; pyproject.toml pins the range and the storage suite runs through this driver.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite


class _Cursor:
    """Enough of aiosqlite's cursor for SQLAlchemy: execute, executemany, fetchall, close."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> _Cursor:
        connection = self._connection

        def run() -> tuple[Any, list[Any], int, int | None]:
            cursor = connection._conn.execute(sql, parameters)
            try:
                rows = cursor.fetchall() if cursor.description else []
                return cursor.description, rows, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        self.description, self._rows, self.rowcount, self.lastrowid = await connection._execute(run)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any] | dict[str, Any]]) -> _Cursor:
        connection = self._connection

        def run() -> tuple[int, int | None]:
            cursor = connection._conn.executemany(sql, parameters)
            try:
                return cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        self.description, self._rows = None, []
        self.rowcount, self.lastrowid = await connection._execute(run)
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []


class OneTripConnection(aiosqlite.Connection):
    async def cursor(self) -> Any:  # type: ignore[override]
        return _Cursor(self)


class InlineConnection(OneTripConnection):
    """Statements run on the caller's thread, no trip at all: for a replay or an import, whose event loop
    waits on nothing but the database (no dashboard, no adapter). A trip costs more than most of the
    pipeline's statements; run inline, the loop is blocked while SQLite works, which is harmless there
    and would not be in the live bot (it keeps ``OneTripConnection``). aiosqlite's worker thread is never
    started."""

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Any:
        return self._connect().__await__()

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def connect(database: str, *, inline: bool = False) -> OneTripConnection:
    """What ``aiosqlite.connect`` does, with the one-trip cursor (or none, ``inline``); SQLAlchemy awaits it."""
    kind = InlineConnection if inline else OneTripConnection
    connection = kind(lambda: sqlite3.connect(database), iter_chunk_size=64)
    # As SQLAlchemy does for plain aiosqlite: a forgotten connection must not keep the process alive.
    connection._thread.daemon = True
    return connection
