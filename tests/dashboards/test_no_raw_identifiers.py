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

import io
import json
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.clock import CHINA, SimulatedClock
from bot.replay import run_replay
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
from storage.repos import rules as rules_repo
from tests.ocr import images
from tests.scenarios.harness import ROOT, replay, scenario_config
from tests.voice.samples import silk_voice

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
    "/rules/new",
    "/rules/versions",
    "/rules/rule/gambling.games",
    "/rules/rule/cat.water.strong",
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

DIGEST_STATES = [
    "/digest?all=1",
    "/digest?all=1&verdict=none",
    "/digest?all=1&verdict=confirmed",
    "/digest?all=1&label=clue&severity=high",
    "/digest?all=1&label=banquet&tier=review",
    "/digest?all=1&township=城关镇&village=石桥村&since=2026-01-01&until=2027-12-31",
    "/digest?label=spam&verdict=false_alarm",
    "/stats?since=2026-01-01&until=2027-12-31",
]
"""The digest's filters (a choice that matches nothing says so in Chinese) and the statistics' hot spots."""

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
ALLOWED_WORDS = {"Excel", "CSV", "xlsx", "pdf", "Esc"}
"""English words a user may read (the dashboard's address is taken out before the check; a shared file's
name keeps its extension, as the villager sent it; Esc is a key's name as printed on the keyboard, in the
digest's list of keys)."""
CARD_HOST = re.compile(r"来自 \S+")
"""A link card names the site it comes from (its host): what a person reads to judge a shared link."""
EDITORS = ("/bench",)
"""The rule bench shows rule files as written (ids, file names, notes): only the checks for leaked internals
(None, reprs, timestamps, template braces) apply there. The rule editor's pages (/rules…) get every check."""
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
    found += [f"word {w}" for w in ANY_WORD.findall(CARD_HOST.sub(" ", text)) if w not in ALLOWED_WORDS]
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


def image_script(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "card.jpg").write_bytes(images.invitation_card())
    (folder / "notice.jpg").write_bytes(images.notice())
    group = "石桥村监督服务群"

    def said(minute: int, sender: str, image: str) -> dict[str, str]:
        at = f"2026-09-11T12:0{minute}:00+08:00"
        return {"kind": "message", "at": at, "group": group, "sender": sender, "image": image}

    lines = [
        {"kind": "member", "group": group, "name": "刘建国", "role": "party_member", "village": "石桥村"},
        said(1, "刘建国", "card.jpg"),
        said(2, "高某林", "notice.jpg"),
    ]
    script = folder / "images.jsonl"
    script.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return script


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


def media_script(folder: Path) -> Path:
    """Voice (one that plays, one that does not decode), a link card and a file, after the fixture's script."""
    (folder / "voice.silk").write_bytes(silk_voice(1.5))
    (folder / "broken.silk").write_bytes(b"not a voice message")
    (folder / "低保名单.xlsx").write_bytes(b"PK\x03\x04" + b"\x00" * 2000)
    group = "石桥村监督服务群"
    lines = [
        {"voice": "voice.silk"},
        {"voice": "broken.silk"},
        {"link": {"title": "停水通知", "description": "明天检修", "url": "https://mp.weixin.qq.com/s/abc"}},
        {"link": {"title": "村务公开", "url": "javascript:alert(1)", "mini_program": True}},
        {"file": "低保名单.xlsx"},
    ]
    script = folder / "media.jsonl"
    script.write_text(
        "\n".join(
            json.dumps(
                {"kind": "message", "at": f"2026-09-11T12:0{i}:00+08:00", "group": group, "sender": "高某林", **line},
                ensure_ascii=False,
            )
            for i, line in enumerate(lines)
        )
        + "\n",
        "utf-8",
    )
    return script


