"""Headless Chromium walks the patrol digest by keyboard, as in a mail client: j/k move, 1–4 judge, ? shows the
keys; each verdict is recorded without a page load and the focus moves on. At desktop width and at 390 px."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlmodel import select

from storage.engine import SessionFactory, make_engine, make_session_factory
from storage.migrate import upgrade
from storage.models import Flag, FlagReview
from tests.dashboards.fakes import fake_app
from tests.dashboards.seed import PASSWORD, World, seed
from tests.dashboards.test_browser_phone import RAW

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, World, SessionFactory]]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'digest.db'}")
    await upgrade(engine)
    factory = make_session_factory(engine)
    world = await seed(factory)
    runner = web.AppRunner(fake_app(factory))
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", world, factory
    finally:
        await runner.cleanup()
        await engine.dispose()


async def _verdicts(factory: SessionFactory) -> dict[int, str | None]:
    async with factory() as session:
        return {f.id or 0: f.verdict for f in (await session.exec(select(Flag))).all()}


async def _focused(page: Any) -> str:
    return str(await page.evaluate("document.querySelector('article.flag.focused')?.id || ''"))


@pytest.mark.parametrize("width", [1280, 390])
async def test_judging_the_digest_by_keyboard(served: Any, browser: Any, width: int) -> None:
    base, world, factory = served
    context = await browser.new_context(viewport={"width": width, "height": 844})
    page = await context.new_page()
    errors: list[str] = []
    # (the browser's own request for /favicon.ico is a 404: not an error of the page)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "404" not in m.text else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{base}/login?next=/digest%3Fall%3D1")
    await page.fill("input[name=username]", "town_a")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/digest?all=1")
    loads: list[str] = []
    page.on("load", lambda: loads.append(page.url))

    order = await page.eval_on_selector_all("article.flag", "cards => cards.map(c => c.id)")
    f = world.flags
    assert order == [f"flag-{f['clue']}", f"flag-{f['banquet']}", f"flag-{f['xss_img']}", f"flag-{f['xss_script']}"]

    # ? shows the keys in Chinese, ? again hides them
    help_panel = page.locator("#keys-help")
    assert not await help_panel.is_visible()
    await page.keyboard.press("?")
    assert await help_panel.is_visible()
    text = await help_panel.inner_text()
    assert "下一条预警" in text and "属实" in text and "误报" in text and "需跟进" in text and "备注" in text
    await page.keyboard.press("?")
    assert not await help_panel.is_visible()

    # j focuses the first flag, visibly; k stays at the top
    await page.keyboard.press("j")
    assert await _focused(page) == order[0]
    outline = await page.evaluate("getComputedStyle(document.querySelector('article.flag.focused')).outlineStyle")
    assert outline == "solid"
    await page.keyboard.press("k")
    assert await _focused(page) == order[0]

    # 1 = 属实 on the clue; the card is replaced in place and the focus moves to the banquet
    await page.keyboard.press("1")
    await page.wait_for_selector(f"#{order[0]} .verdict-tag.v-confirmed")
    assert await _focused(page) == order[1]
    # 2 = 误报 on the banquet, then j skips the next one, 3 = 需跟进 on the last
    await page.keyboard.press("2")
    await page.wait_for_selector(f"#{order[1]} .verdict-tag.v-false_alarm")
    assert await _focused(page) == order[2]
    await page.keyboard.press("j")
    await page.keyboard.press("3")
    await page.wait_for_selector(f"#{order[3]} .verdict-tag.v-follow_up")
    # 4 = 备注: the note field of the focused card takes the text, Enter saves it as a note (not 属实)
    assert await _focused(page) == order[3]  # the last card keeps the focus
    await page.keyboard.press("k")
    assert await _focused(page) == order[2]
    await page.keyboard.press("4")
    assert await page.evaluate("document.activeElement.name") == "note"
    await page.keyboard.type("已转镇纪委核实")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(f"#{order[2]} ul.notes >> text=已转镇纪委核实")
    assert await page.locator(f"#{order[2]} .verdict-tag").inner_text() == "未判"
    # a tap on a button works the same way, still without a page load
    await page.locator(f"#{order[2]} button[value=confirmed]").click()
    await page.wait_for_selector(f"#{order[2]} .verdict-tag.v-confirmed")

    assert loads == [], loads  # every verdict in place: no reload
    assert await _verdicts(factory) | {f["other_town"]: None} == {
        f["clue"]: "confirmed",
        f["banquet"]: "false_alarm",
        f["xss_img"]: "confirmed",
        f["xss_script"]: "follow_up",
        f["other_town"]: None,
    }
    async with factory() as session:
        notes = [r.note for r in (await session.exec(select(FlagReview).where(FlagReview.verdict == "note"))).all()]
    assert notes == ["已转镇纪委核实"]

    # the keys help and the filters fit the screen; nothing raw on it
    width_used = await page.evaluate("document.documentElement.scrollWidth")
    assert width_used <= width, width_used
    shown = await page.evaluate(
        "(() => { const c = document.body.cloneNode(true); c.querySelectorAll('script').forEach(e => e.remove());"
        " return c.textContent; })()"
    )
    assert not RAW.search(shown), RAW.search(shown)
    # filters through the form land in the URL, and a reload keeps them
    await page.select_option("select[name=verdict]", "none")
    await page.click("form.digest-filters button[type=submit]")
    await page.wait_for_url("**/digest?all=1&**verdict=none**")
    assert await page.locator("article.flag").count() == 0
    assert "没有符合筛选条件的预警" in await page.inner_text("main")
    # the statistics page with its hot spots and ranking fits the screen too
    await page.goto(f"{base}/stats?since=2026-09-01&until=2026-09-30")
    assert await page.locator("#hot-spots").is_visible() and await page.locator("#ranking").is_visible()
    assert "各村排名" in await page.locator("#ranking").inner_text()  # a township ranks its villages
    width_used = await page.evaluate("document.documentElement.scrollWidth")
    assert width_used <= width, width_used
    assert errors == [], errors
    await context.close()


async def test_the_digest_works_without_javascript(served: Any, browser: Any) -> None:
    base, world, factory = served
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", "town_a")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/digest")
    card = page.locator(f"#flag-{world.flags['banquet']}")
    await card.locator("input[name=note]").fill("寿宴已劝停")
    await card.locator("button[value=confirmed]").click()
    await page.wait_for_load_state()
    card = page.locator(f"#flag-{world.flags['banquet']}")
    assert await card.locator(".verdict-tag").inner_text() == "属实"
    assert "寿宴已劝停" in await card.inner_text()
    assert (await _verdicts(factory))[world.flags["banquet"]] == "confirmed"
    await context.close()
