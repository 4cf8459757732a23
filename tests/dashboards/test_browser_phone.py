"""Headless Chromium at a phone's width (390 px): accounts, the roster import and the work queue, walked
through as each role would, failing on horizontal scrolling, a tall header or a raw identifier on screen."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlmodel import select

from storage.engine import make_engine, make_session_factory
from storage.migrate import upgrade
from storage.models import Member
from tests.dashboards.fakes import RecordingTicketActions, fake_app
from tests.dashboards.seed import PASSWORD, World, seed

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
RAW = re.compile(
    r"\b(township_staff|county_staff|party_member|villager|view_ticket|flag_verdict|user_add|roster_import|"
    r"ticket_[a-z_]+|escalated|extension_requested|awaiting_\w+|in_progress)\b"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, World, RecordingTicketActions, Any]]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'phone.db'}")
    await upgrade(engine)
    factory = make_session_factory(engine)
    world = await seed(factory)
    actions = RecordingTicketActions()
    runner = web.AppRunner(fake_app(factory, ticket_actions=actions))
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", world, actions, factory
    finally:
        await runner.cleanup()
        await engine.dispose()


async def _shot(page: Any, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("VW_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def _fits(page: Any) -> None:
    """Usable at 390 px: nothing wider than the screen, a header that leaves room, no raw codes."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width}px wide"
    header = await page.evaluate("document.querySelector('header.top').getBoundingClientRect().height")
    assert header <= HEADER_MAX, f"header {header}px high on {page.url}"
    # what people read; a file format's column names and codes are shown as <code> on purpose
    shown = await page.evaluate(
        "(() => { const c = document.body.cloneNode(true); c.querySelectorAll('code, script').forEach(e => e.remove());"
        " return c.textContent; })()"
    )
    shown = re.sub(r"[a-z_]+[(（][^)）]+[)）]", "", shown)  # a code explained in Chinese, e.g. cadre(村干部)
    assert not RAW.search(shown), RAW.search(shown)


