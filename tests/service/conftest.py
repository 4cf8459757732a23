"""Fixtures of the service tests: empty databases for child processes to use."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_DSN, _pg_admin


@pytest.fixture(params=["sqlite", "postgres"])
async def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[[str], str]]:
    """Makes an empty database per name: a SQLite file, or a PostgreSQL database dropped afterwards."""
    made: list[str] = []

    def make(name: str) -> str:
        if request.param == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}"
        db = f"vw_crash_{uuid.uuid4().hex[:10]}"
        made.append(db)
        return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{db}".replace("postgresql://", "postgresql+asyncpg://", 1)

    async def create_all() -> None:
        for db in made:
            await _pg_admin(f'CREATE DATABASE "{db}"')

    make.create = create_all  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        for db in made:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
