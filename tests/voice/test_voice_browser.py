"""A villager's voice message, end to end in Debian's headless Chromium: sent to the simulator as a real SILK
file, played back on the digest (the audio loads, has a duration and plays), transcribed by staff, and the
ticket opens with its acknowledgement in the group."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Running, start_service
from bot.config import load_config
from tests.voice.samples import silk_voice

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
LAMP = "村口的路灯坏了一个多月了没人修"


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


async def _send_voice(sim_url: str, data: bytes) -> None:
    form = aiohttp.FormData()
    form.add_field("sender", "高某林")
    form.add_field("chat", "石桥村监督服务群")
    form.add_field("id", "voice-1")
    form.add_field("voice", data, filename="语音.silk", content_type="application/octet-stream")
    async with aiohttp.ClientSession() as http, http.post(sim_url.rstrip("/") + "/api/send", data=form) as answer:
        assert answer.status == 200, await answer.text()


async def _login(page: Any, dashboard: str, user: str, password: str) -> None:
    await page.goto(dashboard)
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"/password\?next="))
    await page.fill("input[name=old]", password)
    await page.fill("input[name=new]", "first-admin-own-1")
    await page.fill("input[name=confirm]", "first-admin-own-1")
    await page.click("main button[type=submit]")
    await page.wait_for_url(dashboard + "digest")


async def test_a_voice_message_plays_on_the_digest_and_its_transcript_opens_a_ticket(
    service: Running, browser: Any
) -> None:
    sim_url = service.urls["simulator (demo)"]
    dashboard = service.urls["dashboard"]
    assert service.first_login is not None
    await _send_voice(sim_url, silk_voice(2.0))

    staff = await (await browser.new_context()).new_page()
    await _login(staff, dashboard, *service.first_login)
    await staff.goto(dashboard + "digest")
    pending = staff.locator("section.voice-pending")
    await pending.wait_for(timeout=10_000)
    assert "时长 2秒" in await pending.inner_text()
    audio = pending.locator("audio").first
    played = await audio.evaluate(
        """async (a) => {
            if (a.readyState < 1) await new Promise((ok, no) => {
                a.onloadedmetadata = ok; a.onerror = () => no(a.error); a.load();
            });
            a.muted = true;
            await a.play();
            await new Promise((ok) => setTimeout(ok, 600));
            return {duration: a.duration, time: a.currentTime, error: a.error && a.error.code};
        }"""
    )
    assert played["error"] is None and 1.9 < played["duration"] < 2.1 and played["time"] > 0

    await pending.locator("textarea[name=text]").fill(LAMP)
    await pending.locator("form.transcript button[type=submit]").click()
    await staff.locator("p.transcribed").wait_for(timeout=10_000)
    assert "已生成工单" in await staff.locator("p.transcribed").inner_text()
    await staff.goto(dashboard + "tickets")
    await staff.locator(f"text={LAMP}").first.wait_for(timeout=10_000)
    await staff.goto(dashboard + "tickets/1")
    # the ticket page plays the same voice message and shows whose transcript it is
    ticket_audio = staff.locator(".voice audio").first
    duration = await ticket_audio.evaluate(
        "async (a) => { if (a.readyState < 1) await new Promise((ok) => { a.onloadedmetadata = ok; a.load(); });"
        " return a.duration; }"
    )
    assert duration > 1.9
    assert "人工转写" in await staff.locator(".voice").first.inner_text()

    sim = await (await browser.new_context()).new_page()
    await sim.goto(sim_url)
    await sim.wait_for_selector("#chat-list li")
    await sim.click("#chat-list li >> text=石桥村监督服务群")
    ack = sim.locator("#messages li.bot .bubble", has_text="【工单 #1】")
    await ack.wait_for(timeout=15_000)
    assert "路灯" in await ack.inner_text() or "@" in await ack.inner_text()
