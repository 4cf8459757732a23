"""Messages of one chat are handled in arrival order, chats side by side; stopping is prompt and clean."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import col, select

from bot.adapters.sim import SimAdapter
from bot.app import Running, start_service
from bot.clock import SimulatedClock
from bot.config import load_config
from bot.dispatch import ChatDispatcher
from bot.messages import IncomingMessage, MessageKind
from bot.services import Services
from storage.models import Message
from tests.bot.conftest import ROOT, T0

GROUPS = ("石桥村监督服务群", "河东村监督服务群", "七门堰村监督服务群")


def _message(n: int, group: str | None, sender: str = "高某林") -> IncomingMessage:
    return IncomingMessage(
        platform_id=f"m{n}",
        account="demo",
        at=T0,
        kind=MessageKind.TEXT,
        text=f"第{n}条",
        sender_id=sender,
        sender_name=sender,
        group_id=group,
        group_topic=group,
    )


class Recorder:
    """A pipeline that takes a few turns of the event loop per message and records what overlapped."""

    def __init__(self) -> None:
        self.done: list[IncomingMessage] = []
        self.busy: dict[str | None, int] = {}
        self.most_in_one_chat = 0
        self.most_at_once = 0
        self.stuck = asyncio.Event()
        self.cancelled: list[str] = []

    async def __call__(self, incoming: IncomingMessage) -> None:
        chat = incoming.group_id or f"private:{incoming.sender_id}"
        self.busy[chat] = self.busy.get(chat, 0) + 1
        self.most_in_one_chat = max(self.most_in_one_chat, self.busy[chat])
        self.most_at_once = max(self.most_at_once, sum(self.busy.values()))
        try:
            if incoming.text == "卡住":
                await self.stuck.wait()
            for _ in range(3):
                await asyncio.sleep(0)
            if incoming.text == "出错":
                raise RuntimeError("pipeline bug")
            self.done.append(incoming)
        except asyncio.CancelledError:
            self.cancelled.append(incoming.platform_id)
            raise
        finally:
            self.busy[chat] -= 1


async def test_one_chat_in_order_chats_side_by_side() -> None:
    recorder = Recorder()
    dispatcher = ChatDispatcher(recorder, parallel=4)
    sent = [_message(n, GROUPS[n % 3] if n % 4 else None, sender=f"村民{n % 2}") for n in range(60)]
    for incoming in sent:
        await dispatcher(incoming)
    assert dispatcher.pending == 60
    await dispatcher.drained()
    assert dispatcher.pending == 0
    assert sorted(m.platform_id for m in recorder.done) == sorted(m.platform_id for m in sent)
    for chat in [*GROUPS, None]:
        for sender in ("村民0", "村民1"):
            expected = [m.platform_id for m in sent if m.group_id == chat and (chat or m.sender_id == sender)]
            handled = [m.platform_id for m in recorder.done if m.group_id == chat and (chat or m.sender_id == sender)]
            assert handled == expected
    assert recorder.most_in_one_chat == 1
    assert 1 < recorder.most_at_once <= 4


async def test_a_failing_message_does_not_stop_its_chat() -> None:
    recorder = Recorder()
    dispatcher = ChatDispatcher(recorder)
    for n, text in enumerate(("一", "出错", "三")):
        await dispatcher(replace(_message(n, GROUPS[0]), text=text))
    await dispatcher.drained()
    assert [m.text for m in recorder.done] == ["一", "三"]


async def test_close_finishes_what_it_can_cancels_a_stuck_message_and_takes_no_more() -> None:
    recorder = Recorder()
    dispatcher = ChatDispatcher(recorder)
    await dispatcher(_message(1, GROUPS[0]))
    await dispatcher.drained()
    await dispatcher(replace(_message(2, GROUPS[1]), text="卡住"))
    await dispatcher(_message(3, GROUPS[1]))
    left = await dispatcher.close(grace=0)
    assert left == 2 and recorder.cancelled == ["m2"]
    await dispatcher(_message(4, GROUPS[0]))
    await dispatcher.drained()
    assert [m.platform_id for m in recorder.done] == ["m1"]


@pytest.fixture
async def sim(services: Services, tmp_path: Path) -> AsyncIterator[tuple[SimAdapter, ChatDispatcher]]:
    async def people() -> dict[str, list[dict[str, str]]]:
        return {}

    adapter = SimAdapter(
        "demo",
        groups=list(GROUPS),
        people=people,
        media_root=tmp_path / "media",
        clock=SimulatedClock(T0),
        port=0,
        poll_seconds=600,
    )
    dispatcher = ChatDispatcher(lambda m: services.ingest.handle(m, download=adapter.download))
    await adapter.start(dispatcher)
    try:
        yield adapter, dispatcher
    finally:
        await adapter.stop()
        await dispatcher.close()


async def test_simulator_messages_are_stored_in_the_order_they_were_accepted(
    sim: tuple[SimAdapter, ChatDispatcher], services: Services
) -> None:
    adapter, dispatcher = sim
    async with aiohttp.ClientSession() as client:

        async def say(n: int) -> None:
            data = {"sender": f"新村民{n % 5}", "chat": GROUPS[n % 2], "text": f"第{n}条消息"}
            async with client.post(adapter.url + "api/send", data=data) as response:
                assert response.status == 200

        await asyncio.gather(*(say(n) for n in range(60)))
        async with client.get(adapter.url + "api/messages", params={"after": "0"}) as response:
            accepted = await response.json()
    await dispatcher.drained()
    async with services.sessions() as session:
        stored = (await session.exec(select(Message).order_by(col(Message.id)))).all()
    assert len(stored) == 60
    for group in GROUPS[:2]:
        in_sim = [e["text"] for e in accepted if e["chat"] == group]
        assert [m.text for m in stored if m.group_name == group] == in_sim


async def test_stopping_the_simulator_answers_an_open_long_poll(sim: tuple[SimAdapter, ChatDispatcher]) -> None:
    adapter, _ = sim
    async with aiohttp.ClientSession() as client:
        poll = asyncio.create_task(client.get(adapter.url + "api/messages", params={"after": "0"}))
        while adapter.open_polls == 0:
            await asyncio.sleep(0)
        await adapter.stop()
        response = await poll
        # answered by the stop itself (the poll would wait 600 s), not cut off by the server's clean-up
        assert response.status == 200 and await response.json() == []
        response.release()


async def test_the_service_stops_cleanly_with_a_long_poll_and_a_dashboard_connection_open(tmp_path: Path) -> None:
    base = load_config(ROOT / "config.example.toml")
    config = base.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "dashboard": base.dashboard.model_copy(update={"port": 0}),
            "sim": base.sim.model_copy(update={"port": 0}),
        }
    )
    running: Running = await start_service(config)
    stopped = False
    try:
        sim_url, dashboard = running.urls["simulator (demo)"], running.urls["dashboard"]
        adapter = running.adapters["demo"]
        assert isinstance(adapter, SimAdapter)
        async with aiohttp.ClientSession() as client:
            async with client.get(dashboard + "login") as page:  # a kept-alive dashboard connection
                assert page.status == 200
            async with client.post(
                sim_url + "api/send", data={"sender": "新村民", "chat": GROUPS[0], "text": "本周六家父七十大寿,摆几桌"}
            ) as sent:
                assert sent.status == 200
            poll = asyncio.create_task(client.get(sim_url + "api/messages", params={"after": "99"}))
            while adapter.open_polls == 0:
                await asyncio.sleep(0)
            await running.stop()
            stopped = True
            response = await poll
            assert response.status == 200
            response.release()
    finally:
        if not stopped:
            await running.stop()
    # the message accepted just before the stop was handled, not dropped
    assert running.dispatcher.pending == 0 and running.services.stats.total["handled"] == 1
