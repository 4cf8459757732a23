"""A real headless Chromium (Debian's) drives the dashboard: login, patrol, verdict, board, ticket, stats, export."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from openpyxl import load_workbook

from storage.engine import make_engine, make_session_factory
from storage.migrate import upgrade
from tests.dashboards.fakes import RecordingTicketActions, fake_app
from tests.dashboards.seed import PASSWORD, World, seed

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("VW_SCREENSHOTS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, World, RecordingTicketActions]]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'browser.db'}")
    await upgrade(engine)
    factory = make_session_factory(engine)
    world = await seed(factory)
    actions = RecordingTicketActions()
    app = fake_app(factory, ticket_actions=actions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}", world, actions
    finally:
        await runner.cleanup()
        await engine.dispose()


async def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def test_staff_patrols_reviews_and_exports_in_a_real_browser(served: Any, browser: Any) -> None:
    base, world, actions = served
    context = await browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    await page.goto(f"{base}/digest")
    assert "/login" in page.url
    await page.fill("input[name=username]", "town_a")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/digest")
    await _shot(page, "digest")

    # the XSS texts rendered as text, nothing ran
    assert await page.locator("text=<script>alert('xss')</script>").count() >= 1
    assert await page.locator("img[src=x]").count() == 0

    flag = page.locator(f"#flag-{world.flags['banquet']}")
    await flag.locator("input[name=note]").fill("已核实")
    await flag.locator("button[value=confirmed]").click()
    # recorded in place (digest.js), the card comes back with the verdict and the note
    await page.wait_for_selector(f"#flag-{world.flags['banquet']} .verdict-tag.v-confirmed")
    assert "已核实" in await page.locator(f"#flag-{world.flags['banquet']}").inner_text()
    assert await page.locator(f"#flag-{world.flags['banquet']} .verdict-tag").inner_text() == "属实"

    await page.click("nav >> text=工单")
    await page.wait_for_url(f"{base}/tickets")
    await _shot(page, "board")
    await page.click(f"a[href='/tickets/{world.tickets['water']}'] >> nth=0")
    await page.wait_for_url(f"{base}/tickets/{world.tickets['water']}")
    assert "张湾组连续三天停水了" in await page.inner_text("main")
    await page.fill("form[action$='/note'] textarea[name=text]", "已电话回访")
    await page.click("form[action$='/note'] button")
    await page.wait_for_url(f"**/tickets/{world.tickets['water']}?done=note")
    assert actions.calls[-1][0] == "add_note"
    await _shot(page, "ticket")

    await page.click("nav >> text=统计")
    await page.wait_for_url(f"{base}/stats")
    await page.fill("input[name=since]", "2026-09-01")
    await page.click("form.filters button")
    await page.wait_for_load_state()
    assert await page.locator("svg.chart").count() == 4
    assert "办结率" in await page.inner_text("main")
    await _shot(page, "stats")

    await page.click("nav >> text=台账导出")
    await page.fill("form[action='/exports/tickets.xlsx'] input[name=since]", "2026-09-01")
    async with page.expect_download() as info:
        await page.click("#export-tickets")
    download = await info.value
    data = Path(await download.path()).read_bytes()
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None and sheet["A1"].value == "编号" and sheet.max_row >= 4

    # a township cannot open another township's ticket by URL
    resp = await page.goto(f"{base}/tickets/{world.tickets['other_town']}")
    assert resp is not None and resp.status == 404

    assert dialogs == [] and errors == [p for p in errors if "404" in p]
    if SHOTS:
        phone = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        mobile = await phone.new_page()
        await mobile.context.add_cookies(await context.cookies())
        for path, name in [
            ("/broadcasts", "broadcasts"),
            ("/rules", "rules"),
            ("/bench", "bench"),
            ("/exports", "exports"),
        ]:
            await page.goto(base + path)
            await _shot(page, name)
        for path, name in [
            ("/digest?all=1", "digest_phone"),
            ("/tickets", "board_phone"),
            ("/stats", "stats_phone"),
            (f"/tickets/{world.tickets['water']}", "ticket_phone"),
        ]:
            await mobile.goto(base + path)
            await _shot(mobile, name)
        await phone.close()
    await context.close()


async def test_a_cadre_in_the_browser_cannot_see_the_confidential_ticket(served: Any, browser: Any) -> None:
    base, world, _ = served
    page = await browser.new_page()
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", "cadre_a")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/tickets")
    assert "升学宴" not in await page.inner_text("main")
    resp = await page.goto(f"{base}/tickets/{world.tickets['clue']}")
    assert resp is not None and resp.status == 404
    await page.close()
