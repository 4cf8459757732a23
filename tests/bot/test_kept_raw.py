"""Messages kept raw after failing every try: retried first, counted, shown, and re-run through the pipeline."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from sqlalchemy import func
from sqlmodel import select

from bot.health import health_handler
from bot.ingest import Inbound
from bot.messages import IncomingMessage, MessageKind
from bot.services import Services
from storage.models import Classification, Flag, Message, Outbox, Ticket
from storage.repos import messages as messages_repo
from tests.bot.conftest import T0
from tests.bot.fakes import RecordingAdapter
from tests.cli import run_cli

GROUP = "石桥村监督服务群"
BANQUET = "本周六家父七十大寿,中午在村部对面农家乐摆几桌,请亲朋好友赏光"
DEMAND = "石桥村张湾组连续三天停水了,老人小孩怎么办"


def _message(platform_id: str, text: str, *, sender: str, group: str | None = GROUP) -> IncomingMessage:
    return IncomingMessage(
        platform_id=platform_id,
        account="demo",
        at=T0,
        kind=MessageKind.TEXT,
        text=text,
        sender_id=sender,
        sender_name=sender,
        group_id=group,
        group_topic=group,
    )


class Breaks:
    """Makes the ticket workflow fail a set number of times (or always), as a bug or an outage would."""

    def __init__(self, services: Services, monkeypatch: pytest.MonkeyPatch, *, times: int | None = None) -> None:
        self.left = times
        self.calls = 0
        real = services.workflow.handle

        async def handle(session: Any, inbound: Inbound) -> None:
            self.calls += 1
            if self.left is None or self.left > 0:
                if self.left is not None:
                    self.left -= 1
                raise ConnectionResetError("database connection lost")
            await real(session, inbound)

        monkeypatch.setattr(services.workflow, "handle", handle)
        self.undo = lambda: monkeypatch.setattr(services.workflow, "handle", real)


async def _counts(services: Services) -> dict[str, int]:
    async with services.sessions() as session:

        async def count(model: Any) -> int:
            return int((await session.exec(select(func.count()).select_from(model))).one())

        return {
            "messages": await count(Message),
            "classified": await count(Classification),
            "flags": await count(Flag),
            "tickets": await count(Ticket),
            "outbox": await count(Outbox),
            "kept_raw": await messages_repo.count_kept_raw(session),
        }


async def _health(services: Services) -> dict[str, Any]:
    handler = health_handler(services, {"demo": RecordingAdapter()})
    response = await handler(make_mocked_request("GET", "/health"))
    assert response.text is not None
    body: dict[str, Any] = json.loads(response.text)
    return body


async def test_a_failure_that_passes_is_retried_and_the_message_handled(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    breaks = Breaks(services, monkeypatch, times=1)
    caplog.set_level(logging.WARNING)
    message_id = await services.ingest.handle(_message("t1", DEMAND, sender="高某林"))
    assert message_id is not None and breaks.calls == 2
    counts = await _counts(services)
    assert counts == {"messages": 1, "classified": 1, "flags": 0, "tickets": 1, "outbox": 1, "kept_raw": 0}
    assert services.ingest.stats.total["retried"] == 1 and services.ingest.stats.total["failed"] == 0
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # a retry is no error


async def test_kept_raw_messages_are_counted_and_rerun_through_the_whole_pipeline(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    breaks = Breaks(services, monkeypatch)
    banquet = await services.ingest.handle(_message("k1", BANQUET, sender="刘建国"))
    demand = await services.ingest.handle(_message("k2", DEMAND, sender="新来的村民"))
    private = await services.ingest.handle(_message("k3", "我想反映一下低保评定的问题", sender="高某林", group=None))
    assert None not in (banquet, demand, private)
    assert breaks.calls == 9  # three messages, three tries each
    assert await _counts(services) == {
        "messages": 3,
        "classified": 0,
        "flags": 0,
        "tickets": 0,
        "outbox": 0,
        "kept_raw": 3,
    }
    assert services.ingest.stats.total["failed"] == 3
    assert (await _health(services))["kept_raw"] == 3

    breaks.undo()
    result = await services.ingest.rerun_kept_raw()
    assert (result.handled, result.failed, result.remaining) == (3, 0, 0)
    counts = await _counts(services)
    # the banquet is flagged; the demand in the group and the private report each open a ticket
    assert counts["classified"] == 3 and counts["flags"] == 1 and counts["tickets"] == 2 and counts["kept_raw"] == 0
    assert counts["outbox"] >= 1  # the villager is answered, late
    assert (await _health(services))["kept_raw"] == 0
    async with services.sessions() as session:
        flag = (await session.exec(select(Flag))).one()
        ticket = (await session.exec(select(Ticket).where(Ticket.group_name == GROUP))).one()
        rows = {m.platform_id: m for m in (await session.exec(select(Message))).all()}
    # as if it had come in alone: the party member's banquet is high severity, placed in the village
    assert flag.message_id == banquet and flag.role == "party_member" and flag.severity == "high"
    assert flag.village == "石桥村" and flag.group_name == GROUP
    assert ticket.village == "石桥村" and ticket.category == "water"
    assert not rows["k1"].unassigned and rows["k1"].role == "party_member" and rows["k1"].village == "石桥村"
    assert rows["k3"].private and rows["k3"].village == "石桥村"

    again = await services.ingest.rerun_kept_raw()
    assert (again.handled, again.failed, again.remaining) == (0, 0, 0)


async def test_two_reruns_at_once_handle_each_message_once(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    breaks = Breaks(services, monkeypatch)
    for n in range(6):
        await services.ingest.handle(_message(f"d{n}", BANQUET if n % 2 else DEMAND, sender=f"村民{n}"))
    breaks.undo()
    first, second = await asyncio.gather(services.ingest.rerun_kept_raw(), services.ingest.rerun_kept_raw())
    assert first.handled + second.handled == 6 and first.failed == second.failed == 0
    counts = await _counts(services)
    assert counts["classified"] == 6 and counts["flags"] == 3 and counts["kept_raw"] == 0


async def test_a_message_that_fails_again_stays_kept_raw(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    Breaks(services, monkeypatch)
    await services.ingest.handle(_message("f1", DEMAND, sender="高某林"))
    result = await services.ingest.rerun_kept_raw()
    assert (result.handled, result.failed, result.remaining) == (0, 1, 1)
    assert (await _counts(services))["classified"] == 0


def test_reclassify_leaves_kept_raw_messages_to_reclassify_raw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-running only the rules over a kept-raw message would flag it under the wrong role and place and
    open no ticket: `reclassify` leaves it and says so; `reclassify --raw` runs it through the pipeline."""
    db = f"sqlite+aiosqlite:///{tmp_path / 'vw.db'}"
    config = str(Path(__file__).resolve().parents[2] / "config.example.toml")

    async def keep_raw() -> None:
        from bot.clock import SimulatedClock
        from bot.config import load_config
        from bot.services import build_services

        built = await build_services(
            load_config(Path(config)), clock=SimulatedClock(T0), db_url=db, media_root=tmp_path / "media"
        )
        try:

            async def fail(session: Any, inbound: Inbound) -> None:
                raise RuntimeError("workflow bug")

            built.ingest._workflow = type("Failing", (), {"handle": staticmethod(fail)})()  # type: ignore[assignment]
            await built.ingest.handle(_message("c1", BANQUET, sender="刘建国"))
        finally:
            await built.close()

    import threading

    thread = threading.Thread(target=lambda: asyncio.run(keep_raw()))
    thread.start()
    thread.join()

    assert run_cli("reclassify", "--config", config, "--db", db) == 0
    out = capsys.readouterr().out
    assert "重新分类 0 条消息" in out and "另有 1 条消息处理失败后原样保存" in out
    assert "reclassify --raw" in out

    assert run_cli("reclassify", "--raw", "--config", config, "--db", db) == 0
    out = capsys.readouterr().out
    assert "1 条已分类并交流程处理,0 条仍然失败" in out

    assert run_cli("flags", "--json", "--config", config, "--db", db) == 0
    flags = json.loads(capsys.readouterr().out)
    assert len(flags) == 1 and flags[0]["role"] == "party_member" and flags[0]["severity"] == "high"
