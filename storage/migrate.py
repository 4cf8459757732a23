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

    The whole upgrade is one transaction on both backends, so a process killed mid-migration leaves the
    schema as it was. On SQLite that needs an explicit ``BEGIN``: Python's sqlite3 opens a transaction
    only before data changes, so without it every CREATE TABLE committed on its own, and a kill -9 during
    the first start left half a schema that no later start could migrate ("table … already exists").
    ``IMMEDIATE`` also makes concurrent SQLite migrators take turns, as the advisory lock does.
    """
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        elif connection.dialect.name == "sqlite":
            await connection.exec_driver_sql("BEGIN IMMEDIATE")

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
