"""Helpers shared by repositories: dialect-aware INSERT … ON CONFLICT DO NOTHING."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


def insert_ignore(session: AsyncSession, model: type[SQLModel], conflict: list[str]) -> Insert:
    """An INSERT that silently skips a row violating the unique key ``conflict``."""
    table: Any = model.__table__  # type: ignore[attr-defined]
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict)
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
