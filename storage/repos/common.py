"""Helpers shared by repositories: dialect-aware INSERT … ON CONFLICT DO NOTHING."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


def insert_ignore(session: AsyncSession, model: type[SQLModel], conflict: list[str]) -> Insert:
    """An INSERT that silently skips a row violating the unique key ``conflict``."""
    table: Any = model.__table__  # type: ignore[attr-defined]
    if dialect_name(session) == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict)
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)


def dialect_name(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


@lru_cache(maxsize=32)
def insert_ignore_returning_id(dialect: str, model: type[SQLModel], conflict: tuple[str, ...]) -> Insert:
    """The same INSERT built once per dialect and executed with parameters: building a statement with
    literal values for every message costs more than executing it."""
    table: Any = model.__table__  # type: ignore[attr-defined]
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing(index_elements=list(conflict)).returning(table.c.id)
