"""Helpers shared by repositories: a dialect-aware INSERT … ON CONFLICT DO NOTHING that SQLAlchemy can cache."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any

from sqlalchemy import TextualSelect, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


def dialect_name(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


async def insert_ignore(
    session: AsyncSession, model: type[SQLModel], conflict: tuple[str, ...], values: dict[str, Any]
) -> int | None:
    """Insert one row unless it violates the unique key ``conflict``: the new id, or None when skipped.

    This is how a redelivered message, a second reporter or a job run twice becomes a no-op.
    """
    values = with_defaults(model, values)
    statement = _insert_ignore_text(dialect_name(session), model, conflict, tuple(values))
    connection = await session.connection()
    row = (await connection.execute(statement, values)).first()
    return None if row is None else int(row[0])


def with_defaults(model: type[SQLModel], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` plus the Python-side defaults of the columns it leaves out: the insert rendered as text
    no longer fills them itself."""
    defaults = _column_defaults(model)
    missing = [name for name in defaults if name not in values]
    if not missing:
        return values
    return {**values, **{name: defaults[name](None) for name in missing}}


def _constant(value: Any, _context: Any) -> Any:
    return value


@lru_cache(maxsize=64)
def _column_defaults(model: type[SQLModel]) -> dict[str, Callable[[Any], Any]]:
    """Each column's Python-side default as a callable (SQLAlchemy wraps callables to take a context)."""
    table: Any = model.__table__  # type: ignore[attr-defined]
    defaults: dict[str, Callable[[Any], Any]] = {}
    for column in table.columns:
        default = column.default
        if default is None:
            continue
        if default.is_scalar:
            defaults[column.name] = partial(_constant, default.arg)
        elif default.is_callable:
            defaults[column.name] = default.arg
    return defaults


@lru_cache(maxsize=128)
def _insert_ignore_text(
    dialect: str, model: type[SQLModel], conflict: tuple[str, ...], columns: tuple[str, ...]
) -> TextualSelect:
    """The insert rendered once per dialect and column set as typed text, which SQLAlchemy caches.

    SQLAlchemy 2.0 never caches the compiled form of a dialect ``insert().on_conflict_do_nothing()``
    (``inherit_cache = False``): built per call it was compiled again for every message, a third of the
    cost of storing one. Typed parameters keep the columns' bind processing (time zones, JSON).
    """
    table: Any = model.__table__  # type: ignore[attr-defined]
    module = dialect_module(dialect)
    statement = (
        module.insert(table)
        .values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing(index_elements=list(conflict))
        .returning(table.c.id)
    )
    sql = str(statement.compile(dialect=module.dialect(paramstyle="named")))
    sql = sql.replace("::", r"\:\:")  # PostgreSQL casts (:raw::JSON) are not parameters to text()
    binds = (bindparam(name, type_=table.c[name].type) for name in columns)
    return text(sql).bindparams(*binds).columns(table.c.id)


def dialect_module(dialect: str) -> Any:
    """The SQLAlchemy dialect package whose ``insert`` knows ON CONFLICT."""
    return postgresql if dialect == "postgresql" else sqlite
