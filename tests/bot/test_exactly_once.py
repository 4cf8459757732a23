"""Exactly once at the seams a crash cuts: a reply sent and not yet marked, a job claimed and not yet done.

A kill is played by an exception that no error boundary catches (as nothing runs after a kill -9); what
the database and the simulator's journal hold then is what a restarted process finds.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.adapters.sim import SimAdapter
from bot.clock import CHINA, SimulatedClock
from bot.messages import OutgoingMessage
from bot.scheduler import LEASE, Job, Scheduler, daily
from bot.services import Services
from storage.models import JobRun, Outbox
from storage.repos import outbox as outbox_repo
from tests.bot.conftest import T0


class Killed(BaseException):
    """The process died here."""


class DiesAfter:
    """A simulator that delivers the n-th reply and then the process dies."""

    def __init__(self, sim: SimAdapter, n: int) -> None:
        self.account = sim.account
        self.sim = sim
        self.n = n
        self.calls = 0

    async def send(self, message: OutgoingMessage) -> str | None:
        self.calls += 1
        platform_id = await self.sim.send(message)
        if self.calls == self.n:
            raise Killed
        return platform_id


def _sim(tmp_path: Path) -> SimAdapter:
    async def people() -> dict[str, list[dict[str, str]]]:
        return {}

    return SimAdapter(
        "demo",
        groups=["石桥村监督服务群"],
        people=people,
        media_root=tmp_path / "media",
        clock=SimulatedClock(T0),
        journal=tmp_path / "sim" / "demo.jsonl",
    )


@pytest.mark.parametrize("pace", [True, False], ids=["live", "replay"])
async def test_a_reply_sent_just_before_a_kill_is_shown_once_after_the_restart(
    services: Services, tmp_path: Path, pace: bool
) -> None:
    async with services.sessions() as session:
        for n in range(4):
            await outbox_repo.enqueue(
                session,
                values={
                    "dedupe_key": f"ack:{n}",
                    "account": "demo",
                    "chat_id": "石桥村监督服务群",
                    "chat_name": "石桥村监督服务群",
                    "is_group": True,
                    "text": f"回复{n}",
                    "image_path": None,
                    "mention_ids": [],
                    "mention_names": [],
                    "created_at": T0,
                    "not_before": T0,
                    "status": "pending",
                    "attempts": 0,
                },
            )
        await session.commit()
    dying = DiesAfter(_sim(tmp_path), 3)
    with pytest.raises(Killed):
        await services.outbox.send_due({"demo": dying}, pace=pace)  # type: ignore[dict-item]
    async with services.sessions() as session:
        status = {r.dedupe_key: r.status for r in (await session.exec(select(Outbox))).all()}
    # each reply was marked before the next went: only the one the kill cut off is unmarked
    assert status == {"ack:0": "sent", "ack:1": "sent", "ack:2": "pending", "ack:3": "pending"}

    restarted = _sim(tmp_path)  # a new process: the simulator knows what it showed from its journal
    await services.outbox.recover(["demo"])
    assert await services.outbox.send_due({"demo": restarted}, pace=pace) == 2
    async with services.sessions() as session:
        rows = (await session.exec(select(Outbox).order_by(col(Outbox.id)))).all()
    assert [r.status for r in rows] == ["sent"] * 4
    shown = [e.key for e in restarted.delivered if e.from_bot]
    assert shown == ["ack:0", "ack:1", "ack:2", "ack:3"]  # ack:2 sent twice, shown once


async def test_a_job_killed_mid_run_is_run_by_its_restarted_owner_or_after_its_lease(services: Services) -> None:
    clock = SimulatedClock(datetime(2026, 9, 7, 7, 0, tzinfo=CHINA))
    done: list[datetime] = []
    kill_next = [True]

    async def digest(when: datetime) -> None:
        if kill_next[0]:
            kill_next[0] = False
            raise Killed
        done.append(when)

    jobs = [Job("digest", daily(time(8, 0), "Asia/Shanghai"), digest)]

    def process(owner: str) -> Scheduler:
        return Scheduler(session_factory=services.sessions, clock=clock, jobs=jobs, owner=owner)

    assert await process("a").run_due() == 0  # first start: nothing owed
    clock.advance_to(datetime(2026, 9, 7, 8, 1, tzinfo=CHINA))
    with pytest.raises(Killed):
        await process("a").run_due()
    async with services.sessions() as session:
        run = (await session.exec(select(JobRun))).one()
    assert run.done_at is None and run.owner == "a"  # claimed, not done: the bug counted it as run

    assert await process("b").run_due() == 0  # another process leaves a live lease alone
    assert await process("a").run_due() == 1  # its owner, restarted, runs it at once
    assert await process("b").run_due() == 0
    assert done == [datetime(2026, 9, 7, 8, 0, tzinfo=CHINA)]

    # the next day's run is killed too, and its owner never comes back: another takes it once the lease ends
    kill_next[0] = True
    clock.advance_to(datetime(2026, 9, 8, 8, 1, tzinfo=CHINA))
    with pytest.raises(Killed):
        await process("a").run_due()
    assert await process("b").run_due() == 0
    clock.advance_to(clock.now() + LEASE + timedelta(seconds=1))
    assert await process("b").run_due() == 1
    assert await process("a").run_due() == 0
    assert done == [datetime(2026, 9, 7, 8, 0, tzinfo=CHINA), datetime(2026, 9, 8, 8, 0, tzinfo=CHINA)]
