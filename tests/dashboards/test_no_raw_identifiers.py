"""Nothing a user reads shows a raw identifier — checked on what the real system produces.

A replay (``tests/scenarios/scripts/every_state.jsonl``) leaves tickets in every state of the state machine
(new, in progress, extension requested, awaiting photo, awaiting rating, rated, closed without an answer,
reopened by 不满意, escalated, confidential, an answered consultation), a banquet alert and a clue; staff then
split, merge, transfer, note and refuse from the dashboard. Every page a staff member, a county staff
member, an administrator and a cadre can reach is rendered (board, each ticket, digest, each flag, model,
labelling, audit, rules, bench, stats, broadcasts, exports), and so is every message the bot queued and
every bot template with its sample values. The test fails on English keys (statuses, stages, events,
ratings, kinds, levels, categories, labels, roles), ``satisfied:``, login names, file paths,
None/null/True/False, Python reprs, ISO timestamps with microseconds, and template braces.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.clock import CHINA, SimulatedClock
from bot.services import Services, build_services
from bot.staff import StaffBroadcaster, StaffPipeline, StaffRuleBench, StaffTicketActions
from bot.teaching import StaffModelTeacher
from bot.templates import SAMPLES, Templates
from bot.tickets import states
from dashboards import labels
from dashboards.app import create_app
from dashboards.ports import ActionRefused
from dashboards.settings import DashboardSettings
from dashboards.users import add_user
from storage.models import Flag, Message, Outbox, Ticket
from tests.scenarios.harness import replay, scenario_config

PASSWORD = "correct-horse-42"
CSRF_RE = re.compile(r'name="_csrf" value="([^"]+)"')
USERS = [
    # login, role, county, township, village, display name
    ("liuganshi", "township_staff", "舒城县", "城关镇", "", "刘干事"),
    ("zhouzhuren", "county_staff", "舒城县", "", "", "周主任"),
    ("guanliyuan", "admin", "", "", "", "管理员"),
    ("lishuji", "cadre", "舒城县", "城关镇", "石桥村", "李书记"),
]
LOGINS = {u[0] for u in USERS}
PAGES = [
    "/",
    "/tickets",
    "/digest",
    "/model",
    "/audit",
    "/rules",
    "/bench",
    "/stats",
    "/broadcasts",
    "/exports",
    "/banquets",
    "/roster",
    "/users",
    "/password",
    "/search",
    "/search?q=停水",
    "/search?q=村主任",
    "/search?q=水&kind=tickets",
    "/search?q=大寿&kind=flags",
    "/search?q=灯&township=城关镇&since=2026-09-01&until=2026-09-30",
    "/search?q=没有这样的话",
]

KEYS = (
    {str(s) for s in states.Stage}
    | {str(s) for s in states.Status}
    | {str(r) for r in states.Rating}
    | set(labels.EVENTS)
    | set(Templates().category_names)
    | set(Templates().kind_names)
    | set(Templates().level_names)
    | {k for names in Templates().extra_names.values() for k in names}
    | {"township_staff", "county_staff", "admin", "cadre", "staff", "villager", "party_member"}
)
KEY_RE = re.compile(
    r"(?<![A-Za-z_])(" + "|".join(sorted(map(re.escape, KEYS), key=len, reverse=True)) + r")(?![A-Za-z_])"
)
ANY_WORD = re.compile(r"[A-Za-z_]{3,}")
ALLOWED_WORDS = {"Excel", "CSV"}
"""English words a user may read (the dashboard's address is taken out before the check)."""
EDITORS = ("/rules", "/bench")
"""The rule editor and bench show rule files as written (ids, file names, notes): only the checks for
leaked internals (None, reprs, timestamps, template braces) apply there."""
BAD = {
    "rating key": re.compile(r"satisfied:|unsatisfied:"),
    "file path": re.compile(r"/[\w.-]+/[\w.-]+\.\w+|\b[\w-]+\.(?:png|jpe?g|gif|webp)\b|\\[\w.-]+\\"),
    "none": re.compile(r"(?<![A-Za-z])(None|null|True|False|undefined|nan)(?![A-Za-z])"),
    "repr": re.compile(r"<[\w.]+ object at|\{'|\['|datetime\(|Decimal\("),
    "iso microseconds": re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}\.\d+"),
    "iso timestamp": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"),
    "template": re.compile(r"\{\{|\}\}|\{%|%\}"),
}


ACCOUNTS = "/users"
"""The admin's accounts page lists login names: there they are what is managed (a person types one to log in)."""


def problems(text: str, *, editor: bool = False, accounts: bool = False) -> list[str]:
    text = re.sub(r"https?://\S+", " ", text)
    if accounts:
        for login in LOGINS:
            text = text.replace(login, " ")
    if editor:
        return [f"{name}: {m}" for name, rule in BAD.items() if name != "file path" for m in rule.findall(text)]
    found = [f"key {m}" for m in KEY_RE.findall(text)]
    found += [f"word {w}" for w in ANY_WORD.findall(text) if w not in ALLOWED_WORDS]
    found += [f"{name}: {m}" for name, rule in BAD.items() for m in rule.findall(text)]
    found += [f"login {login}" for login in LOGINS if login in text]
    return found


def visible(html: str) -> str:
    """What a reader sees: the text between tags, and the attributes a browser shows."""
    shown = [m.group(2) for m in re.finditer(r'\b(title|placeholder|alt|aria-label)="([^"]*)"', html)]
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    body = re.sub(r"<!--.*?-->", " ", body, flags=re.S)
    body = re.sub(r"<[^>]+>", " ", body)
    body = body.replace("&nbsp;", " ").replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&")
    return " ".join([body, *shown])