async def _login(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


async def test_an_admin_adds_an_account_on_a_phone_and_its_owner_must_change_the_password(
    served: Any, browser: Any, tmp_path: Path
) -> None:
    base, _world, _actions, _factory = served
    context = await browser.new_context(viewport=PHONE, device_scale_factor=2)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await _login(page, base, "admin")
    await page.goto(f"{base}/users")
    await _fits(page)
    form = page.locator("#add-user")
    await form.locator("input[name=username]").fill("zhou")
    await form.locator("input[name=display_name]").fill("周干事")
    await form.locator("select[name=role]").select_option("township_staff")
    await form.locator("select[name=county]").select_option("舒城县")
    # the township menu offers the county's townships only; the village menu follows the township
    await form.locator("select[name=township]").select_option("龙山镇")
    hidden = await form.locator("select[name=village] option[data-in='城关镇']").evaluate_all(
        "els => els.map(e => e.hidden)"
    )
    assert hidden and all(hidden)
    await form.locator("button[type=submit]").click()
    await page.wait_for_load_state()
    password = (await page.locator("code.password").inner_text()).strip()
    assert len(password) >= 12
    await _shot(page, "users_phone", tmp_path)
    await _fits(page)
    await page.click("header button.link")  # 退出
    await page.wait_for_url(f"{base}/login")

    await _login(page, base, "zhou", password)
    assert "/password" in page.url
    assert "系统生成的初始密码" in await page.inner_text("main")
    await _shot(page, "password_phone", tmp_path)
    await _fits(page)
    await page.goto(f"{base}/digest")
    assert "/password" in page.url  # every page is closed until the password is changed
    await page.fill("input[name=old]", password)
    await page.fill("input[name=new]", "zhou-own-pass-1")
    await page.fill("input[name=confirm]", "zhou-own-pass-1")
    await page.click("main button[type=submit]")
    await page.wait_for_url(f"{base}/digest")
    assert "龙山镇" in await page.inner_text("header")
    assert [e for e in errors if "404" not in e] == []  # a 404 is the browser asking for /favicon.ico
    await context.close()


async def test_township_staff_import_a_roster_on_a_phone(served: Any, browser: Any, tmp_path: Path) -> None:
    base, _world, _actions, factory = served
    csv = tmp_path / "roster.csv"
    csv.write_text(
        "name,role,village,township,county,group,categories,head,platform_id\n"
        "张新,cadre,河西村,,,,road_traffic,是,\n"
        "赵六,boss,石桥村,,,,,,\n"
        "孙八,cadre,龙山村,,,,,,\n",
        encoding="utf-8",
    )
    context = await browser.new_context(viewport=PHONE, device_scale_factor=2)
    page = await context.new_page()
    await _login(page, base, "town_a")
    await page.goto(f"{base}/roster")
    await _fits(page)
    assert "李书记" in await page.inner_text("main")
    await _shot(page, "roster_phone", tmp_path)
    await page.set_input_files("#roster-import input[type=file]", str(csv))
    await page.click("#roster-import button[type=submit]")
    await page.wait_for_load_state()
    text = await page.inner_text("main")
    assert "第 3 行" in text and "“boss”不正确" in text and "不在您的管辖范围" in text and "张新" in text
    await _shot(page, "roster_preview_phone", tmp_path)
    await _fits(page)
    await page.click("#roster-apply button[type=submit]")
    await page.wait_for_url(f"{base}/roster?done=1")
    assert "已导入 1 人" in await page.inner_text("main")
    async with factory() as session:
        member = (await session.exec(select(Member).where(Member.name == "张新"))).first()
    assert member is not None and member.role == "cadre" and member.on_roster

    await page.click("#tab-unassigned")
    await page.wait_for_load_state()
    row = page.locator("tr", has_text="村民甲")
    await row.locator("select[name=role]").select_option("party_member")
    await row.locator("button[type=submit]").click()
    await page.wait_for_load_state()
    assert "已登记" in await page.inner_text("main")
    await _fits(page)
    await context.close()


async def test_the_work_queue_as_cards_on_a_phone_with_a_bulk_escalation(
    served: Any, browser: Any, tmp_path: Path
) -> None:
    base, world, actions, _factory = served
    context = await browser.new_context(viewport=PHONE, device_scale_factor=2)
    page = await context.new_page()
    await _login(page, base, "county")
    await page.goto(f"{base}/tickets")
    await _fits(page)
    card = page.locator(f"#ticket-{world.tickets['road']}")
    # the deadline, the days left and the rating are on the card (the issue: hidden on phones before)
    assert await card.locator("td[data-label=期限] .left").is_visible()
    assert await card.locator("td[data-label=群众评价]").is_visible()
    box = await card.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    await _shot(page, "board_phone", tmp_path)

    await page.select_option("form.filters select[name=township]", "城关镇")
    shown = await page.locator("form.filters select[name=village] option:not([hidden])").all_inner_texts()
    assert "龙山村" not in shown and "石桥村" in shown
    await page.select_option("form.filters select[name=sort]", "deadline")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_load_state()
    assert "township=" in page.url and "sort=deadline" in page.url
    await page.check(f"#ticket-{world.tickets['road']} input[name=ids]")
    await page.check(f"#ticket-{world.tickets['xss']} input[name=ids]")
    await page.select_option("#bulk select[name=op]", "escalate")
    await page.fill("#bulk input[name=reason]", "群众反映强烈")
    await page.click("#bulk button[type=submit]")
    await page.wait_for_load_state()
    assert "已批量处理 2 件" in await page.inner_text("main")
    assert "township=" in page.url and "sort=deadline" in page.url  # the filters survive the action
    assert sorted(c[1] for c in actions.calls if c[0] == "escalate") == sorted(
        [world.tickets["road"], world.tickets["xss"]]
    )
    await page.click("#view-todo")
    await page.wait_for_load_state()
    await _shot(page, "queue_phone", tmp_path)
    await _fits(page)
    await context.close()


# ---------------------------------------------------------------- every page, every role

HEADER_MAX = 64
TAP_MIN = 40
ROLE_PAGES = {
    "admin": [
        "/digest",
        "/banquets",
        "/tickets",
        "/tickets/{ticket}",
        "/flags/{flag}",
        "/messages/{message}/label",
        "/stats",
        "/broadcasts",
        "/broadcasts/{broadcast}",
        "/exports",
        "/rules",
        "/bench",
        "/model",
        "/roster",
        "/users",
        "/users/town_a",
        "/audit",
        "/password",
    ],
    "county": [
        "/digest",
        "/banquets",
        "/tickets",
        "/tickets/{ticket}",
        "/flags/{flag}",
        "/stats",
        "/broadcasts",
        "/broadcasts/{broadcast}",
        "/exports",
        "/rules",
        "/bench",
        "/model",
        "/roster",
        "/password",
    ],
    "town_a": [
        "/digest",
        "/banquets",
        "/tickets",
        "/tickets/{ticket}",
        "/flags/{flag}",
        "/stats",
        "/broadcasts",
        "/broadcasts/{broadcast}",
        "/exports",
        "/rules",
        "/roster",
        "/password",
    ],
    "cadre_a": ["/tickets", "/tickets/{ticket}", "/stats", "/exports", "/password"],
}
PHONE_CHECKS = """(tap) => {
  const W = document.documentElement.clientWidth, out = {taps: [], clipped: [], cut: []};
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') +
    ' “' + (el.innerText || el.value || el.name || '').trim().slice(0, 16) + '”';
  const shown = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 &&
    getComputedStyle(el).visibility !== 'hidden'; };
  const scroller = el => { for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') return p; } return null; };
  for (const el of document.querySelectorAll('button, select, textarea, input:not([type=hidden]), summary, ' +
       'header a, .pager a, .tabs a, a.button, a.row-card, .actions a')) {
    if (!shown(el)) continue;
    let box = el.getBoundingClientRect();
    if (el.matches('input[type=checkbox], input[type=radio]') && el.closest('label'))
      box = el.closest('label').getBoundingClientRect();
    if (box.height < tap - 0.5 || box.width < tap - 0.5)
      out.taps.push(name(el) + ' ' + Math.round(box.width) + '×' + Math.round(box.height));
  }
  for (const el of document.querySelectorAll('header *, main *')) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    if ((r.right > W + 1 || r.left < -1) && !scroller(el)) out.clipped.push(name(el) + ' right ' + Math.round(r.right));
    const st = getComputedStyle(el);
    if ((st.overflowX === 'hidden' || st.overflowX === 'clip' || st.textOverflow === 'ellipsis') &&
        el.scrollWidth > el.clientWidth + 1) out.cut.push(name(el));
    if (el.matches('.table-wrap') && el.scrollWidth > el.clientWidth + 1) out.cut.push(name(el) + ' scrolls sideways');
  }
  out.clipped = out.clipped.slice(0, 8); out.taps = out.taps.slice(0, 8);
  return out;
}"""


async def _phone_problems(page: Any) -> list[str]:
    """What is wrong with the page at 390 px, as readable lines (empty when it is usable)."""
    found: list[str] = []
    width = await page.evaluate("document.documentElement.scrollWidth")
    if width > PHONE["width"]:
        found.append(f"page {width}px wide")
    header = await page.evaluate("document.querySelector('header.top').getBoundingClientRect().height")
    if header > HEADER_MAX:
        found.append(f"header {header:.0f}px high")
    checks = await page.evaluate(PHONE_CHECKS, TAP_MIN)
    found += [f"tap target {t}" for t in checks["taps"]]
    found += [f"off screen {c}" for c in checks["clipped"]]
    found += [f"cut off {c}" for c in checks["cut"]]
    shown = await page.evaluate(
        "(() => { const c = document.body.cloneNode(true); c.querySelectorAll('code, script').forEach(e => e.remove());"
        " return c.textContent; })()"
    )
    shown = re.sub(r"[a-z_]+[(（][^)）]+[)）]", "", shown)
    if match := RAW.search(shown):
        found.append(f"raw identifier {match.group(0)}")
    return found


async def _seed_broadcast(factory: Any) -> int:
    """A broadcast to two groups, one sent and one waiting, as the outbox records them; and the details of the
    seeded birthday banquet, so 近期宴席 has a row."""
    from datetime import UTC, date, datetime

    from storage.models import Banquet, Broadcast, Flag, Outbox

    async with factory() as session, session.begin():
        flag = (await session.exec(select(Flag).where(Flag.severity == "high", Flag.role == "party_member"))).first()
        assert flag is not None
        session.add(
            Banquet(
                message_id=flag.message_id,
                date=date(2026, 9, 15),
                date_text="9月15日",
                time="中午",
                place="村文化礼堂",
                host="王党员",
                relation="父亲",
                event="八十大寿",
                scale="二十桌",
                tables=20,
            )
        )

    at = datetime(2026, 9, 7, 1, 0, tzinfo=UTC)
    async with factory() as session, session.begin():
        rows = [
            Outbox(
                dedupe_key=f"broadcast:1:{g}",
                account="bot1",
                chat_id=g,
                chat_name=g,
                text="【通知】明天开会",
                created_at=at,
                not_before=at,
                status=status,
                sent_at=at if status == "sent" else None,
            )
            for g, status in (("石桥村监督服务群", "sent"), ("河西村监督服务群", "pending"))
        ]
        session.add_all(rows)
        await session.flush()
        record = Broadcast(
            at=at,
            username="town_a",
            kind="notice",
            text="明天开会",
            audience="城关镇的全部群",
            groups=[r.chat_name for r in rows],
            outbox_ids=[r.id for r in rows],
            members=12,
        )
        session.add(record)
        await session.flush()
        assert record.id is not None
        return record.id


async def test_every_page_for_every_role_is_usable_at_390_px(served: Any, browser: Any, tmp_path: Path) -> None:
    """No sideways scrolling of the page, nothing cut off or off screen, tap targets of at least 40 px, a header
    of at most 64 px, no raw identifiers — on every page each role reaches (screenshots: VW_SCREENSHOTS)."""
    base, world, _actions, factory = served
    values = {
        "ticket": world.tickets["water"],
        "flag": world.flags["banquet"],
        "message": 2,
        "broadcast": await _seed_broadcast(factory),
    }
    failures: dict[str, list[str]] = {}
    for username, paths in ROLE_PAGES.items():
        context = await browser.new_context(viewport=PHONE, device_scale_factor=1)
        page = await context.new_page()
        await _login(page, base, username)
        for template in paths:
            path = template.format(**values)
            response = await page.goto(base + path)
            assert response is not None and response.status == 200, (username, path)
            await _shot(page, f"{username}{path.replace('/', '_')}", tmp_path)
            if found := await _phone_problems(page):
                failures[f"{username} {path}"] = found
        if username == "town_a":  # the broadcast confirmation, reached by the form
            await page.goto(base + "/broadcasts")
            await page.fill("textarea[name=text]", "明天上午九点在村部开会")
            await page.click("form.broadcast button[type=submit]")
            await page.wait_for_load_state()
            assert "确认发送到 2 个群" in await page.inner_text("main")
            await _shot(page, "town_a_broadcast_confirm", tmp_path)
            if found := await _phone_problems(page):
                failures["town_a broadcast confirm"] = found
        await context.close()
    assert not failures, "\n".join(f"{where}: {found}" for where, found in failures.items())
