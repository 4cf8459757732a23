"""`villagewatch replay` killed -9 mid-run and run again on the same database, as the README promises:
no message stored twice, no reply queued twice, every reply sent, and the two transcripts together hold
the uninterrupted one plus at most the reply each kill cut off. On SQLite the tickets are the same as an
uninterrupted run's, numbers included; on PostgreSQL sequences skip numbers after a crash, so there the
tickets are compared without their numbers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bot.clock import CHINA
from bot.tickets.report import tickets_as_json
from storage.engine import make_engine, make_session_factory
from tests.service.crash import GROUPS, TEXTS, VILLAGEWATCH, outcome

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 700
SWEEP = os.environ.get("VILLAGEWATCH_CRASH_SWEEP") == "1"
KILL_AT = (0, 0, 1, 1) if SWEEP else (1,)
"""Kill once this many messages are stored, one replay after another on the same database. A replay
commits runs of 500 messages: 1 kills with the first run committed and the second one open (its replies
being sent), 0 before anything is stored (migrating, the roster being synced, the first run open). The
sweep (the soak benchmark runs it) kills at more points."""


def _script(path: Path) -> Path:
    start = datetime(2026, 9, 7, 8, 0, tzinfo=CHINA)
    lines = []
    for n in range(MESSAGES):
        at = (start + timedelta(minutes=n)).isoformat()
        sender = ("高某林", "村民甲", "村民乙", "村民丙", "村民丁")[n % 5]
        body = TEXTS[n % len(TEXTS)] if n % 3 else f"{TEXTS[n % len(TEXTS)]}({n})"
        lines.append({"kind": "message", "at": at, "group": GROUPS[n % 3], "sender": sender, "text": body})
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
    return path


def _replay(script: Path, db: str, transcript: Path) -> subprocess.Popen[bytes]:
    config = str(ROOT / "config.example.toml")
    with transcript.with_suffix(".log").open("ab") as log:
        return subprocess.Popen(
            [str(VILLAGEWATCH), "replay", str(script), "--config", config, "--db", db, "--transcript", str(transcript)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )


async def _finish(proc: subprocess.Popen[bytes], transcript: Path) -> None:
    await asyncio.to_thread(proc.wait, timeout=300)
    assert proc.returncode == 0, transcript.with_suffix(".log").read_text(encoding="utf-8", errors="replace")


async def _tickets(db: str, *, numbers: bool) -> list[Any]:
    """What `villagewatch tickets --json` prints (the same function, without a process of its own)."""
    engine = make_engine(db)
    try:
        async with make_session_factory(engine)() as session:
            tickets = await tickets_as_json(session)
    finally:
        await engine.dispose()
    if numbers:
        return tickets
    return sorted(json.dumps({k: v for k, v in t.items() if k != "id"}, sort_keys=True) for t in tickets)


def _lines(path: Path) -> Counter[str]:
    return Counter(line for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


async def test_a_replay_killed_mid_run_and_run_again_matches_an_uninterrupted_one(
    tmp_path: Path, new_db: Callable[[str], str]
) -> None:
    script = _script(tmp_path / "city.jsonl")
    calm_url, crash_url = new_db("calm"), new_db("crash")
    await new_db.create()  # type: ignore[attr-defined]
    sqlite = calm_url.startswith("sqlite")
    # the uninterrupted run goes alongside the interrupted ones (two cores; nothing shared but the script)
    calm_run = asyncio.create_task(_finish(_replay(script, calm_url, tmp_path / "calm.out"), tmp_path / "calm.out"))

    loop = asyncio.get_running_loop()
    transcripts = []
    for number, threshold in enumerate(KILL_AT):
        transcripts.append(tmp_path / f"killed-{number}.out")
        crashed = _replay(script, crash_url, transcripts[-1])
        deadline = loop.time() + 120
        while crashed.poll() is None and await _stored(crash_url, tmp_path) < threshold:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        crashed.kill()
        crashed.wait()
        assert crashed.returncode == -9, "the replay finished before the kill: make the script longer"
        assert await _stored(crash_url, tmp_path) < MESSAGES

    transcripts.append(tmp_path / "last.out")
    await _finish(_replay(script, crash_url, transcripts[-1]), transcripts[-1])
    await calm_run
    calm = await outcome(calm_url, tmp_path)
    result = await outcome(crash_url, tmp_path)
    assert sum(result.stored.values()) == sum(calm.stored.values()) == MESSAGES
    assert set(result.stored.values()) == {1}
    assert result.tickets == calm.tickets
    assert sum(result.outbox.values()) == sum(calm.outbox.values()) and result.outbox_unsent == 0
    assert result.reply_kinds == calm.reply_kinds
    assert await _tickets(crash_url, numbers=sqlite) == await _tickets(calm_url, numbers=sqlite)
    both = sum((_lines(path) for path in transcripts if path.exists()), Counter[str]())
    expected = _lines(tmp_path / "calm.out")
    if sqlite:  # on PostgreSQL the ticket numbers in the replies differ after the crash point
        assert not expected - both, "a reply of the uninterrupted run is in neither transcript"
    doubled = sum(both.values()) - sum(expected.values())
    assert doubled <= len(KILL_AT), "more than the reply cut off by each kill is doubled"
    assert sum(both.values()) >= sum(expected.values())


async def _stored(db_url: str, data_dir: Path) -> int:
    """Messages stored so far (-1 while there is no table): one count, cheap enough to poll often."""
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM messages"))).scalar_one())
    except Exception:  # the database or its tables do not exist yet, or it is locked for a moment
        return -1
    finally:
        await engine.dispose()
