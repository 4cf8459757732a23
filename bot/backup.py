"""`villagewatch backup` / `restore` for SQLite, and the run lock that tells restore the bot is running.

Backups use SQLite's online backup API in one step: it copies a consistent snapshot while the bot keeps
writing (WAL readers never block writers), into a temporary file that is checked and then renamed, so a
half-written backup never has the final name. Restores go through the same API *into* the database, so
SQLite's own locking applies and a WAL file beside it stays consistent; the database being replaced is
first copied to ``<name>.before-restore-<time>``.

A backup is accepted for restore only when it is a sound SQLite file holding a villagewatch schema at a
migration this version knows (older ones are upgraded at the next start or by `villagewatch db upgrade`).
PostgreSQL is backed up with its own tools (pg_dump / pg_restore; see the README).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from bot.errors import VillagewatchError

REQUIRED_TABLES = frozenset({"alembic_version", "messages", "tickets", "ticket_events", "outbox", "groups"})


class BackupError(VillagewatchError):
    """A backup or restore cannot be done; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    revision: str
    messages: int
    tickets: int


def sqlite_path(db_url: str) -> Path:
    """The file of a SQLite URL; PostgreSQL and in-memory databases are refused with the way to go."""
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        raise BackupError(
            "the database is PostgreSQL: back it up with pg_dump -Fc and restore with pg_restore (see the README)"
        )
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise BackupError(f"backup and restore need a SQLite database file, not {db_url!r}")
    return Path(url.database).resolve()


def known_revisions() -> list[str]:
    """The migrations this version ships, oldest first."""
    from alembic.script import ScriptDirectory

    from storage.migrate import MIGRATIONS

    script = ScriptDirectory(str(MIGRATIONS))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def inspect(path: Path) -> DatabaseInfo:
    """Check that ``path`` is a sound villagewatch database at a known migration; raises ``BackupError``."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    with path.open("rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise BackupError(f"{path}: not a SQLite database")
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: cannot be opened: {exc}") from exc
    try:
        check = connection.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise BackupError(f"{path}: the database is damaged ({check[0] if check else 'no answer'})")
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = REQUIRED_TABLES - tables
        if missing:
            raise BackupError(f"{path}: not a villagewatch database (no table {', '.join(sorted(missing))})")
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = str(row[0]) if row else ""
        known = known_revisions()
        if revision not in known:
            raise BackupError(
                f"{path}: the database is at migration {revision or '(none)'}, which this version does not know "
                f"(it knows {', '.join(known)}); was it made by a newer villagewatch?"
            )
        messages = int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])
        tickets = int(connection.execute("SELECT count(*) FROM tickets").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path}: cannot be read as a database: {exc}") from exc
    finally:
        connection.close()
    return DatabaseInfo(revision=revision, messages=messages, tickets=tickets)


def _copy(source: Path, target: Path) -> None:
    """One-step online backup of ``source`` into ``target`` (created or overwritten in place)."""
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target, timeout=30)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def backup(db_path: Path, out: Path) -> DatabaseInfo:
    """Copy the live database ``db_path`` to the single file ``out`` (safe while the bot runs)."""
    info = inspect(db_path)
    out = out.resolve()
    if out == db_path:
        raise BackupError(f"{out}: the backup would overwrite the database itself")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        _copy(db_path, partial)
        connection = sqlite3.connect(partial)
        try:
            connection.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            connection.close()
        inspect(partial)
        os.replace(partial, out)
    except sqlite3.Error as exc:
        raise BackupError(f"backing up {db_path} to {out} failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return info


def restore(source: Path, db_path: Path, *, force: bool = False) -> tuple[DatabaseInfo, Path | None]:
    """Put the backup ``source`` in place of the database ``db_path``.

    Refuses while a `villagewatch run` holds the database (see ``run_lock``) unless ``force``. Returns the
    backup's figures and where the replaced database was kept (None when there was none).
    """
    info = inspect(source.resolve())
    if source.resolve() == db_path:
        raise BackupError(f"{source}: that is the database itself")
    if not force and is_running(db_path):
        raise BackupError(
            f"{db_path} is in use by a running villagewatch: stop it first (systemctl stop villagewatch), "
            "or pass --force to restore into the running database"
        )
    kept: Path | None = None
    db_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if db_path.exists() and db_path.stat().st_size > 0:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            kept = db_path.with_name(f"{db_path.name}.before-restore-{stamp}")
            _copy(db_path, kept)
        _copy(source.resolve(), db_path)
    except sqlite3.Error as exc:
        raise BackupError(f"restoring {source} into {db_path} failed: {exc}") from exc
    return info, kept


# --- the run lock -----------------------------------------------------------------------------------------


def _lock_path(db_path: Path) -> Path:
    return db_path.with_name(f"{db_path.name}.run-lock")


@contextlib.contextmanager
def run_lock(db_path: Path) -> Iterator[IO[str]]:
    """Held (shared) by `villagewatch run` for as long as it uses the SQLite file ``db_path``."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    handle = _lock_path(db_path).open("a", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_SH)
        yield handle
    finally:
        handle.close()


def is_running(db_path: Path) -> bool:
    """Whether a process holds the run lock of ``db_path``."""
    path = _lock_path(db_path)
    if not path.exists():
        return False
    with path.open("a", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False
