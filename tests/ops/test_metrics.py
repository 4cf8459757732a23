"""/metrics: the Prometheus text parses, counts move when messages flow, and scrapes are protected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

import bot.app
from bot.app import Running, start_service
from bot.config import ConfigError, MetricsConfig, load_config
from bot.messages import IncomingMessage, MessageKind
from bot.metrics import allowed, metrics_token

ROOT = Path(__file__).resolve().parents[2]
TOKEN_ENV = "VILLAGEWATCH_TEST_METRICS_TOKEN"


async def start(tmp_path: Path) -> Running:
    base = load_config(ROOT / "config.example.toml")
    config = base.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "dashboard": base.dashboard.model_copy(update={"enabled": False}),
            "sim": base.sim.model_copy(update={"port": 0}),
            "metrics": base.metrics.model_copy(update={"port": 0, "token_env": TOKEN_ENV}),
        }
    )
    return await start_service(config)


@pytest.fixture
async def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    running = await start(tmp_path)
    try:
        yield running
    finally:
        await running.stop()


async def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as client, client.get(url, headers=headers or {}) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def message(platform_id: str, text: str) -> IncomingMessage:
    return IncomingMessage(
        platform_id=platform_id,
        account="demo",
        at=datetime.now(UTC),
        kind=MessageKind.TEXT,
        text=text,
        sender_id="gao",
        sender_name="高某林",
        group_id="石桥村监督服务群",
        group_topic="石桥村监督服务群",
    )


async def test_metrics_parse_and_move_when_messages_flow(service: Running) -> None:
    url = service.urls["metrics"]
    status, content_type, text = await scrape(url)
    assert status == 200 and content_type.startswith("text/plain")
    before = samples(text)
    assert before[("villagewatch_messages_received_total", (("account", "demo"),))] == 0
    assert before[("villagewatch_tickets", (("status", "open"),))] == 0
    assert before[("villagewatch_outbox_pending", (("account", "demo"),))] == 0
    assert before[("villagewatch_account_connected", (("account", "demo"),))] == 1
    assert before[("villagewatch_account_state", (("account", "demo"), ("state", "connected")))] == 1
    assert before[("villagewatch_database_up", ())] == 1

    adapter = service.adapters["demo"]
    handle = bot.app._pipeline(service.services, {adapter.account: adapter}, service.counters)
    await handle(message("m1", "石桥村张湾组连续三天停水了,老人小孩怎么办"))
    await handle(message("m2", "今晚老地方打麻将,带够钱"))

    after = samples((await scrape(url))[2])
    assert after[("villagewatch_messages_received_total", (("account", "demo"),))] == 2
    assert after[("villagewatch_pipeline_events_total", (("event", "handled"),))] == 2
    tickets = sum(v for (name, labels), v in after.items() if name == "villagewatch_tickets")
    assert tickets == 1
    assert any(name == "villagewatch_flags_recent" and v >= 1 for (name, _), v in after.items())
    # The acknowledgement is queued, then sent by the outbox task.
    replies = (
        after[("villagewatch_outbox_pending", (("account", "demo"),))]
        + after[("villagewatch_messages_sent_total", (("account", "demo"),))]
    )
    assert replies >= 1
    for _ in range(100):
        after = samples((await scrape(url))[2])
        if after[("villagewatch_messages_sent_total", (("account", "demo"),))] >= 1:
            break
        await asyncio.sleep(0.05)
    assert after[("villagewatch_messages_sent_total", (("account", "demo"),))] >= 1
    assert after[("villagewatch_send_failures_total", (("account", "demo"),))] == 0
    assert after[("villagewatch_outbox_oldest_pending_age_seconds", (("account", "demo"),))] >= 0


async def test_a_token_is_required_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "metrics-secret")
    running = await start(tmp_path)
    try:
        url = running.urls["metrics"]
        assert (await scrape(url))[0] == 401
        assert (await scrape(url, {"Authorization": "Bearer wrong"}))[0] == 401
        status, _, text = await scrape(url, {"Authorization": "Bearer metrics-secret"})
        assert status == 200 and "villagewatch_tickets" in text
    finally:
        await running.stop()


def test_without_a_token_only_loopback_clients_are_answered() -> None:
    def request(remote: str) -> object:
        return make_mocked_request("GET", "/metrics", transport=FakeTransport(remote))

    assert allowed(request("127.0.0.1"), "")  # type: ignore[arg-type]
    assert allowed(request("::1"), "")  # type: ignore[arg-type]
    assert allowed(request("::ffff:127.0.0.1"), "")  # type: ignore[arg-type]
    assert not allowed(request("10.1.2.3"), "")  # type: ignore[arg-type]
    assert not allowed(request("10.1.2.3"), "t")  # type: ignore[arg-type]


class FakeTransport:
    def __init__(self, remote: str) -> None:
        self._remote = remote

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "peername":
            return (self._remote, 40000)
        return default

    def is_closing(self) -> bool:
        return False


def test_a_public_bind_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ConfigError, match=TOKEN_ENV):
        metrics_token(MetricsConfig(bind="0.0.0.0", token_env=TOKEN_ENV))
    assert metrics_token(MetricsConfig(bind="127.0.0.1", token_env=TOKEN_ENV)) == ""
    monkeypatch.setenv(TOKEN_ENV, "abc")
    assert metrics_token(MetricsConfig(bind="0.0.0.0", token_env=TOKEN_ENV)) == "abc"
