"""`villagewatch backup` / `restore` on SQLite: online, checked, and careful with a running database."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.backup import inspect, run_lock
from bot.cli import main
from storage.engine import make_engine
from storage.migrate import upgrade


def make_db(path: Path) -> str:
    url = f"sqlite+aiosqlite:///{path}"

    async def go() -> None:
        engine = make_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(go())
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO messages (account, platform_id, at, private, sender_platform_id, sender_name, role, kind, "
            "text, unassigned, county, township, village) VALUES ('a', 'p1', '2026-09-07 00:00:00', 0, 's', '高某林', "
            "'villager', 'text', '路灯坏了', 0, '', '', '')"
        )
    return url


def count(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])


def test_backup_while_a_writer_holds_a_transaction_then_restore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "live" / "villagewatch.db"
    db.parent.mkdir()
    url = make_db(db)
    writer = sqlite3.connect(db)
    writer.execute("BEGIN IMMEDIATE")  # the bot in the middle of a write: not in the snapshot, not blocking it
    writer.execute("UPDATE messages SET text = '未提交' WHERE platform_id = 'p1'")
    out = tmp_path / "backups" / "vw.db"
    try:
        assert main(["backup", str(out), "--db", url]) == 0
    finally:
        writer.rollback()
        writer.close()
    assert "已备份" in capsys.readouterr().out
    assert inspect(out).messages == 1
    assert not list(out.parent.glob(".*partial"))
    with sqlite3.connect(out) as connection:
        assert connection.execute("SELECT text FROM messages").fetchone()[0] == "路灯坏了"
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"

    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM messages")
    assert count(db) == 0
    assert main(["restore", str(out), "--db", url]) == 0
    assert count(db) == 1
    assert list(db.parent.glob("villagewatch.db.before-restore-*"))


def test_restore_refuses_a_running_database_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "villagewatch.db"
    url = make_db(db)
    backup = tmp_path / "b.db"
    assert main(["backup", str(backup), "--db", url]) == 0
    with run_lock(db):
        assert main(["restore", str(backup), "--db", url]) == 2
        assert "running" in capsys.readouterr().err
        assert main(["restore", str(backup), "--db", url, "--force"]) == 0
    assert main(["restore", str(backup), "--db", url]) == 0  # lock released: no longer running


@pytest.mark.parametrize("kind", ["garbage", "other-sqlite", "unknown-migration", "missing"])
def test_restore_accepts_only_villagewatch_databases_at_known_migrations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    db = tmp_path / "villagewatch.db"
    url = make_db(db)
    bad = tmp_path / "bad.db"
    if kind == "garbage":
        bad.write_bytes(b"<html>not a database</html>")
    elif kind == "other-sqlite":
        with sqlite3.connect(bad) as connection:
            connection.execute("CREATE TABLE notes (x)")
    elif kind == "unknown-migration":
        assert main(["backup", str(bad), "--db", url]) == 0
        with sqlite3.connect(bad) as connection:
            connection.execute("UPDATE alembic_version SET version_num = '9999'")
    assert main(["restore", str(bad), "--db", url]) == 2
    err = capsys.readouterr().err
    assert "bad.db" in err
    assert count(db) == 1  # the database is untouched


def test_postgresql_is_sent_to_pg_dump(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["backup", str(tmp_path / "x"), "--db", "postgresql://vw@127.0.0.1/vw"]) == 2
    assert "pg_dump" in capsys.readouterr().err
