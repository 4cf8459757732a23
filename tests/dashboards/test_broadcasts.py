"""Broadcasts on the real stack (StaffBroadcaster, the one notifier, the outbox) on SQLite and PostgreSQL:
audience within scope, a preview as the group sees it, a confirmation naming groups and members before
anything is queued, scheduled sending that goes once (also after a restart), cancelling before it goes,
and per-group delivery status from the outbox."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.clock import CHINA, SimulatedClock
from bot.outbox import OutboxService
from bot.services import Services, build_services
from bot.staff import StaffBroadcaster, StaffPipeline, StaffRuleBench, StaffTicketActions
from bot.teaching import StaffModelTeacher
from dashboards.app import create_app
from dashboards.settings import DashboardSettings
from dashboards.users import add_user
from storage.models import AuditLog, Broadcast, Member, Outbox
from storage.repos import ops
from tests.bot.fakes import RecordingAdapter
from tests.dashboards.test_no_raw_identifiers import problems, visible
from tests.scenarios.harness import scenario_config

PASSWORD = "correct-horse-42"
CSRF_RE = re.compile(r'name="_csrf" value="([^"]+)"')
T0 = datetime(2026, 9, 8, 9, 0, tzinfo=CHINA)
USERS = [
    ("liuganshi", "township_staff", "舒城县", "城关镇"),
    ("wangganshi", "township_staff", "舒城县", "干汊河镇"),
    ("zhouzhuren", "county_staff", "舒城县", ""),
]


@dataclass
class World:
    client: TestClient
    services: Services
    clock: SimulatedClock
    csrf: str = ""

    async def login(self, username: str) -> None:
        await self.client.post("/logout", data={"_csrf": self.csrf}, allow_redirects=False)
        self.client.session.cookie_jar.clear()
        token = CSRF_RE.search(await (await self.client.get("/login")).text())
        assert token is not None
        resp = await self.client.post(
            "/login",
            data={"_csrf": token.group(1), "username": username, "password": PASSWORD, "next": "/"},
            allow_redirects=False,
        )
        assert resp.status == 302
        found = CSRF_RE.search(await (await self.client.get("/broadcasts")).text())
        assert found is not None
        self.csrf = found.group(1)

    async def post(self, path: str, data: list[tuple[str, str]]) -> Any:
        return await self.client.post(path, data=[("_csrf", self.csrf), *data], allow_redirects=False)

    async def outbox(self) -> list[Outbox]:
        async with self.services.sessions() as session:
            return list((await session.exec(select(Outbox).order_by(Outbox.id))).all())  # type: ignore[arg-type]


@pytest.fixture
async def world(engine: AsyncEngine, db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    clock = SimulatedClock(T0)
    services = await build_services(
        scenario_config(tmp_path / "data"), clock=clock, db_url=db_url, media_root=tmp_path / "media"
    )
    async with services.sessions() as session:
        for i, name in enumerate(("高某林", "张三", "李四")):
            session.add(
                Member(
                    platform_id=f"m{i}",
                    name=name,
                    village="石桥村",
                    township="城关镇",
                    county="舒城县",
                    group_name="石桥村监督服务群",
                    on_roster=True,
                )
            )
        await session.commit()
    for username, role, county, township in USERS:
        await add_user(
            services.sessions,
            username=username,
            password=PASSWORD,
            role=role,
            county=county,
            township=township,
            village="",
            display_name=username[:2],
        )
    app = create_app(
        session_factory=services.sessions,
        settings=DashboardSettings(
            secret=b"a-dashboard-secret-for-the-tests-only", session_minutes=3 * 24 * 60, freeze_gc=False
        ),
        ticket_actions=StaffTicketActions(services.workflow.actions),
        broadcaster=StaffBroadcaster(services),
        rule_bench=StaffRuleBench(services),
        pipeline=StaffPipeline(services),
        model_teacher=StaffModelTeacher(services),
        clock=clock.now,
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield World(client, services, clock)
    finally:
        await client.close()
        await services.close()


NOTICE = [("kind", "notice"), ("text", "明天8点开村民大会"), ("audience", "all")]


async def test_preview_and_confirmation_come_before_anything_is_queued(world: World) -> None:
    await world.login("liuganshi")
    resp = await world.post("/broadcasts/preview", NOTICE)
    page = await resp.text()
    assert resp.status == 200
    assert "【通知】明天8点开村民大会" in page  # exactly as the bot's template renders it
    assert '共 <b class="count">2</b> 个群' in page and "<b>3</b> 人" in page  # 城关镇: 石桥村, 河东村
    assert "新河村监督服务群" not in page  # another township's group
    assert not problems(visible(page))
    # a post without the confirmation (or an old form) gets the confirmation page, queues nothing
    resp = await world.post("/broadcasts", NOTICE)
    assert resp.status == 200 and "确认发送到 2 个群" in await resp.text()
    resp = await world.post("/broadcasts", [*NOTICE, ("confirm", "5")])  # the count staff saw has changed
    assert "群数有变化" in await resp.text()
    assert await world.outbox() == []
    resp = await world.post("/broadcasts", [*NOTICE, ("confirm", "2")])
    assert resp.status == 302 and resp.headers["Location"] == "/broadcasts/1?sent=1"
    rows = await world.outbox()
    assert sorted(r.chat_name for r in rows) == ["河东村监督服务群", "石桥村监督服务群"]
    assert {r.text for r in rows} == {"【通知】明天8点开村民大会"} and {r.status for r in rows} == {"pending"}
    page = await (await world.client.get("/broadcasts/1")).text()
    assert page.count("待发送") >= 2 and 'http-equiv="refresh"' in page
    assert not problems(visible(page))
    adapter = RecordingAdapter()
    assert await world.services.outbox.send_due({"demo": adapter}, pace=False) == 2
    page = await (await world.client.get("/broadcasts/1")).text()
    assert "已发送 <b>2</b>" in page and "9月8日 09:00" in page and 'http-equiv="refresh"' not in page
    async with world.services.sessions() as session:
        record = await session.get(Broadcast, 1)
        audits = list((await session.exec(select(AuditLog).where(AuditLog.action == "broadcast_notice"))).all())
    assert record is not None and record.audience == "管辖范围内的全部群" and record.members == 3
    assert len(audits) == 1 and "2个群" in audits[0].detail


async def test_audiences_stay_within_scope(world: World) -> None:
    await world.login("zhouzhuren")  # the county: three groups in two townships
    page = await (
        await world.post("/broadcasts/preview", [*NOTICE[:2], ("audience", "township"), ("township", "干汊河镇")])
    ).text()
    assert "干汊河镇的全部群" in page and "确认发送到 1 个群" in page
    page = await (
        await world.post(
            "/broadcasts/preview",
            [*NOTICE[:2], ("audience", "villages"), ("villages", "城关镇|石桥村"), ("villages", "干汊河镇|新河村")],
        )
    ).text()
    assert "确认发送到 2 个群" in page and "河东村监督服务群" not in page
    await world.login("wangganshi")
    resp = await world.post("/broadcasts/preview", [*NOTICE[:2], ("audience", "township"), ("township", "城关镇")])
    assert resp.status == 400 and "不在您的管辖范围内" in await resp.text()
    resp = await world.post(
        "/broadcasts/preview", [*NOTICE[:2], ("audience", "villages"), ("villages", "城关镇|石桥村")]
    )
    assert resp.status == 403
    resp = await world.post(
        "/broadcasts", [*NOTICE[:2], ("audience", "groups"), ("groups", "石桥村监督服务群"), ("confirm", "1")]
    )
    assert resp.status == 403
    # a clarification goes to one group only
    resp = await world.post(
        "/broadcasts/preview", [("kind", "clarification"), ("text", "网传不实"), ("audience", "all")]
    )
    assert resp.status == 400 and "只能发往一个群" in await resp.text()
    # the draft comes back to be edited, nothing lost
    resp = await world.post("/broadcasts/preview", [*NOTICE, ("back", "1")])
    assert "明天8点开村民大会</textarea>" in await resp.text()
    # no CSRF token: refused
    resp = await world.client.post("/broadcasts", data=[*NOTICE, ("confirm", "1")], allow_redirects=False)
    assert resp.status == 403
    assert await world.outbox() == []


async def test_a_scheduled_broadcast_goes_once_at_its_time_even_after_a_restart(world: World) -> None:
    await world.login("liuganshi")
    bad = await world.post("/broadcasts/preview", [*NOTICE, ("send_at", "2026-09-08T08:00")])
    assert bad.status == 400 and "必须晚于现在" in await bad.text()
    bad = await world.post("/broadcasts/preview", [*NOTICE, ("send_at", "明天")])
    assert bad.status == 400 and "格式不对" in await bad.text()
    draft = [*NOTICE, ("send_at", "2026-09-08T18:30")]
    page = await (await world.post("/broadcasts/preview", draft)).text()
    assert "于 <b>9月8日 18:30</b>" in page and "确认定时发送到 2 个群" in page
    resp = await world.post("/broadcasts", [*draft, ("confirm", "2")])
    assert resp.headers["Location"] == "/broadcasts/1?sent=1"
    page = await (await world.client.get("/broadcasts/1?sent=1")).text()
    assert "将于 9月8日 18:30 开始逐群发送" in page and "取消这次定时群发" in page
    adapter = RecordingAdapter()
    assert await world.services.outbox.send_due({"demo": adapter}, pace=False) == 0  # not yet
    async with world.services.sessions() as session:  # not a late outbox for the metrics while it waits
        assert await ops.outbox_by_account(session, now=world.clock.now()) == []
    world.clock.advance_to(datetime(2026, 9, 8, 18, 31, tzinfo=CHINA))
    async with world.services.sessions() as session:
        assert [f.pending for f in await ops.outbox_by_account(session, now=world.clock.now())] == [2]
    assert "取消这次定时群发" not in await (await world.client.get("/broadcasts/1")).text()
    # a sender that crashed after claiming the rows: its restart frees and sends them, each once
    async with world.services.sessions() as session:
        from storage.repos import outbox as outbox_repo

        claimed = await outbox_repo.claim_due(
            session, account="demo", now=world.clock.now(), lease=timedelta(minutes=1)
        )
        await session.commit()
    assert len(claimed) == 2
    restarted = OutboxService(session_factory=world.services.sessions, clock=world.clock, config=world.services.config)
    await restarted.recover(["demo"])
    assert await restarted.send_due({"demo": adapter}, pace=False) == 2
    assert await restarted.send_due({"demo": adapter}, pace=False) == 0
    assert await world.services.outbox.send_due({"demo": adapter}, pace=False) == 0
    assert sorted(m.chat_name for m in adapter.sent) == ["河东村监督服务群", "石桥村监督服务群"]
    resp = await world.post("/broadcasts/1/cancel", [])
    assert resp.status == 302, await resp.text()
    page = await (await world.client.get(resp.headers["Location"])).text()
    assert "已经开始发送，无法取消" in page


async def test_a_scheduled_broadcast_is_cancelled_before_it_goes(world: World) -> None:
    await world.login("liuganshi")
    draft = [*NOTICE, ("send_at", "2026-09-09T08:00")]
    await world.post("/broadcasts", [*draft, ("confirm", "2")])
    await world.login("wangganshi")  # another township's staff: not theirs
    assert (await world.client.get("/broadcasts/1")).status == 404
    assert (await world.post("/broadcasts/1/cancel", [])).status == 404
    await world.login("liuganshi")
    resp = await world.post("/broadcasts/1/cancel", [])
    assert resp.headers["Location"] == "/broadcasts/1?cancelled=2"
    page = await (await world.client.get("/broadcasts/1?cancelled=2")).text()
    assert "撤回了 2 个群的消息" in page and page.count("已取消") >= 3 and "取消这次定时群发" not in page
    assert not problems(visible(page))
    world.clock.advance_to(datetime(2026, 9, 9, 9, 0, tzinfo=CHINA))
    adapter = RecordingAdapter()
    assert await world.services.outbox.send_due({"demo": adapter}, pace=False) == 0
    assert adapter.sent == []
    resp = await world.post("/broadcasts/1/cancel", [])
    assert "error=" in resp.headers["Location"]
    async with world.services.sessions() as session:
        actions = [a.action for a in (await session.exec(select(AuditLog))).all()]
    assert "broadcast_cancel" in actions
    history = await (await world.client.get("/broadcasts")).text()
    assert "已取消" in history and "明天8点开村民大会" in history
