"""Shared fixtures: a migrated database on SQLite and on the real PostgreSQL at 127.0.0.1:5432.

PostgreSQL is required, never skipped: `.ci/run` starts it when it is down. Each test run makes its
own database (dropped at the end) so parallel checkouts do not collide.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from storage.engine import make_engine
from storage.migrate import upgrade

PG_ADMIN_DSN = os.environ.get("VILLAGEWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _run_isolated(coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine on its own loop in a thread, so pytest-asyncio's loops are left alone."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_factory())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run."""
    name = f"vw_test_{uuid.uuid4().hex[:10]}"
    _run_isolated(lambda: _pg_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)

    async def _migrate() -> None:
        engine = make_engine(url)
        await upgrade(engine)
        await engine.dispose()

    _run_isolated(_migrate)
    yield url
    _run_isolated(lambda: _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_all(engine: AsyncEngine) -> None:
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Parametrises a test over both backends; the PostgreSQL one is emptied before each test."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    return url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url)
    if engine.dialect.name == "postgresql":
        await _truncate_all(engine)
    else:
        await upgrade(engine)
    yield engine
    await engine.dispose()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's headless Chromium driven by Playwright (never a browser Playwright downloads itself)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install -y chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
