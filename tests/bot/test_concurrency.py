"""Many first messages from new senders handled at once, on both backends (issue 15).

Each new villager's first posts arrive together, in one group, across groups and in private: every message
must be stored, classified and flagged (or ticketed) as if it had come alone, with no error in the log.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from bot.messages import IncomingMessage, MessageKind
from bot.services import Services
from storage.models import Classification, Flag, Group, Member, Message, Ticket, TicketReporter
from tests.bot.conftest import T0

GROUPS = ("石桥村监督服务群", "河东村监督服务群", "七门堰村监督服务群", "新河村监督服务群")
BANQUET = "本周六家父七十大寿,中午在村部对面农家乐摆几桌,请亲朋好友赏光"
DEMAND = "村口那段路坑坑洼洼好几个月了,下雨天根本没法走,希望尽快修一修"
CHAT = "大家早上好"


def _message(n: int, *, sender: str, text: str, group: str | None) -> IncomingMessage:
    return IncomingMessage(
        platform_id=f"m{n}",
        account="demo",
        at=T0,
        kind=MessageKind.TEXT,
        text=text,
        sender_id=f"wxid_{sender}",
        sender_name=sender,
        group_id=group,
        group_topic=group,
    )


def _burst(senders: int) -> list[IncomingMessage]:
    """Each new sender's first two posts at once: a banquet or a demand and a greeting, in their group
    (two senders share each group), plus one private message from every third sender."""
    messages: list[IncomingMessage] = []
    for index in range(senders):
        sender = f"新村民{index:02d}"
        group = GROUPS[index % len(GROUPS)]
        first = BANQUET if index % 2 == 0 else DEMAND
        messages.append(_message(len(messages), sender=sender, text=first, group=group))
        messages.append(_message(len(messages), sender=sender, text=CHAT, group=group))
        if index % 3 == 0:
            messages.append(_message(len(messages), sender=sender, text=CHAT, group=None))
    return messages


async def test_concurrent_first_messages_from_new_senders_are_all_classified(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    burst = _burst(24)
    caplog.set_level(logging.WARNING)
    ids = await asyncio.gather(*(services.ingest.handle(m) for m in burst))

    assert all(i is not None for i in ids)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert services.ingest.stats.total["failed"] == 0
    async with services.sessions() as session:
        messages = (await session.exec(select(Message))).all()
        classified = set((await session.exec(select(Classification.message_id))).all())
        flags = (await session.exec(select(Flag))).all()
        tickets = (await session.exec(select(Ticket))).all()
        reporters = (await session.exec(select(TicketReporter))).all()
        people = (await session.exec(select(Member).where(col(Member.platform_id).startswith("wxid_新村民")))).all()
        groups = (await session.exec(select(func.count()).select_from(Group))).one()
    assert len(messages) == len(burst)
    assert {m.id for m in messages} == classified
    # every message knows its village and its sender, as a message handled alone does
    by_text = {m.platform_id: m for m in messages}
    for incoming in burst:
        stored = by_text[incoming.platform_id]
        if incoming.group_id is not None:
            assert stored.village and not stored.unassigned
    # one person per new sender; placed in their group's village unless a private message came first
    assert len(people) == 24 and len({p.platform_id for p in people}) == 24
    assert all(p.role == "villager" for p in people)
    private = {m.sender_id for m in burst if m.group_id is None}
    assert all(p.village for p in people if p.platform_id not in private)
    assert groups == len(GROUPS)
    banquets = [m for m in burst if m.text == BANQUET]
    assert sorted(f.sender_name for f in flags) == sorted(m.sender_name for m in banquets)
    assert all("banquet" in f.labels for f in flags)
    # every demand is on a ticket (similar ones in a group merge into one, each poster a reporter)
    demands = [m for m in burst if m.text == DEMAND]
    assert {r.message_id for r in reporters} == {by_text[m.platform_id].id for m in demands}
    assert {t.village for t in tickets} == {by_text[m.platform_id].village for m in demands}


async def test_first_messages_of_an_unknown_room_at_once_make_one_group(services: Services) -> None:
    burst = [
        IncomingMessage(
            platform_id=f"r{n}",
            account="demo",
            at=T0,
            kind=MessageKind.TEXT,
            text=BANQUET if n % 2 else CHAT,
            sender_id=f"wxid_{n}",
            sender_name=f"外村人{n}",
            group_id="room-new@chatroom",
            group_topic="外村闲聊群",
        )
        for n in range(12)
    ]
    ids = await asyncio.gather(*(services.ingest.handle(m) for m in burst))
    assert all(i is not None for i in ids)
    async with services.sessions() as session:
        rooms = (await session.exec(select(Group).where(Group.name == "外村闲聊群"))).all()
        classified = (await session.exec(select(func.count()).select_from(Classification))).one()
        flags = (await session.exec(select(func.count()).select_from(Flag))).one()
    assert len(rooms) == 1 and rooms[0].platform_id == "room-new@chatroom" and not rooms[0].configured
    assert classified == 12 and flags == 6
    assert services.ingest.stats.total["failed"] == 0
