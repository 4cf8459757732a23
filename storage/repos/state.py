"""Small persistent state: settings (the replay clock) and once-only job runs."""

from __future__ import annotations

from datetime import datetime

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


async def claim_job_run(session: AsyncSession, *, job: str, run_key: str, at: datetime) -> bool:
    """True for the first caller only: the unique (job, run_key) makes a job run twice act once."""
    values = {"job": job, "run_key": run_key, "at": at}
    return await insert_ignore(session, JobRun, ("job", "run_key"), values) is not None
