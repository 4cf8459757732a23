"""`villagewatch import` killed -9 at several points and run again on the same database ends as an
uninterrupted import of the same file (SQLite and PostgreSQL): every message stored once, classified and
flagged the same, the roster lines applied, no tickets and nothing queued to send (history is never
answered).

The import commits runs of messages (``BatchRunner``), so the kill points are chosen by what the database
holds: before anything is stored (migrated, the roster being synced, the first run open), and between two
committed runs (one run committed, the next one open). ``VILLAGEWATCH_CRASH_SWEEP=1`` (the soak benchmark
sets it) kills at many more points.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.clock import CHINA
from storage.engine import make_engine
from tests.service.crash import GROUPS, VILLAGEWATCH

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 700
SWEEP = os.environ.get("VILLAGEWATCH_CRASH_SWEEP") == "1"
KILL_AT = (0, 0, 1, 1, 201, 201) if SWEEP else (0, 1)
"""Kill once the database holds at least this many messages (0: once its tables exist; runs commit at
the member lines and every 500 messages, so 1 kills with the first run committed and the next open)."""
TEXTS = (
    "村支书把低保名额给了自己亲戚",
    "大家早上好",
    "村东头自来水停了三天了,请尽快处理",
    "扶贫款被村会计挪用了",
    "今天天气不错",
    "村干部收了好处费才给批宅基地",
    "收到",
)
NEWCOMERS = {200: "赵会计", 450: "钱主任"}
"""Before these message numbers a member line adds a cadre (the import flushes its run there)."""


def _script(path: Path) -> Path:
    start = datetime(2025, 3, 1, 8, 0, tzinfo=CHINA)
    lines: list[dict[str, Any]] = []
    for n in range(MESSAGES):
        if n in NEWCOMERS:
            lines.append(
                {
                    "kind": "member",
                    "group": GROUPS[0],
                    "name": NEWCOMERS[n],
                    "role": "cadre",
                    "village": "石桥村",
                    "township": "城关镇",
                    "county": "舒城县",
                }
            )
        sender = NEWCOMERS[200] if n > 200 and n % 11 == 0 else ("高某林", "村民甲", "村民乙", "村民丙")[n % 4]
        at = (start + timedelta(minutes=n)).isoformat()
        body = f"{TEXTS[n % len(TEXTS)]}({n})"
        lines.append({"kind": "message", "at": at, "group": GROUPS[n % 3], "sender": sender, "text": body})
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
    return path


def _import(script: Path, db: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(VILLAGEWATCH), "import", str(script), "--config", str(ROOT / "config.example.toml"), "--db", db],
            stdout=subprocess.PIPE,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )


async def _finish(proc: subprocess.Popen[bytes], log: Path) -> tuple[int, int]:
    stdout, _ = await asyncio.to_thread(proc.communicate, timeout=300)
    assert proc.returncode == 0, log.read_text(encoding="utf-8", errors="replace")
    numbers = re.findall(r"\d+", stdout.decode())
    return int(numbers[0]), int(numbers[1])


async def _state(db_url: str) -> dict[str, Any]:
    """Everything an import leaves, keyed by what does not depend on row ids."""
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            messages = [
                tuple(row)
                for row in await conn.execute(
                    text(
                        "SELECT m.platform_id, m.group_name, m.sender_name, m.role, m.text, m.kept_raw, "
                        "c.labels, c.category, c.severity FROM messages m "
                        "LEFT JOIN classifications c ON c.message_id = m.id ORDER BY m.platform_id"
                    )
                )
            ]
            flags = sorted(
                tuple(str(v) for v in row)
                for row in await conn.execute(
                    text("SELECT m.platform_id, f.severity FROM flags f JOIN messages m ON m.id = f.message_id")
                )
            )
            members = sorted(
                tuple(row) for row in await conn.execute(text("SELECT name, group_name, role FROM members"))
            )
            tickets = (await conn.execute(text("SELECT count(*) FROM tickets"))).scalar_one()
            outbox = (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
    finally:
        await engine.dispose()
    return {"messages": messages, "flags": flags, "members": members, "tickets": tickets, "outbox": outbox}


async def _stored(db_url: str) -> int | None:
    """Messages stored so far; None while the tables do not exist yet."""
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM messages"))).scalar_one())
    except Exception:  # no database, no table yet, or locked for a moment
        return None
    finally:
        await engine.dispose()


async def test_an_import_killed_at_several_points_and_run_again_matches_an_uninterrupted_one(
    tmp_path: Path, new_db: Callable[[str], str]
) -> None:
    script = _script(tmp_path / "history.jsonl")
    calm_url, crash_url = new_db("calm"), new_db("crash")
    await new_db.create()  # type: ignore[attr-defined]
    log = tmp_path / "import.log"
    calm_run = asyncio.create_task(_finish(_import(script, calm_url, log), log))  # alongside the crashes

    loop = asyncio.get_running_loop()
    for threshold in KILL_AT:
        proc = _import(script, crash_url, log)
        deadline = loop.time() + 120
        while proc.poll() is None:
            stored = await _stored(crash_url)
            if stored is not None and stored >= threshold:
                break
            assert loop.time() < deadline, log.read_text(encoding="utf-8", errors="replace")
            await asyncio.sleep(0.01)
        proc.kill()
        proc.communicate()
        assert proc.returncode == -9, f"the import finished before the kill at {threshold}: make the file longer"
        assert (await _stored(crash_url) or 0) < MESSAGES
    stored_last, skipped_last = await _finish(_import(script, crash_url, log), log)
    calm_stored, calm_skipped = await calm_run

    assert (calm_stored, calm_skipped) == (MESSAGES, 0)
    before_last = MESSAGES - stored_last
    assert skipped_last == before_last, "the re-run skips exactly the messages stored before the kills"
    calm, crashed = await _state(calm_url), await _state(crash_url)
    assert len(calm["messages"]) == MESSAGES and not any(m[5] for m in calm["messages"])
    assert calm["flags"] and calm["tickets"] == 0 and calm["outbox"] == 0
    assert crashed["messages"] == calm["messages"], "a message lost, doubled or classified differently"
    assert crashed["flags"] == calm["flags"]
    assert crashed["members"] == calm["members"]
    assert (crashed["tickets"], crashed["outbox"]) == (0, 0)


async def test_a_migration_that_dies_midway_leaves_the_schema_as_it_was(
    new_db: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a kill -9 during the first start's migrations amounts to, made deterministic: the chain stops
    after 0004 with an error. Nothing of it may stay (on SQLite each CREATE TABLE used to commit on its
    own), so the next start migrates from scratch instead of failing on "table … already exists"."""
    from alembic import command

    import storage.migrate
    from storage.migrate import current_revision, upgrade

    db_url = new_db("half")
    await new_db.create()  # type: ignore[attr-defined]
    real = command.upgrade

    def dies_after_0004(cfg: Any, revision: str) -> None:
        real(cfg, "0004")
        raise RuntimeError("killed")

    monkeypatch.setattr(storage.migrate.command, "upgrade", dies_after_0004)
    engine = make_engine(db_url)
    try:
        with pytest.raises(RuntimeError, match="killed"):
            await upgrade(engine)
        assert await current_revision(engine) is None
        assert await _stored(db_url) is None, "tables of the failed migration were left behind"
        monkeypatch.setattr(storage.migrate.command, "upgrade", real)
        await upgrade(engine)
        assert await _stored(db_url) == 0
    finally:
        await engine.dispose()
