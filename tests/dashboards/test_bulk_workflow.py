"""Bulk actions from the board through the real ticket workflow (bot.staff.StaffTicketActions): the one state
machine decides each ticket, and what it refuses is listed in its own Chinese words."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.clock import CHINA, SimulatedClock
from bot.directory import Directory, RosterEntry
from bot.ingest import Ingest
from bot.media import MediaStore
from bot.messages import IncomingMessage, MessageKind
from bot.outbox import OutboxService
from bot.staff import StaffTicketActions
from bot.templates import Templates
from bot.tickets import TicketWorkflow
from classifiers import ClassifierHolder
from storage.engine import make_session_factory
from storage.models import Ticket
from storage.repos import tickets as tickets_repo
from tests.dashboards.conftest import CSRF_RE, SECRET
from tests.dashboards.fakes import fake_app
from tests.dashboards.seed import PASSWORD
from tests.scenarios.harness import ROOT, scenario_config

GROUP = "石桥村监督服务群"
T0 = datetime(2026, 9, 28, 10, 0, tzinfo=CHINA)


@pytest.fixture(scope="module")
def holder() -> ClassifierHolder:
    return ClassifierHolder(ROOT / "rules")


@dataclass
class Board:
    client: TestClient
    workflow: TicketWorkflow
    sessions: object
    csrf: str = ""


@pytest.fixture
async def board(engine: AsyncEngine, holder: ClassifierHolder, tmp_path: Path) -> AsyncIterator[Board]:
    from dashboards.settings import DashboardSettings
    from dashboards.users import add_user

    config = scenario_config(tmp_path / "data")
    sessions = make_session_factory(engine)
    clock = SimulatedClock(T0)
    directory = Directory(config)
    async with sessions() as session:
        await directory.sync_config(session)
        for person in [
            RosterEntry("李书记", "cadre", "石桥村", "城关镇", "舒城县", GROUP, is_head=True),
            RosterEntry("王主任", "cadre", "石桥村", "城关镇", "舒城县", GROUP, categories=("water",)),
            RosterEntry("刘干事", "staff", "", "城关镇", "舒城县"),
            RosterEntry("周主任", "staff", "", "", "舒城县"),
        ]:
            await directory.add_member(session, person)
        await session.commit()
    media = MediaStore(tmp_path / "media")
    workflow = TicketWorkflow(
        session_factory=sessions,
        outbox=OutboxService(session_factory=sessions, clock=clock, config=config),
        templates=Templates(),
        config=config,
        clock=clock,
        classifiers=holder,
        media=media,
        directory=directory,
    )
    ingest = Ingest(
        session_factory=sessions, classifiers=holder, directory=directory, workflow=workflow, media=media, clock=clock
    )
    for n, (sender, text) in enumerate(
        [
            ("高某林", "村口那段路塌了一个大坑,车子过不去"),
            ("张大妈", "我们组路灯坏了一个礼拜了,晚上黑漆漆的"),
            ("李四", "今年的医保什么时候开始交?"),
        ]
    ):
        await ingest.handle(
            IncomingMessage(
                platform_id=f"m{n}",
                account="demo",
                at=clock.now(),
                kind=MessageKind.TEXT,
                text=text,
                sender_id=sender,
                sender_name=sender,
                group_id=GROUP,
                group_topic=GROUP,
            )
        )
    await add_user(
        sessions, username="town", password=PASSWORD, role="township_staff", county="舒城县", township="城关镇"
    )
    app = fake_app(
        sessions,
        settings=DashboardSettings(session_minutes=60, secret=SECRET),
        clock=clock.now,
        ticket_actions=StaffTicketActions(workflow.actions),
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        page = await client.get("/login")
        token = CSRF_RE.search(await page.text())
        assert token is not None
        await client.post("/login", data={"_csrf": token.group(1), "username": "town", "password": PASSWORD})
        found = CSRF_RE.search(await (await client.get("/tickets")).text())
        assert found is not None
        yield Board(client, workflow, sessions, found.group(1))
    finally:
        await client.close()


async def test_bulk_escalate_and_close_go_through_the_state_machine(board: Board) -> None:
    async with board.sessions() as session:  # type: ignore[attr-defined]
        ids = [t.id for t in (await session.exec(select(Ticket).order_by(col(Ticket.id)))).all()]  # type: ignore[attr-defined]
    assert len(ids) == 3
    resp = await board.client.post(
        "/tickets/bulk",
        data=[("_csrf", board.csrf), ("op", "escalate"), ("reason", "群众反映强烈"), ("back", "/tickets")]
        + [("ids", str(i)) for i in ids[:2]],
        allow_redirects=False,
    )
    assert resp.status == 302 and "bulk_done=2" in resp.headers["Location"]
    async with board.sessions() as session:  # type: ignore[attr-defined]
        levels = [(await tickets_repo.get_ticket(session, i)).level for i in ids[:2]]  # type: ignore[union-attr]
    assert levels == ["township", "township"]
    # closing needs a resolution waiting for ratings: the state machine refuses open tickets, in Chinese
    resp = await board.client.post(
        "/tickets/bulk",
        data=[("_csrf", board.csrf), ("op", "close"), ("back", "/tickets")] + [("ids", str(i)) for i in ids],
        allow_redirects=False,
    )
    location = unquote(resp.headers["Location"])
    assert "bulk_done=0" in location
    refusals = location.split("bulk_error=")[1].split("；")
    assert [r.split("：")[0] for r in refusals] == [f"#{i}" for i in ids]
    assert all(len(r.split("：")[1]) > 2 and not r.split("：")[1].isascii() for r in refusals), refusals
    page = await (await board.client.get(resp.headers["Location"])).text()
    assert "未办：" in page
