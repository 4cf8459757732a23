"""Headless Chromium, at a desktop's and a phone's width: township staff search, read a hit in its context,
open a ticket from it and go on to mark a missed one; a cadre searches without those actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.dashboards import test_browser_phone as phone
from tests.dashboards.test_browser_phone import PHONE, _fits, _login, _shot

served = phone.served  # the phone tests' server on the seeded world (a fixture)

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1280, "height": 800}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_staff_search_read_the_context_and_open_a_ticket(
    served: Any, browser: Any, tmp_path: Path, viewport: dict[str, int]
) -> None:
    base, _world, actions, _factory = served
    context = await browser.new_context(viewport=viewport, device_scale_factor=2 if viewport is PHONE else 1)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await _login(page, base, "town_a")
    await page.click("header a[href='/search']")
    await page.wait_for_url(f"{base}/search")
    await page.fill("input[name=q]", "薄酒")
    await page.locator("form[role=search] select[name=village]").select_option("石桥村")
    await page.click("form[role=search] button[type=submit]")
    await page.wait_for_load_state()
    query = parse_qs(urlparse(page.url).query)
    assert query["q"] == ["薄酒"] and query["village"] == ["石桥村"]  # the search is a link to share
    hit = page.locator("li.hit")
    assert await hit.count() == 1
    assert await hit.locator(".anchor mark").inner_text() == "薄酒"
    shown = await hit.inner_text()
    assert "138****5678" in shown and "13812345678" not in shown
    assert "早上好，今天停水吗" in shown and "恭喜恭喜" in shown  # the messages around it
    if viewport is PHONE:
        await _fits(page)
    await _shot(page, f"search_{'phone' if viewport is PHONE else 'desktop'}", tmp_path)

    await hit.locator("details.open-ticket summary").click()
    await hit.locator("select[name=kind]").select_option("demand")
    await hit.locator("select[name=category]").select_option("water")
    await hit.locator("button", has_text="确认立案").click()
    await page.wait_for_load_state()
    assert "已立案" in await page.inner_text("main")
    assert parse_qs(urlparse(page.url).query)["q"] == ["薄酒"]  # back on the same search
    assert [(name, kwargs["kind"], kwargs["category"]) for name, _id, kwargs in actions.calls] == [
        ("open_from_message", "demand", "water")
    ]
    await page.locator("li.hit a", has_text="标记为漏报").click()
    await page.wait_for_load_state()
    assert "/label" in page.url and "标记漏报" in await page.inner_text("main")
    if viewport is PHONE:
        await _fits(page)

    await page.click("header button.link")  # 退出
    await _login(page, base, "cadre_a")
    await page.goto(f"{base}/search?q=%E4%BD%8E%E4%BF%9D")  # 低保: a clue flag in the cadre's own village
    assert await page.locator("li.hit").count() == 0
    await page.goto(f"{base}/search?q=%E5%81%9C%E6%B0%B4")  # 停水
    assert await page.locator("li.hit").count() >= 1
    assert await page.locator("text=确认立案").count() == 0 and await page.locator("text=标记为漏报").count() == 0
    if viewport is PHONE:
        await _fits(page)
    assert [e for e in errors if "404" not in e] == []
    await context.close()
