"""The one notifier: every message the bot queues is decided there, in templates, under cause-derived keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.clock import CHINA, SimulatedClock
from bot.services import build_services
from bot.staff import StaffBroadcaster
from bot.templates import Templates
from bot.tickets.notify import Event, Notifier, Origin, What
from dashboards.ports import ActionRefused
from storage.models import Group, Member, Outbox, Ticket
from tests.scenarios.harness import scenario_config

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 9, 7, 1, 0, tzinfo=UTC)


def _ticket(**values: Any) -> Ticket:
    base: dict[str, Any] = {
        "id": 12,
        "version": 3,
        "kind": "demand",
        "category": "water",
        "account": "demo",
        "group_name": "石桥村监督服务群",
        "county": "舒城县",
        "township": "城关镇",
        "village": "石桥村",
        "level": "village",
        "status": "open",
        "stage": "new",
        "assignee_name": "李书记",
        "assignee_platform_id": "li",
        "deadline": AT,
        "opened_at": AT,
        "text": "停水了",
    }
    return Ticket(**{**base, **values})


def _notifier() -> Notifier:
    return Notifier(outbox=None, templates=Templates(), directory=None, tz=UTC)  # type: ignore[arg-type]


def test_only_the_notifier_queues_outbox_messages() -> None:
    """No other module of the bot calls the outbox's queueing methods directly."""
    allowed = {ROOT / "bot" / "outbox.py", ROOT / "bot" / "tickets" / "notify.py"}
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "bot").rglob("*.py")
        if path not in allowed and re.search(r"\.to_(group|member)\(", path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize("what", list(What))
@pytest.mark.parametrize("origin", ["group", "private", "dashboard"])
def test_every_event_has_templates_and_keys_from_its_cause(what: What, origin: str) -> None:
    notifier = _notifier()
    member = Member(platform_id="li", name="李书记", role="cadre", group_name="石桥村监督服务群")
    group = Group(name="石桥村监督服务群", county="舒城县", township="城关镇", village="石桥村")
    source = _ticket(id=7)
    cause = None if origin == "dashboard" else Origin(99, member, group if origin == "group" else None)
    event = Event(what, _ticket(), origin=cause, actor="李书记", other=source, values={"rating": "satisfied"})
    first, again = notifier.deliveries(event), notifier.deliveries(event)
    assert first and first == again  # the same cause gives the same dedupe keys (exactly once)
    names = set(Templates().names())
    for delivery in first:
        assert delivery.template in names
        assert ("99" in delivery.key) or ("12" in delivery.key), delivery
    keys = [d.key for d in first]
    assert len(keys) == len(set(keys))


def test_words_use_display_names_and_chinese_dates() -> None:
    notifier = _notifier()
    values = notifier.values(Event(What.ESCALATED, _ticket(assignee_name=None, level="township"), actor="刘干事"))
    assert values["assignee"] == "乡镇纪委"
    assert values["deadline"] == "9月7日01:00"
    text = notifier.render("ticket_escalated", **values)
    assert "township" not in text and "None" not in text


async def test_s8_notice_reaches_every_chosen_group_and_a_clarification_one(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    """S8 through the notifier, on both backends: a notice to three groups (a quiet one included: staff chose
    it), a clarification to one group only, each recorded once in the outbox."""
    services = await build_services(
        scenario_config(tmp_path / "data"),
        clock=SimulatedClock(datetime(2026, 9, 7, 9, 0, tzinfo=CHINA)),
        db_url=db_url,
        media_root=tmp_path / "media",
    )
    try:
        broadcaster = StaffBroadcaster(services)
        groups = ["石桥村监督服务群", "河东村监督服务群", "新河村监督服务群"]
        await broadcaster.broadcast(actor="刘干事", kind="notice", text="明天上午停水检修", groups=groups)
        with pytest.raises(ActionRefused, match="只能发到一个群"):
            await broadcaster.broadcast(actor="刘干事", kind="clarification", text="网传消息不实", groups=groups[:2])
        await broadcaster.broadcast(actor="刘干事", kind="clarification", text="网传消息不实", groups=groups[:1])
        async with services.sessions() as session:
            rows = list((await session.exec(select(Outbox).order_by(col(Outbox.id)))).all())
        assert [(r.chat_name, r.text) for r in rows] == [
            *((name, "【通知】明天上午停水检修") for name in groups),
            ("石桥村监督服务群", "【澄清】网传消息不实"),
        ]
        assert all(r.is_group and r.dedupe_key.startswith("broadcast:") for r in rows)
    finally:
        await services.close()
