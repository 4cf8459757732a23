"""The simulator keeps a bounded history per chat (its memory stays flat in a long run), and what exactly
once needs (the reply keys and client ids it has seen) whole, across a restart from its journal."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from bot.adapters.sim import SimAdapter
from bot.clock import CHINA, SimulatedClock
from bot.config import Config, load_config
from bot.messages import IncomingMessage, OutgoingMessage

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 9, 7, 9, 0, tzinfo=CHINA)
GROUPS = ["石桥村监督服务群", "河东村监督服务群"]


def _sim(tmp_path: Path, *, history: int) -> SimAdapter:
    async def people() -> dict[str, list[dict[str, str]]]:
        return {}

    return SimAdapter(
        "demo",
        groups=GROUPS,
        people=people,
        media_root=tmp_path / "media",
        clock=SimulatedClock(T0),
        port=0,
        poll_seconds=0.01,
        journal=tmp_path / "sim" / "demo.jsonl",
        history=history,
    )


def _reply(group: str, n: int) -> OutgoingMessage:
    return OutgoingMessage(
        account="demo", chat_id=group, is_group=True, chat_name=group, text=f"回复{n}", dedupe_key=f"ack:{group}:{n}"
    )


async def test_each_chat_keeps_its_last_entries_and_every_reply_key(tmp_path: Path) -> None:
    sim = _sim(tmp_path, history=5)
    for n in range(40):
        await sim.send(_reply(GROUPS[n % 2], n))
    kept = sim.delivered
    # 5 per chat, the newest, in the order shown
    assert [e.text for e in kept] == [f"回复{n}" for n in range(30, 40)]
    assert [e.seq for e in kept] == sorted(e.seq for e in kept)
    # a reply shown long ago and sent again (a crash before it was marked) is still dropped
    assert await sim.send(_reply(GROUPS[0], 0)) == "sim-1"
    assert len(sim.delivered) == 10

    restarted = _sim(tmp_path, history=5)  # from the journal, which keeps everything
    assert [e.text for e in restarted.delivered] == [f"回复{n}" for n in range(30, 40)]
    assert await restarted.send(_reply(GROUPS[1], 1)) == "sim-2"
    assert len(restarted.delivered) == 10
    lines = (tmp_path / "sim" / "demo.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 40
    # numbering goes on after the last entry shown
    new = await restarted.send(_reply(GROUPS[0], 99))
    assert new == "sim-41"
    assert json.loads(lines[-1])["seq"] == 40


async def test_the_page_polls_only_what_it_keeps_and_photos_leave_with_their_entries(tmp_path: Path) -> None:
    seen: list[IncomingMessage] = []

    async def on_message(incoming: IncomingMessage) -> None:
        seen.append(incoming)

    sim = _sim(tmp_path, history=3)
    await sim.start(on_message)
    try:
        async with aiohttp.ClientSession() as client:
            for n in range(6):
                form = aiohttp.FormData()
                form.add_field("id", f"p{n}")
                form.add_field("sender", "高某林")
                form.add_field("chat", GROUPS[0])
                form.add_field("image", b"\xff\xd8photo%d" % n, filename=f"{n}.jpg", content_type="image/jpeg")
                async with client.post(sim.url + "api/send", data=form) as response:
                    assert response.status == 200
            # sent again after a lost answer: acknowledged, shown and kept once
            form = aiohttp.FormData()
            form.add_field("id", "p5")
            form.add_field("sender", "高某林")
            form.add_field("chat", GROUPS[0])
            async with client.post(sim.url + "api/send", data=form) as response:
                assert (await response.json())["duplicate"] is True
            async with client.get(sim.url + "api/messages", params={"after": "0"}) as response:
                polled = await response.json()
            assert [e["key"] for e in polled] == ["p3", "p4", "p5"]
            async with client.get(sim.url + "api/messages", params={"after": str(polled[1]["seq"])}) as response:
                assert [e["key"] for e in await response.json()] == ["p5"]
            # the photos of the entries still shown are served; the older ones are gone from memory
            for entry in polled:
                async with client.get(sim.url + entry["image"].lstrip("/")) as response:
                    assert response.status == 200
            assert len(sim._uploads) == 3
    finally:
        await sim.stop()
    assert len(seen) == 6


def test_history_is_configured_and_checked() -> None:
    config = load_config(ROOT / "config.example.toml")
    assert config.sim.history == 200
    with pytest.raises(ValueError, match="history"):
        Config.model_validate({**config.model_dump(mode="json"), "sim": {"history": 0}})
