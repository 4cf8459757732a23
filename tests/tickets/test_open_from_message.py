"""立案 from a stored message (a search hit): the real ticket service, state machine and notifier, on both
backends. A group message becomes a village ticket acknowledged in its group; a clue is confidential and
never reaches the group; a message already in a ticket is refused."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.clock import CHINA, SimulatedClock
from bot.services import build_services
from bot.tickets import TicketStateError
from storage.models import Message, Outbox, Ticket, TicketEvent, TicketReporter
from tests.scenarios.harness import replay, scenario_config

BANQUET = "家父七十大寿,定于本周六中午在村委会旁饭店略备薄酒,恭候各位亲朋光临"


async def test_open_a_ticket_from_a_message(engine: AsyncEngine, db_url: str, tmp_path: Path) -> None:
    await replay(db_url, tmp_path, "s3_banquet.jsonl")  # a banquet flag: no ticket, nothing said in the group
    clock = SimulatedClock(datetime(2026, 9, 8, 9, 0, tzinfo=CHINA))
    services = await build_services(
        scenario_config(tmp_path / "data"), clock=clock, db_url=db_url, media_root=tmp_path / "media"
    )
    actions = services.workflow.actions
    try:
        async with services.sessions() as session:
            message = (await session.exec(select(Message).where(Message.text == BANQUET))).one()
            before = len((await session.exec(select(Outbox))).all())
        assert message.id is not None
        ticket_id = await actions.open_from_message(message.id, kind="demand", category=None, actor="刘干事")
        async with services.sessions() as session:
            ticket = await session.get(Ticket, ticket_id)
            reporters = (await session.exec(select(TicketReporter).where(TicketReporter.ticket_id == ticket_id))).all()
            events = (await session.exec(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id))).all()
            sent = (await session.exec(select(Outbox))).all()[before:]
        assert ticket is not None
        assert (ticket.kind, ticket.category, ticket.level, ticket.status) == ("demand", "other", "village", "open")
        assert (ticket.village, ticket.group_name, ticket.confidential) == ("石桥村", "石桥村监督服务群", False)
        assert ticket.opened_at == clock.now() and ticket.deadline is not None and ticket.deadline > clock.now()
        assert [r.name for r in reporters] == ["刘建国"]
        assert events[0].type == "opened"
        assert any(e.type == "note" and e.actor == "刘干事" and "搜索" in e.text for e in events)
        acks = [o for o in sent if o.is_group]
        assert len(acks) == 1 and f"#{ticket_id}" in (acks[0].text or "")

        with pytest.raises(TicketStateError, match=f"#{ticket_id}"):
            await actions.open_from_message(message.id, kind="consult", category=None, actor="刘干事")
        with pytest.raises(TicketStateError):
            await actions.open_from_message(message.id, kind="banquet", category=None, actor="刘干事")
    finally:
        await services.close()


async def test_a_clue_opened_from_a_group_message_stays_out_of_the_group(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    await replay(db_url, tmp_path, "s3_banquet.jsonl")
    clock = SimulatedClock(datetime(2026, 9, 8, 9, 0, tzinfo=CHINA))
    services = await build_services(
        scenario_config(tmp_path / "data"), clock=clock, db_url=db_url, media_root=tmp_path / "media"
    )
    try:
        async with services.sessions() as session:
            message = (await session.exec(select(Message).where(Message.text == BANQUET))).one()
            before = len((await session.exec(select(Outbox))).all())
        assert message.id is not None
        ticket_id = await services.workflow.actions.open_from_message(
            message.id, kind="clue", category=None, actor="刘干事"
        )
        async with services.sessions() as session:
            ticket = await session.get(Ticket, ticket_id)
            sent = (await session.exec(select(Outbox))).all()[before:]
        assert ticket is not None and ticket.confidential and ticket.kind == "clue" and ticket.level == "township"
        assert sent and not any(o.is_group for o in sent)  # staff and the sender hear of it privately only
    finally:
        await services.close()
