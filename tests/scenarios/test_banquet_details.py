"""Banquet details end to end: a party member's feast through `villagewatch replay` → the flag's date, place
and scale in `flags --json`, the 近期宴席 page for township staff (not for a cadre), and one alert N days before."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from dashboards.app import create_app
from dashboards.settings import DashboardSettings
from dashboards.users import add_user
from storage.engine import make_session_factory
from tests.dashboards.conftest import CSRF_RE, SECRET
from tests.dashboards.fakes import (
    FakeRuleBench,
    RecordingBroadcaster,
    RecordingModelTeacher,
    RecordingPipeline,
    RecordingTicketActions,
)
from tests.scenarios.harness import replay

PASSWORD = "banquet-test-password"


async def _page_as(engine: AsyncEngine, username: str, path: str = "/banquets") -> tuple[int, str]:
    app = create_app(
        session_factory=make_session_factory(engine),
        settings=DashboardSettings(session_minutes=60, secret=SECRET, freeze_gc=False),
        ticket_actions=RecordingTicketActions(),
        broadcaster=RecordingBroadcaster(),
        rule_bench=FakeRuleBench(),
        pipeline=RecordingPipeline(),
        model_teacher=RecordingModelTeacher(),
        clock=lambda: datetime(2026, 11, 13, 2, 0, tzinfo=UTC),
    )
    async with TestClient(TestServer(app)) as client:
        login = await client.get("/login")
        token = CSRF_RE.search(await login.text())
        assert token is not None
        form = {"_csrf": token.group(1), "username": username, "password": PASSWORD, "next": "/"}
        assert (await client.post("/login", data=form, allow_redirects=False)).status == 302
        page = await client.get(path)
        return page.status, await page.text()


async def test_party_members_banquet_details_page_and_alert(engine: AsyncEngine, db_url: str, tmp_path: Path) -> None:
    o = await replay(db_url, tmp_path, "banquet_details.jsonl")
    [flag] = o.flags
    assert "banquet" in flag["labels"] and flag["severity"] == "high" and flag["role"] == "party_member"
    details = flag["banquet"]
    assert (details["date"], details["calendar"], details["lunar"], details["weekday"]) == (
        "2026-11-18",
        "lunar",
        "农历十月初十",
        "周三",
    )
    assert (details["place"], details["scale"], details["tables"], details["period"]) == (
        "村委会旁",
        "二十桌",
        20,
        "中午",
    )
    assert (details["relation"], details["event"], details["approximate"]) == ("父亲", "寿宴", False)

    # the instant alert at once, then the banquet alert 2 days before (on 11-16 at 08:00), once
    staff = o.to("private:刘干事")
    before = [line for line in staff if "宴席预警" in line["text"]]
    assert len(before) == 1, staff
    [alert] = before
    assert alert["at"] == "2026-11-16T08:00:00+08:00"
    assert "2天后" in alert["text"] and "11月18日" in alert["text"] and "农历十月初十" in alert["text"]
    assert "村委会旁" in alert["text"] and "二十桌" in alert["text"] and "党员" in alert["text"]
    assert not [line for line in o.transcript if "宴席预警" in line["text"] and line["to"] != "private:刘干事"]

    factory = make_session_factory(engine)
    await add_user(
        factory, username="chengguan", password=PASSWORD, role="township_staff", county="舒城县", township="城关镇"
    )
    await add_user(
        factory, username="other", password=PASSWORD, role="township_staff", county="舒城县", township="干汊河镇"
    )
    await add_user(
        factory,
        username="lishuji",
        password=PASSWORD,
        role="cadre",
        county="舒城县",
        township="城关镇",
        village="石桥村",
    )
    status, page = await _page_as(engine, "chengguan")
    assert status == 200
    assert "近期宴席" in page and "11月18日" in page and "5天后" in page and "党员" in page
    assert "村委会旁" in page and "二十桌" in page and "家父七十大寿" in page
    status, page = await _page_as(engine, "other")
    assert status == 200 and "家父七十大寿" not in page
    status, page = await _page_as(engine, "lishuji")
    assert status == 403 and "家父七十大寿" not in page
    status, page = await _page_as(engine, "chengguan", "/digest?all=1")
    assert status == 200 and "农历十月初十 → 公历 11月18日 周三" in page and "规模" in page
