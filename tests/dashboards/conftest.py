"""Fixtures: the dashboard app on a seeded database, with recording fakes, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.directory import Directory
from bot.staff_roster import StaffRoster
from dashboards.app import create_app
from dashboards.settings import DashboardSettings
from storage.engine import SessionFactory, make_session_factory
from tests.dashboards.fakes import (
    FakeClock,
    FakeRuleBench,
    RecordingBroadcaster,
    RecordingModelTeacher,
    RecordingPipeline,
    RecordingTicketActions,
)
from tests.dashboards.seed import PASSWORD, World, seed, staff_roster

CSRF_RE = re.compile(r'name="_csrf" value="([^"]+)"')
SECRET = b"a-dashboard-secret-for-the-tests-only"


@dataclass
class Dash:
    client: TestClient
    factory: SessionFactory
    world: World
    clock: FakeClock
    actions: RecordingTicketActions
    broadcaster: RecordingBroadcaster
    bench: FakeRuleBench
    pipeline: RecordingPipeline
    teacher: RecordingModelTeacher
    roster: StaffRoster
    directory: Directory
    csrf: str = ""

    async def login(self, username: str, password: str = PASSWORD) -> None:
        page = await self.client.get("/login")
        token = CSRF_RE.search(await page.text())
        assert token is not None
        resp = await self.client.post(
            "/login",
            data={"_csrf": token.group(1), "username": username, "password": password, "next": "/"},
            allow_redirects=False,
        )
        assert resp.status == 302, await resp.text()
        self.csrf = await self.fetch_csrf()

    async def fetch_csrf(self) -> str:
        page = await self.client.get("/tickets")
        found = CSRF_RE.search(await page.text())
        assert found is not None
        return found.group(1)

    async def post(self, path: str, data: dict[str, str] | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
        return await self.client.post(path, data={"_csrf": self.csrf, **(data or {})}, allow_redirects=False, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with the smallest cost: the same code paths, a millisecond per hash instead of ~50 ms."""
    from argon2 import PasswordHasher

    from dashboards import security

    monkeypatch.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
async def dash(engine: AsyncEngine) -> AsyncIterator[Dash]:
    factory = make_session_factory(engine)
    world = await seed(factory)
    clock = FakeClock()
    actions, broadcaster, bench = RecordingTicketActions(), RecordingBroadcaster(), FakeRuleBench()
    pipeline = RecordingPipeline()
    teacher = RecordingModelTeacher()
    roster, directory = staff_roster(factory)
    app = create_app(
        session_factory=factory,
        settings=DashboardSettings(session_minutes=60, secret=SECRET),
        ticket_actions=actions,
        broadcaster=broadcaster,
        rule_bench=bench,
        pipeline=pipeline,
        model_teacher=teacher,
        roster=roster,
        clock=clock,
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Dash(client, factory, world, clock, actions, broadcaster, bench, pipeline, teacher, roster, directory)
    finally:
        await client.close()