@pytest.fixture
async def world(engine: AsyncEngine, db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    """The fixture world on either backend (the engine fixture prepares an empty, migrated database)."""
    await replay(db_url, tmp_path, "every_state.jsonl")
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)  # the editor saves into its rules folder: never the project's
    config = scenario_config(tmp_path / "data", rules_dir=rules)
    # Pictures: a party member's invitation card (a banquet flag read from the image: flag and digest pages
    # show the image and its text) and a notice photo; the tickets' resolution photos are read too.
    await run_replay(
        image_script(tmp_path / "images"),
        config=config,
        db_url=db_url,
        transcript=io.StringIO(),
        media_root=tmp_path / "media",
    )
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
    # voice, link and file messages, one voice transcribed (a ticket opens of it)
    await run_replay(
        media_script(tmp_path), config=config, db_url=db_url, transcript=io.StringIO(), media_root=tmp_path / "media"
    )
    async with services.sessions() as session:
        voices = [m.id for m in (await session.exec(select(Message).where(Message.kind == "voice"))).all()]
    await services.ingest.transcribe(voices[0] or 0, "村口的路灯坏了一个多月了没人修", by="liuganshi")
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
        rule_editor=services.rule_editor,
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
    # a broadcast scheduled for later and one sent at once, so their pages (and the history) have rows
    broadcaster = StaffBroadcaster(world.services)
    later = world.services.clock.now() + timedelta(hours=3)
    scheduled = await broadcaster.broadcast(
        actor="liuganshi", kind="notice", text="明天开会", groups=["石桥村监督服务群"], send_at=later, audience="石桥村"
    )
    cancelled = await broadcaster.broadcast(
        actor="liuganshi", kind="notice", text="后天开会", groups=["石桥村监督服务群"], send_at=later
    )
    await broadcaster.cancel(cancelled, actor="liuganshi")
    sent = await broadcaster.broadcast(
        actor="liuganshi", kind="clarification", text="经核实不实", groups=["石桥村监督服务群"]
    )
    await _open_from_search(world)
    async with world.services.sessions() as session:
        tickets = list((await session.exec(select(Ticket))).all())
        flag_ids = [f.id for f in (await session.exec(select(Flag))).all()]
        message_ids = [m.id for m in (await session.exec(select(Message).limit(5))).all()]
        media_ids = [m.id for m in (await session.exec(select(Message).where(Message.kind != "text"))).all()]
        outbox = [row.text or "" for row in (await session.exec(select(Outbox))).all()]
    async with world.services.sessions() as session:
        image_flags = [f for f in (await session.exec(select(Flag))).all() if f.from_image]
    assert image_flags, "the invitation card raised no flag: the image pages would go unchecked"
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
            *(f"/messages/{i}/label" for i in media_ids),
            "/tickets?status=open",
            "/tickets?overdue=1",
            *(f"/broadcasts/{i}" for i in (scheduled, cancelled, sent)),
            *DIGEST_STATES,
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
    for where, html in await _rule_editor_pages(world):
        if found := problems(visible(html)):
            failures[where] = sorted(set(found))
    for text in outbox:
        if found := problems(text):
            failures[f"message {text[:40]}"] = found
    for name in Templates().names():
        text = Templates().render(name, **SAMPLES.get(name, {}))
        if found := problems(text):
            failures[f"template {name}"] = found
    assert not failures, "\n".join(f"{where}: {found}" for where, found in failures.items())


async def _rule_editor_pages(world: World) -> list[tuple[str, str]]:
    """What the rule editor shows while an administrator edits: a refused edit, a dry run, the saved rule, the
    versions after a save and a rollback, and the audit log of it all."""
    await world.login("guanliyuan")
    page = await world.client.get("/rules/rule/gambling.games")
    html = await page.text()
    token = CSRF_RE.search(html)
    assert token is not None
    terms = re.findall(r'name="any" value="([^"]+)"', html)
    assert terms
    form = [("_csrf", token.group(1)), ("rule_id", "gambling.games"), ("weight", "0.7"), ("days", "7")]
    form += [("any", t) for t in terms]
    shown: list[tuple[str, str]] = []
    refused = await world.client.post("/rules/preview", data=[*form[:2], ("weight", "很高"), *form[3:]])
    assert refused.status == 400
    shown.append(("refused edit", await refused.text()))
    assert "权重" in shown[-1][1]
    added = [*form, ("any_add", "停水 检修"), ("description", "赌博玩法（测试）")]
    dry = await world.client.post("/rules/preview", data=added)
    assert dry.status == 200
    shown.append(("dry run", await dry.text()))
    assert "试算结果" in shown[-1][1] and "新增命中" in shown[-1][1]
    saved = await world.client.post("/rules/save", data=[*added, ("reason", "测试保存")])
    assert saved.status == 200 and saved.url.path == "/rules/rule/gambling.games"
    shown.append(("saved rule", await saved.text()))
    assert "规则已保存" in shown[-1][1]
    shadow = await world.client.post(
        "/rules/gambling.hard_games/shadow", data={"_csrf": token.group(1), "shadow": "1"}, allow_redirects=False
    )
    assert shadow.status == 302  # the shadow switch is an edit like any other: checked, swapped in, kept
    assert any(r.id == "gambling.hard_games" and r.shadow for r in world.services.classifiers.current.ruleset.rules)
    versions = await world.client.get("/rules/versions")
    shown.append(("versions", await versions.text()))
    assert "开启试运行" in shown[-1][1] and "测试保存" in shown[-1][1]
    rollback = await world.client.post("/rules/versions/0/rollback", data={"_csrf": token.group(1), "reason": "撤回"})
    assert rollback.status == 200
    shown.append(("after rollback", await rollback.text()))
    for path in ("/rules", "/rules?q=停水", "/rules?group=category:water", "/audit"):
        shown.append((path, await (await world.client.get(path)).text()))
    assert "修改规则" in shown[-1][1] and "恢复规则版本" in shown[-1][1]
    forged = await world.client.post("/rules/save", data=[*added[1:], ("_csrf", "forged"), ("reason", "伪造")])
    assert forged.status == 403
    await world.login("liuganshi")  # township staff may look, not edit
    assert (await world.client.get("/rules/rule/gambling.games")).status == 200
    page = await world.client.get("/rules/rule/gambling.games")
    township_token = CSRF_RE.search(await page.text())
    assert township_token is not None and "试算（不保存）" not in await page.text()
    refused = await world.client.post(
        "/rules/save", data=[("_csrf", township_token.group(1)), *added[1:], ("reason", "越权")]
    )
    assert refused.status == 403
    async with world.services.sessions() as session:
        assert [v.reason for v in await rules_repo.list_versions(session)][-1] == "测试保存"
        assert "越权" not in [v.reason for v in await rules_repo.list_versions(session)]
    return shown
