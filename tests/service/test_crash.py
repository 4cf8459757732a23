"""Exactly once, proven on the real service: kill -9 `villagewatch run` mid-stream, start it again, and
compare with a run that was never interrupted (SQLite and PostgreSQL).

- every message the simulator acknowledged is stored, before any restart, and every message once;
- every reply queued is sent, and the simulator shows each outbox dedupe key exactly once;
- a scheduled job claimed just before a kill runs after the restart, and every due run is done once.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from storage.engine import make_engine, make_session_factory
from storage.repos import state
from tests.service.crash import (
    Outcome,
    Poster,
    Service,
    at_seconds_from_now,
    free_port,
    outcome,
    script,
    settled,
    write_config,
)

CHINA = ZoneInfo("Asia/Shanghai")
MESSAGES = 45
SWEEP = os.environ.get("VILLAGEWATCH_CRASH_SWEEP") == "1"
KILL_AFTER = (2, 6, 11, 17, 23, 29, 35, 41) if SWEEP else (6, 29)
"""Kill -9 once this many messages have been acknowledged (requests of the other chats in flight): in
`make test` one early (the first tickets just opened) and one late; the sweep (the soak benchmark runs it)
kills at many points."""


async def _service(tmp_path: Path, name: str, db_url: str) -> tuple[Service, Path, Path]:
    data_dir = tmp_path / name
    data_dir.mkdir()
    config = tmp_path / f"{name}.toml"
    port = free_port()
    write_config(config, data_dir=data_dir, db_url=db_url, port=port)
    return Service(config, port, tmp_path / f"{name}.log"), data_dir, config


async def _uninterrupted(tmp_path: Path, db_url: str) -> Outcome:
    service, data_dir, _ = await _service(tmp_path, "calm", db_url)
    await service.start()
    try:
        await Poster(service, script(MESSAGES)).run()
        return await settled(db_url, data_dir)
    finally:
        service.stop()


async def test_kill_9_mid_stream_loses_nothing_and_doubles_nothing(
    tmp_path: Path, new_db: Callable[[str], str]
) -> None:
    calm_url, crash_url = new_db("calm"), new_db("crash")
    await new_db.create()  # type: ignore[attr-defined]
    # the uninterrupted run goes alongside the interrupted one (its own database, folder and port)
    calm_run = asyncio.create_task(_uninterrupted(tmp_path, calm_url))
    everything = {m[0] for chat in script(MESSAGES).values() for m in chat}

    service, data_dir, _ = await _service(tmp_path, "crash", crash_url)
    poster = Poster(service, script(MESSAGES))
    await service.start()
    try:
        for threshold in KILL_AFTER:
            posting = asyncio.create_task(poster.run())
            while len(poster.accepted) < threshold and not posting.done():
                await asyncio.sleep(0.005)
            service.kill()
            await posting
            # acknowledged means stored: nothing the simulator answered 200 for is missing after a kill -9
            after_kill = await outcome(crash_url, data_dir)
            missing = set(poster.accepted) - set(after_kill.stored)
            assert not missing, f"acknowledged but lost after kill -9 at {threshold}: {sorted(missing)}"
            await service.start()
        await poster.run()
        # one more kill with every message in and replies perhaps still going out
        service.kill()
        await service.start()
        crashed = await settled(crash_url, data_dir)
    finally:
        service.stop()
        calm = await calm_run
    assert set(calm.stored) == everything and calm.outbox_unsent == 0
    assert service.starts == len(KILL_AFTER) + 2
    assert sum(poster.attempts.values()) > MESSAGES, "no kill landed on a request in flight"

    # every accepted message stored exactly once
    assert crashed.accepted == everything == set(poster.accepted)
    assert crashed.stored == Counter(everything)
    # every reply queued once and sent exactly once: by outbox key and by what the simulator showed
    assert crashed.outbox_unsent == 0
    assert set(crashed.outbox.values()) == {1}
    assert crashed.delivered == crashed.outbox
    # the same conversation as the uninterrupted run
    assert crashed.tickets == calm.tickets
    assert crashed.reply_kinds == calm.reply_kinds
    assert sum(crashed.delivered.values()) == sum(calm.delivered.values())


async def test_a_job_claimed_before_a_kill_runs_after_the_restart(tmp_path: Path, new_db: Callable[[str], str]) -> None:
    db_url = new_db("jobs")
    await new_db.create()  # type: ignore[attr-defined]
    service, data_dir, config = await _service(tmp_path, "jobs", db_url)
    await service.start()
    try:
        await Poster(service, script(12)).run()  # tickets and flags for the digest to report
        await settled(db_url, data_dir)
    finally:
        service.kill()

    # The jobs fall due a moment from now. The digest's run is left claimed and unfinished, as a process
    # killed after committing its claim (and before its effects) leaves it: the bug lost that day's digests.
    check = at_seconds_from_now(2, CHINA)
    digest = at_seconds_from_now(2, CHINA)
    write_config(config, data_dir=data_dir, db_url=db_url, port=service.port, check=check, digest=digest)
    today = datetime.now(CHINA).date()
    digest_key = datetime.combine(today, digest, tzinfo=CHINA).isoformat()
    check_key = datetime.combine(today, check, tzinfo=CHINA).isoformat()
    engine = make_engine(db_url)
    try:
        async with make_session_factory(engine)() as session:
            claim = await state.claim_job_run(
                session,
                job="tickets.daily_digest",
                run_key=digest_key,
                at=datetime.now(CHINA),
                owner="demo",
                lease=timedelta(days=365),
            )
            await session.commit()
        assert claim is state.Claim.TAKEN
    finally:
        await engine.dispose()

    await service.start()
    try:
        # kill -9 again as soon as the daily check has claimed its run, whatever it has done by then
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while ("tickets.daily_check", check_key) not in (await outcome(db_url, data_dir)).job_runs:
            assert loop.time() < deadline, service.tail()
            await asyncio.sleep(0.005)
        service.kill()
        await service.start()
        result = await settled(db_url, data_dir)
    finally:
        service.stop()
    assert result.jobs_unfinished == 0
    assert result.job_runs[("tickets.daily_digest", digest_key)] == 1
    assert result.job_runs[("tickets.daily_check", check_key)] == 1
    digests = [key for key in result.outbox if key.startswith("digest:") and key.endswith(today.isoformat())]
    assert digests, "the digest claimed before the kill never ran"
    assert result.outbox_unsent == 0 and result.delivered == result.outbox
