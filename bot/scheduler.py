"""Scheduled jobs on the bot's clock: live on the wall clock, in replay on the script's clock.

APScheduler's triggers compute when a job is due; the loop that runs them is ours so that a replay `tick`
can run every job due up to a moment, in order, on a simulated clock. Each run is claimed in the job_runs
table first, so with several bot processes on one PostgreSQL (a city) a job runs once, and a job run twice
acts once.

A claim is a lease, not a verdict: it is marked done (and the job's "last run" moved past it) only after
the job has returned, so a process killed mid-run leaves the run to be taken over, by itself restarting
(the owner is the process's account list: one process per account) or by another process once the lease
has expired. Jobs are idempotent (their replies have dedupe keys, their ticket changes check state), so a
run redone after a crash acts once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.clock import Clock
from storage.engine import SessionFactory
from storage.repos import state

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
"""How long a claimed run is held without renewal; a run still going renews it every RENEW_SECONDS."""
RENEW_SECONDS = 60.0

JobFunction = Callable[[datetime], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    trigger: CronTrigger
    run: JobFunction
    """Called with the moment the run was scheduled for (not the moment it actually runs)."""


def daily(at: time, tz: str) -> CronTrigger:
    return CronTrigger(hour=at.hour, minute=at.minute, second=at.second, timezone=tz)


class Scheduler:
    def __init__(
        self, *, session_factory: SessionFactory, clock: Clock, jobs: list[Job], owner: str = "villagewatch"
    ) -> None:
        self._sessions = session_factory
        self._owner = owner
        self._clock = clock
        self._jobs = list(jobs)
        self._last: dict[str, datetime] = {}
        self._next_fire: dict[str, tuple[datetime, datetime]] = {}
        """Per job: (last run, the next fire time after it), so an idle check costs no trigger arithmetic."""
        """Last fire time per job, cached: the database is read once per job, not before every message.
        Other processes may run a job meanwhile; the job_runs claim still makes each run act once."""

    def add(self, job: Job) -> None:
        self._jobs.append(job)

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs)

    async def _last_run(self, job: Job) -> datetime | None:
        if job.name in self._last:
            return self._last[job.name]
        async with self._sessions() as session:
            value = await state.get_setting(session, f"job:{job.name}:last")
        if value is None:
            return None
        self._last[job.name] = datetime.fromisoformat(value)
        return self._last[job.name]

    async def _due_times(self, job: Job, until: datetime) -> list[datetime]:
        last = await self._last_run(job)
        if last is None:
            # First start: nothing is owed from before the bot existed; the next fire time is the first.
            last = self._clock.now() - timedelta(microseconds=1)
            async with self._sessions() as session:
                await state.set_setting(session, f"job:{job.name}:last", last.isoformat())
                await session.commit()
            self._last[job.name] = last
        due: list[datetime] = []
        known = self._next_fire.get(job.name)
        if known is not None and known[0] == last and known[1] > until:
            return due  # the common case, checked before every replayed message: nothing due yet
        previous = last
        while True:
            fire = job.trigger.get_next_fire_time(previous, previous + timedelta(microseconds=1))
            if fire is None or fire > until:
                if fire is not None and not due:
                    self._next_fire[job.name] = (last, fire)
                return due
            if fire > last:
                due.append(fire)
            previous = fire
            if len(due) > 400:  # a bot off for a year must not replay every missed day
                return due[-400:]

    async def next_due(self, until: datetime) -> datetime | None:
        """The earliest run not yet done at or before ``until`` (replay steps its clock to each one)."""
        earliest: datetime | None = None
        for job in self._jobs:
            due = await self._due_times(job, until)
            if due and (earliest is None or due[0] < earliest):
                earliest = due[0]
        return earliest

    async def run_due(self, until: datetime | None = None) -> int:
        """Run every job due up to ``until`` (default: now), in time order; returns how many runs acted."""
        until = until or self._clock.now()
        pending: list[tuple[datetime, int, Job]] = []
        for index, job in enumerate(self._jobs):
            for fire in await self._due_times(job, until):
                pending.append((fire, index, job))
        pending.sort(key=lambda item: (item[0], item[1]))
        acted = 0
        held_elsewhere: set[str] = set()
        for fire, _, job in pending:
            if job.name in held_elsewhere:
                continue  # an earlier run of it is another process's: "last" must not move past it
            run_key = fire.isoformat()
            async with self._sessions() as session:
                claim = await state.claim_job_run(
                    session, job=job.name, run_key=run_key, at=self._clock.now(), owner=self._owner, lease=LEASE
                )
                if claim is state.Claim.DONE:
                    await state.set_setting(session, f"job:{job.name}:last", run_key)
                await session.commit()
            if claim is state.Claim.BUSY:
                held_elsewhere.add(job.name)
                continue
            if claim is state.Claim.TAKEN and await self._run_leased(job, fire):
                acted += 1
            self._last[job.name] = fire
        return acted

    async def _run_leased(self, job: Job, fire: datetime) -> bool:
        """Run a claimed job, renewing its lease meanwhile; then mark the run done and move "last" past it,
        in one transaction. A job that raises is logged and counts as done (it is not retried)."""
        run_key = fire.isoformat()
        renewer = asyncio.create_task(self._renew(job.name, run_key), name=f"lease {job.name}")
        ok = False
        try:
            await job.run(fire)
            ok = True
        except Exception:
            log.exception("scheduled job %s for %s failed", job.name, run_key)
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        async with self._sessions() as session:
            await state.finish_job_run(session, job=job.name, run_key=run_key, at=self._clock.now())
            await state.set_setting(session, f"job:{job.name}:last", run_key)
            await session.commit()
        return ok

    async def _renew(self, job: str, run_key: str) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                async with self._sessions() as session:
                    await state.renew_job_run(
                        session, job=job, run_key=run_key, owner=self._owner, until=self._clock.now() + LEASE
                    )
                    await session.commit()
            except Exception:
                log.exception("renewing the lease of %s %s failed", job, run_key)

    async def run_forever(self, *, poll_seconds: float = 30.0) -> None:
        """The live loop: wake up every ``poll_seconds`` and run whatever fell due."""
        while True:
            try:
                await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler loop failed; retrying")
            await asyncio.sleep(poll_seconds)
