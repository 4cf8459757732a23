"""Alembic migrations run from code, so `villagewatch db upgrade` needs no alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


MIGRATION_LOCK = 0x76770001
"""PostgreSQL advisory-lock key held while migrating ("vw" + 1), so concurrent start-ups take turns."""


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` on the engine's database (idempotent).

    Many bot and dashboard processes may start at once against one PostgreSQL: each takes a
    transaction-level advisory lock first, so one migrates while the others wait and then find the
    schema at head, instead of racing to create the same tables.
    """
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})

        def _run(sync_connection: object) -> None:
            cfg = alembic_config(str(engine.url))
            cfg.attributes["connection"] = sync_connection
            command.upgrade(cfg, revision)

        await connection.run_sync(_run)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync_connection: MigrationContext.configure(sync_connection).get_current_revision()
        )
