"""Small persistent state: settings (the replay clock) and once-only job runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import or_, update
from sqlalchemy.engine import CursorResult
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import JobRun, Setting
from storage.repos.common import insert_ignore


async def get_setting(session: AsyncSession, key: str) -> str | None:
    row = await session.get(Setting, key)
    return None if row is None else row.value


async def set_setting(session: AsyncSession, key: str, value: str) -> None:
    row = await session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value
        session.add(row)


class Claim(StrEnum):
    TAKEN = "taken"
    """The caller holds the run now and must do it, then ``finish_job_run``."""
    BUSY = "busy"
    """Another live owner holds it (its lease has not expired)."""
    DONE = "done"
    """It was done before."""


async def claim_job_run(
    session: AsyncSession, *, job: str, run_key: str, at: datetime, owner: str, lease: timedelta
) -> Claim:
    """Lease the run (job, run_key) to ``owner`` until ``at + lease``.

    The first caller takes it; later callers take it over only while it is not done and either its lease
    has expired (its owner died) or they are its owner (restarted: one process per owner).
    """
    values = {"job": job, "run_key": run_key, "at": at, "owner": owner, "lease_until": at + lease, "done_at": None}
    if await insert_ignore(session, JobRun, ("job", "run_key"), values) is not None:
        return Claim.TAKEN
    result = await session.exec(
        update(JobRun)
        .where(
            col(JobRun.job) == job,
            col(JobRun.run_key) == run_key,
            col(JobRun.done_at).is_(None),
            or_(col(JobRun.lease_until) < at, col(JobRun.owner) == owner, col(JobRun.lease_until).is_(None)),
        )
        .values(owner=owner, lease_until=at + lease, at=at)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    if result.rowcount:
        return Claim.TAKEN
    done = (await session.exec(select(JobRun.done_at).where(JobRun.job == job, JobRun.run_key == run_key))).first()
    return Claim.BUSY if done is None else Claim.DONE


async def renew_job_run(session: AsyncSession, *, job: str, run_key: str, owner: str, until: datetime) -> None:
    """Extend the owner's lease while a long run goes on."""
    await session.exec(
        update(JobRun)
        .where(col(JobRun.job) == job, col(JobRun.run_key) == run_key, col(JobRun.owner) == owner)
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )


async def finish_job_run(session: AsyncSession, *, job: str, run_key: str, at: datetime) -> None:
    await session.exec(
        update(JobRun)
        .where(col(JobRun.job) == job, col(JobRun.run_key) == run_key)
        .values(done_at=at, lease_until=None)
        .execution_options(synchronize_session=False)
    )