@dataclass
class World:
    client: TestClient
    services: Services

    async def login(self, username: str) -> None:
        await self.client.post("/logout", allow_redirects=False)
        self.client.session.cookie_jar.clear()
        page = await self.client.get("/login")
        token = CSRF_RE.search(await page.text())
        assert token is not None
        resp = await self.client.post(
            "/login",
            data={"_csrf": token.group(1), "username": username, "password": PASSWORD, "next": "/"},
            allow_redirects=False,
        )
        assert resp.status == 302, await resp.text()


@pytest.fixture
async def world(engine: AsyncEngine, db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    """The fixture world on either backend (the engine fixture prepares an empty, migrated database)."""
    await replay(db_url, tmp_path, "every_state.jsonl")
    config = scenario_config(tmp_path / "data")
    clock = SimulatedClock(datetime(2026, 9, 11, 12, 0, tzinfo=CHINA))  # where the script ends
    services = await build_services(config, clock=clock, db_url=db_url, media_root=tmp_path / "media")
    staff_actions = StaffTicketActions(services.workflow.actions)
    # what staff do from the dashboard: split, merge, transfer, note, and refused actions
    new_id = await staff_actions.split(2, reporter="张大妈", actor="刘干事")
    assert new_id == 14
    await staff_actions.merge(13, into=3, actor="刘干事")
    await staff_actions.transfer(3, to_member="李书记", actor="刘干事")
    await staff_actions.add_note(9, actor="刘干事", text="已联系供电所")
    await staff_actions.progress(14, actor="刘干事", text="已安排送水车")
    for refused in (
        staff_actions.reopen(3, actor="刘干事", reason="复核"),
        staff_actions.close(2, actor="刘干事", text=""),
    ):
        with pytest.raises(ActionRefused):
            await refused
    for username, role, county, township, village, display in USERS:
        await add_user(
            services.sessions,
            username=username,
            password=PASSWORD,
            role=role,
            county=county,
            township=township,
            village=village,
            display_name=display,
        )
    settings = DashboardSettings(
        secret=b"a-dashboard-secret-for-the-tests-only",
        session_minutes=60,
        media_dir=services.media.root,
        category_names=services.templates.category_names,
    )
    app = create_app(
        session_factory=services.sessions,
        settings=settings,
        ticket_actions=staff_actions,
        broadcaster=StaffBroadcaster(services),
        rule_bench=StaffRuleBench(services),
        pipeline=StaffPipeline(services),
        model_teacher=StaffModelTeacher(services),
        clock=services.clock.now,
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield World(client, services)
    finally:
        await client.close()
        await services.close()


async def _open_from_search(world: World) -> None:
    """立案 from a search hit, as township staff do: the ticket, its acknowledgement and the audit row then
    appear on the pages and in the outbox checked below."""
    await world.login("liuganshi")
    page = await (await world.client.get("/search?q=七十大寿")).text()
    form = re.search(r'action="(/messages/\d+/ticket)"', page)
    token = CSRF_RE.search(page)
    assert form is not None and token is not None, page
    resp = await world.client.post(
        form.group(1),
        data={"_csrf": token.group(1), "kind": "demand", "category": "", "back": "/search?q=七十大寿"},
        allow_redirects=False,
    )
    assert resp.status == 302 and "opened=" in resp.headers["Location"], resp.headers.get("Location")


async def test_every_page_and_message_shows_no_raw_identifier(world: World) -> None:
    await _open_from_search(world)
    async with world.services.sessions() as session:
        tickets = list((await session.exec(select(Ticket))).all())
        flag_ids = [f.id for f in (await session.exec(select(Flag))).all()]
        message_ids = [m.id for m in (await session.exec(select(Message).limit(5))).all()]
        outbox = [row.text or "" for row in (await session.exec(select(Outbox))).all()]
    stages = {t.stage for t in tickets}
    assert {str(s) for s in states.Stage} <= stages, {str(s) for s in states.Stage} - stages
    assert any(t.confidential for t in tickets) and any(t.level != "village" for t in tickets)
    failures: dict[str, list[str]] = {}
    seen = 0
    for username, *_ in USERS:
        await world.login(username)
        paths = [
            *PAGES,
            *(f"/tickets/{t.id}" for t in tickets),
            *(f"/flags/{i}" for i in flag_ids),
            *(f"/messages/{i}/label" for i in message_ids),
            "/tickets?status=open",
            "/tickets?overdue=1",
        ]
        for path in paths:
            resp = await world.client.get(path)
            if resp.status in (403, 404):
                continue  # outside this user's scope
            assert resp.status == 200, (username, path, resp.status)
            seen += 1
            found = problems(
                visible(await resp.text()), editor=path.startswith(EDITORS), accounts=path.startswith(ACCOUNTS)
            )
            if found:
                failures[f"{username} {path}"] = sorted(set(found))
    assert seen > 4 * len(PAGES)
    for text in outbox:
        if found := problems(text):
            failures[f"message {text[:40]}"] = found
    for name in Templates().names():
        text = Templates().render(name, **SAMPLES.get(name, {}))
        if found := problems(text):
            failures[f"template {name}"] = found
    assert not failures, "\n".join(f"{where}: {found}" for where, found in failures.items())
