"""End to end through real WeChat plumbing: the whole service (`bot.app.start_service`) on the Wechaty
adapter against the real puppet service, on the example county's config and roster.

A villager's report in 石桥村监督服务群 becomes a ticket acknowledged in the group with an @mention of
the cadre in charge; the cadre's "#N 已修好" and a large photo resolve it, and the resolution goes back
to the group with the photo, byte for byte, and an @mention of the reporter.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

import bot.app
from bot.adapters.base import AdapterState
from bot.adapters.wechaty import WechatyAdapter
from bot.app import Running, start_service
from bot.config import AccountConfig, Config, PacingConfig, WechatyAccountConfig, load_config
from bot.tickets.report import tickets_as_json
from tests.wechaty.service import GAO, PEOPLE, ROOM_ID, WechatyService

pytestmark = [pytest.mark.wechaty]

REPO = Path(__file__).resolve().parents[2]
TOKEN_ENV = "VILLAGEWATCH_TEST_WECHATY_TOKEN"


def e2e_config(service: WechatyService, data_dir: Path) -> Config:
    example = load_config(REPO / "config.example.toml")
    account = AccountConfig(
        name="shiqiao",
        adapter="wechaty",
        wechaty=WechatyAccountConfig(endpoint=service.endpoint, token_env=TOKEN_ENV),
        pacing=PacingConfig(per_group_seconds=0, per_account_seconds=0),
    )
    return example.model_copy(
        update={
            "data_dir": data_dir,
            "accounts": [account],
            "dashboard": example.dashboard.model_copy(update={"enabled": False}),
            "metrics": example.metrics.model_copy(update={"port": 0}),
        }
    )


@pytest.fixture
async def running(
    wechaty_service: WechatyService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Running]:
    if wechaty_service.proc is None or wechaty_service.proc.poll() is not None:
        wechaty_service.start()
    await wechaty_service.clear_sent()
    monkeypatch.setenv(TOKEN_ENV, wechaty_service.token)

    # Outgoing image paths are relative to the bot's media store; until bot.app passes
    # media_root=services.media.root to WechatyAdapter itself, give it here (a no-op once it does).
    make_adapter = bot.app.make_adapter

    def with_media_root(config, account, services, *, index):  # type: ignore[no-untyped-def]
        adapter = make_adapter(config, account, services, index=index)
        if isinstance(adapter, WechatyAdapter) and adapter.media_root is None:
            adapter.media_root = services.media.root
        return adapter

    monkeypatch.setattr(bot.app, "make_adapter", with_media_root)

    service = await start_service(e2e_config(wechaty_service, tmp_path / "data"))
    try:
        adapter = service.adapters["shiqiao"]
        deadline = time.monotonic() + 10
        while adapter.health().state != AdapterState.CONNECTED:
            assert time.monotonic() < deadline, adapter.health()
            await asyncio.sleep(0.05)
        yield service
    finally:
        await service.stop()


def photo_bytes(size: int) -> bytes:
    """A real JPEG of about ``size`` bytes (the bot posts only real images back): noise, which barely compresses."""
    side = int((size / 1.2) ** 0.5)
    noise = hashlib.shake_256(b"resolution").digest(side * side * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), noise).save(out, "JPEG", quality=95)
    return out.getvalue()


async def test_report_ticket_ack_then_cadre_photo_resolution(running: Running, wechaty_service: WechatyService) -> None:
    service = wechaty_service
    await service.say(GAO, "村口的路灯坏了好几天了，晚上走路看不见，请村里尽快派人来修一下")

    ack = await service.wait_sent(lambda item: item["kind"] == "text" and "【工单 #" in item["text"], timeout=20)
    assert ack["conversationId"] == ROOM_ID and ack["inRoom"]
    match = re.search(r"#(\d+)", ack["text"])
    assert match
    ticket_id = int(match.group(1))
    assert ack["mentionIds"], ack
    assignee = ack["mentionIds"][0]
    assert assignee in PEOPLE and f"@{PEOPLE[assignee]}" in ack["text"]

    await service.say(assignee, f"#{ticket_id} 已修好，换了新灯泡")
    await service.wait_sent(lambda item: item["kind"] == "text" and "照片" in item["text"], timeout=20)

    photo = photo_bytes(1_600_000)
    await service.say(assignee, image=photo, name="路灯修好了.jpg")
    posted = await service.wait_sent(lambda item: item["kind"] == "file", timeout=20)
    assert posted["conversationId"] == ROOM_ID
    assert posted["size"] == len(photo) and posted["sha256"] == hashlib.sha256(photo).hexdigest()
    resolution = await service.wait_sent(
        lambda item: (
            item["kind"] == "text"
            and f"#{ticket_id}" in item["text"]
            and "办结" in item["text"]
            and GAO in item["mentionIds"]
        ),
        timeout=20,
    )
    assert "@高某林" in resolution["text"]

    async with running.services.sessions() as session:
        tickets = {t["id"]: t for t in await tickets_as_json(session)}
    ticket = tickets[ticket_id]
    assert ticket["status"] == "resolved"
    assert ticket["group"] == "石桥村监督服务群" and ticket["reporters"] == ["高某林"]
    assert ticket["assignee"] == PEOPLE[assignee]
    assert len(ticket["photos"]) == 1
    stored = running.services.media.path(ticket["photos"][0])
    assert stored.read_bytes() == photo


async def test_metrics_show_the_wechaty_account(running: Running, wechaty_service: WechatyService) -> None:
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    await wechaty_service.say(GAO, "村口的路灯坏了好几天了，请村里尽快派人来修一下")
    await wechaty_service.wait_sent(lambda item: item["kind"] == "text" and "【工单 #" in item["text"], timeout=20)
    async with aiohttp.ClientSession() as client, client.get(running.urls["metrics"]) as response:
        assert response.status == 200
        text = await response.text()
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert values[("villagewatch_account_connected", (("account", "shiqiao"),))] == 1
    assert values[("villagewatch_messages_received_total", (("account", "shiqiao"),))] >= 1
    assert values[("villagewatch_messages_sent_total", (("account", "shiqiao"),))] >= 1


async def test_voice_message_is_decoded_and_its_transcript_acknowledged_in_the_group(
    running: Running, wechaty_service: WechatyService
) -> None:
    """A real SILK voice message through the puppet service: stored, decoded for the dashboard, a broken one
    kept and marked; the transcript staff type opens the ticket, acknowledged in the room through Wechaty."""
    from sqlmodel import select

    from storage.models import Message, VoiceNote
    from tests.voice.samples import silk_voice

    service = wechaty_service
    await service.say(GAO, file=silk_voice(1.5), name="语音.silk", voice=True)
    await service.say(GAO, file=b"#!SILK_V3" + b"\x00" * 64, name="语音2.silk", voice=True)
    services = running.services
    deadline = time.monotonic() + 20
    while True:
        async with services.sessions() as session:
            rows = (await session.exec(select(Message, VoiceNote).join(VoiceNote).order_by(Message.id))).all()  # type: ignore[arg-type]
        if len(rows) == 2:
            break
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.1)
    (good, good_note), (_bad, bad_note) = rows
    assert good.kind == "voice" and good_note.status == "ok" and 1400 <= (good_note.duration_ms or 0) <= 1600
    assert bad_note.status == "undecodable" and _bad.media_path  # kept as it came
    assert good.id is not None
    done = await services.ingest.transcribe(good.id, "村口的路灯坏了一个多月了没人修", by="liuganshi")
    assert done.handled
    ack = await service.wait_sent(lambda item: item["kind"] == "text" and "【工单 #" in item["text"], timeout=20)
    assert ack["conversationId"] == ROOM_ID and ack["inRoom"]
