"""The whole service as `make run` starts it, driven in Debian's headless Chromium.

A villager speaks in the simulator page and sees the bot's acknowledgement; staff log in to the dashboard,
find the ticket, broadcast a notice to all groups and a clarification to one (S8), and the simulator shows
them arrive in the groups through the paced outbox.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import Running, start_service
from bot.config import load_config

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Running]:
    base = load_config(ROOT / "config.example.toml")
    accounts = [
        a.model_copy(update={"pacing": a.pacing.model_copy(update={"per_group_seconds": 0.2})}) for a in base.accounts
    ]
    config = base.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "accounts": accounts,
            "dashboard": base.dashboard.model_copy(update={"port": 0}),
            "sim": base.sim.model_copy(update={"port": 0}),
            "metrics": base.metrics.model_copy(update={"port": 0}),
        }
    )
    running = await start_service(config)
    try:
        yield running
    finally:
        await running.stop()


async def test_villager_is_answered_and_staff_broadcast_reaches_groups(service: Running, browser: Any) -> None:
    sim_url = service.urls["simulator (demo)"]
    dashboard = service.urls["dashboard"]
    assert service.first_login is not None
    user, password = service.first_login

    sim = await (await browser.new_context()).new_page()
    await sim.goto(sim_url)
    await sim.wait_for_selector("#chat-list li")
    await sim.click("#chat-list li >> text=石桥村监督服务群")
    await sim.select_option("#sender", "高某林")
    await sim.fill("#text", "石桥村张湾组连续三天停水了,<b>老人</b>小孩怎么办")
    await sim.click("#composer button[type=submit]")
    ack = sim.locator("#messages li.bot .bubble", has_text="【工单 #1】")
    await ack.wait_for(timeout=15_000)
    assert "@王主任" in await ack.inner_text()
    # the villager's own text is shown as text, never as markup
    assert await sim.locator("#messages li b").count() == 0

    staff = await (await browser.new_context()).new_page()
    await staff.goto(dashboard)
    await staff.fill("input[name=username]", user)
    await staff.fill("input[name=password]", password)
    await staff.click("button[type=submit]")
    # the first admin's password was generated: it must be changed before anything else
    await staff.wait_for_url(re.compile(r"/password\?next="))
    await staff.fill("input[name=old]", password)
    await staff.fill("input[name=new]", "first-admin-own-1")
    await staff.fill("input[name=confirm]", "first-admin-own-1")
    await staff.click("main button[type=submit]")
    await staff.wait_for_url(dashboard + "digest")
    await staff.goto(dashboard + "tickets")
    await staff.locator("text=连续三天停水").first.wait_for(timeout=10_000)

    await staff.goto(dashboard + "broadcasts")
    await staff.fill("textarea[name=text]", "下周一起开展秋季森林防火宣传,请大家注意用火安全。")
    await staff.check("input[name=audience][value=all]")
    await staff.click("form.broadcast button[type=submit]")
    # a preview as the groups will see it and the number of groups, before anything is queued
    await staff.locator(".bubble.preview", has_text="【通知】下周一起开展秋季森林防火宣传").wait_for(timeout=10_000)
    await staff.click("form.actions button.primary")
    await staff.locator("text=已加入发送队列").wait_for(timeout=10_000)

    await staff.goto(dashboard + "broadcasts")
    await staff.check("input[name=kind][value=clarification]")
    await staff.fill("textarea[name=text]", "网传石桥村低保名单有误,经核实名单已公示无误。")
    await staff.check("input[name=audience][value=groups]")
    await staff.click("details.pick >> text=选择群")
    await staff.check("input[name=groups][value=石桥村监督服务群]")
    await staff.click("form.broadcast button[type=submit]")
    await staff.locator("text=确认发送到 1 个群").wait_for(timeout=10_000)
    await staff.click("form.actions button.primary")
    await staff.locator("text=已加入发送队列").wait_for(timeout=10_000)

    notice = sim.locator("#messages li.bot .bubble", has_text="【通知】下周一起开展秋季森林防火宣传")
    await notice.wait_for(timeout=15_000)
    clarification = sim.locator("#messages li.bot .bubble", has_text="【澄清】网传石桥村低保名单有误")
    await clarification.wait_for(timeout=15_000)
    await sim.click("#chat-list li >> text=新河村监督服务群")
    await sim.locator("#messages li.bot .bubble", has_text="【通知】下周一起").wait_for(timeout=15_000)
    assert await sim.locator("#messages li.bot .bubble", has_text="【澄清】").count() == 0
