"""The workflow against a real database (SQLite and PostgreSQL): concurrent resolutions, idempotent jobs,
dashboard actions."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, select

from bot.clock import CHINA, SimulatedClock
from bot.directory import Directory, RosterEntry
from bot.ingest import Ingest
from bot.media import MediaStore
from bot.messages import IncomingMessage, MessageKind
from bot.outbox import OutboxService
from bot.templates import Templates
from bot.tickets import TicketNotFound, TicketStateError, TicketWorkflow, tickets_as_json, tickets_as_text
from bot.tickets.service import Actor, Applied
from classifiers import ClassifierHolder
from storage.engine import SessionFactory, make_session_factory
from storage.models import Outbox, Ticket, TicketEvent
from storage.repos import tickets as repo
from tests.scenarios.harness import ROOT, scenario_config

GROUP = "石桥村监督服务群"
T0 = datetime(2026, 9, 28, 10, 0, tzinfo=CHINA)


@pytest.fixture(scope="module")
def holder() -> ClassifierHolder:
    return ClassifierHolder(ROOT / "rules")


@dataclass
class World:
    sessions: SessionFactory
    clock: SimulatedClock
    ingest: Ingest
    workflow: TicketWorkflow
    counter: list[int]

    async def say(self, sender: str, text: str, *, group: str | None = GROUP, at: datetime | None = None) -> None:
        if at is not None:
            self.clock.advance_to(at)
        self.counter[0] += 1
        await self.ingest.handle(
            IncomingMessage(
                platform_id=f"m{self.counter[0]}",
                account="demo",
                at=self.clock.now(),
                kind=MessageKind.TEXT,
                text=text,
                sender_id=sender,
                sender_name=sender,
                group_id=group,
                group_topic=group,
            )
        )

    async def count(self, model: type[Outbox] | type[TicketEvent]) -> int:
        async with self.sessions() as session:
            return int((await session.exec(select(func.count()).select_from(model))).one())


@pytest.fixture
async def world(engine: AsyncEngine, holder: ClassifierHolder, tmp_path: Path) -> AsyncIterator[World]:
    config = scenario_config(tmp_path / "data")
    sessions = make_session_factory(engine)
    clock = SimulatedClock(T0)
    directory = Directory(config)
    people = [
        RosterEntry("李书记", "cadre", "石桥村", "城关镇", "舒城县", GROUP, is_head=True),
        RosterEntry("王主任", "cadre", "石桥村", "城关镇", "舒城县", GROUP, categories=("water", "road_traffic")),
        RosterEntry("高某林", "villager", "石桥村", "城关镇", "舒城县", GROUP),
        RosterEntry("刘干事", "staff", "", "城关镇", "舒城县"),
        RosterEntry("周主任", "staff", "", "", "舒城县"),
    ]
    async with sessions() as session:
        await directory.sync_config(session)
        for person in people:
            await directory.add_member(session, person)
        await session.commit()
    outbox = OutboxService(session_factory=sessions, clock=clock, config=config)
    media = MediaStore(tmp_path / "media")
    workflow = TicketWorkflow(
        session_factory=sessions,
        outbox=outbox,
        templates=Templates(),
        config=config,
        clock=clock,
        classifiers=holder,
        media=media,
        directory=directory,
    )
    ingest = Ingest(
        session_factory=sessions, classifiers=holder, directory=directory, workflow=workflow, media=media, clock=clock
    )
    yield World(sessions, clock, ingest, workflow, [0])


async def test_two_cadres_resolving_at_once_resolve_once(world: World) -> None:
    await world.say("高某林", "村口那段路塌了一个大坑,车子过不去")
    service = world.workflow.service
    at = world.clock.now()
    first, second = world.sessions(), world.sessions()

    async def resolve(session: object, cadre: str, note: str) -> object:
        result = await service.resolve(session, 1, actor=Actor(cadre), at=at, note=note, message_id=None)  # type: ignore[arg-type]
        await session.commit()  # type: ignore[attr-defined]
        return result

    try:
        results = await asyncio.gather(resolve(first, "王主任", "已填平"), resolve(second, "李书记", "已修好"))
    finally:
        await first.close()
        await second.close()
    outcomes = sorted(type(r).__name__ if isinstance(r, Applied) else str(r.reason) for r in results)  # type: ignore[attr-defined]
    assert outcomes == ["Applied", "resolved"]
    async with world.sessions() as session:
        events = [e for e in await repo.events(session, 1) if e.type == "resolved"]
        ticket = await repo.get_ticket(session, 1)
    assert len(events) == 1
    assert ticket is not None and ticket.status == "resolved"


async def test_version_check_lets_one_of_two_stale_writers_through(world: World) -> None:
    await world.say("高某林", "村口那段路塌了一个大坑,车子过不去")
    first, second = world.sessions(), world.sessions()
    barrier = asyncio.Barrier(2)

    async def write(session: object, status: str) -> bool:
        assert hasattr(session, "commit")
        ticket = await repo.get_ticket(session, 1)  # type: ignore[arg-type]
        assert ticket is not None
        await barrier.wait()  # both have read the same version
        old = ticket.version
        changed = await repo.update_ticket(session, 1, version=old, values={"status": status})  # type: ignore[arg-type]
        await session.commit()  # type: ignore[attr-defined]
        assert changed is None or (changed.status == status and changed.version == old + 1)
        return changed is not None

    try:
        outcomes = await asyncio.gather(write(first, "resolved"), write(second, "accepted"))
    finally:
        await first.close()
        await second.close()
    assert sorted(outcomes) == [False, True]


async def test_daily_check_twice_acts_once(world: World) -> None:
    await world.say("高某林", "村口那段路塌了一个大坑,车子过不去", at=T0)
    jobs = world.workflow.scheduled
    remind_at = datetime(2026, 10, 14, 8, 30, tzinfo=CHINA)
    world.clock.advance_to(remind_at)
    await jobs.daily_check(remind_at)
    outbox, events = await world.count(Outbox), await world.count(TicketEvent)
    await jobs.daily_check(remind_at)
    assert (await world.count(Outbox), await world.count(TicketEvent)) == (outbox, events)
    overdue_at = datetime(2026, 10, 17, 8, 30, tzinfo=CHINA)
    world.clock.advance_to(overdue_at)
    await jobs.daily_check(overdue_at)
    outbox, events = await world.count(Outbox), await world.count(TicketEvent)
    await jobs.daily_check(overdue_at)
    await jobs.daily_digest(overdue_at + timedelta(minutes=30))
    digest_rows = await world.count(Outbox)
    await jobs.daily_digest(overdue_at + timedelta(minutes=30))
    assert await world.count(Outbox) == digest_rows
    assert await world.count(TicketEvent) == events
    async with world.sessions() as session:
        [ticket] = await tickets_as_json(session)
    assert (ticket["level"], ticket["overdue"], ticket["assignee"]) == ("township", True, "刘干事")
    assert [e["type"] for e in ticket["events"]].count("reminded") == 1
    assert [e["type"] for e in ticket["events"]].count("escalated") == 1
    assert "#1 road_traffic/" in tickets_as_text([ticket]) or "#1 demand/road_traffic" in tickets_as_text([ticket])


async def test_overdue_escalation_climbs_to_county_then_stops(world: World) -> None:
    await world.say("高某林", "村口那段路塌了一个大坑,车子过不去", at=T0)
    jobs = world.workflow.scheduled
    levels = []
    for day in (
        datetime(2026, 10, 17, 8, 30, tzinfo=CHINA),
        datetime(2026, 11, 1, 8, 30, tzinfo=CHINA),
        datetime(2026, 11, 20, 8, 30, tzinfo=CHINA),
    ):
        world.clock.advance_to(day)
        await jobs.daily_check(day)
        async with world.sessions() as session:
            ticket = await repo.get_ticket(session, 1)
            assert ticket is not None
            levels.append((ticket.level, ticket.assignee_name, ticket.overdue))
    assert levels == [("township", "刘干事", True), ("county", "周主任", True), ("county", "周主任", True)]


async def test_dashboard_actions(world: World) -> None:
    await world.say("高某林", "村口那段路塌了一个大坑,车子过不去", at=T0)
    actions = world.workflow.actions
    await actions.add_note(1, actor="admin", text="已电话联系")
    await actions.approve_extension(1, actor="刘干事", working_days=3)
    await actions.transfer(1, to_member="李书记", actor="刘干事")
    png = (ROOT / "tests/scenarios/scripts/pipe_fixed.png").read_bytes()
    await actions.upload_photo(1, actor="李书记", image=png, filename="fixed.png")
    async with world.sessions() as session:
        [ticket] = await tickets_as_json(session)
    assert ticket["status"] == "open" and len(ticket["photos"]) == 1  # uploading never resolves
    await actions.resolve(1, actor="李书记", note="已填平")
    with pytest.raises(TicketNotFound):
        await actions.add_note(99, actor="admin", text="x")
    with pytest.raises(TicketStateError):
        await actions.escalate(1, actor="刘干事", reason="再提级")  # resolved
    async with world.sessions() as session:
        [ticket] = await tickets_as_json(session)
        group_posts = list((await session.exec(select(Outbox).where(Outbox.chat_name == GROUP))).all())
    assert ticket["deadline"] == "2026-10-21T17:30:00+08:00"  # Friday 10-16 + 3 working days
    assert ticket["assignee"] == "李书记" and ticket["status"] == "resolved" and len(ticket["photos"]) == 1
    assert [e["type"] for e in ticket["events"]][2:] == ["note", "extended", "transferred", "photo", "resolved"]
    assert ticket["stage"] == "awaiting_rating"
    resolution = [row for row in group_posts if row.image_path]
    assert len(resolution) == 1 and "已填平" in (resolution[0].text or "")


async def test_quiet_group_gets_no_acknowledgement(world: World) -> None:
    quiet = "新河村监督服务群"
    async with world.sessions() as session:
        await Directory(scenario_config(Path("/tmp"))).add_member(
            session, RosterEntry("郑书记", "cadre", "新河村", "干汊河镇", "舒城县", quiet, is_head=True)
        )
        await session.commit()
    await world.say("钱师傅", "村口那段路塌了一个大坑,车子过不去", group=quiet, at=T0)
    async with world.sessions() as session:
        rows = list((await session.exec(select(Outbox))).all())
        [ticket] = await tickets_as_json(session)
    assert ticket["village"] == "新河村" and ticket["assignee"] == "郑书记"
    assert [row.chat_name for row in rows] == ["private:郑书记"]


async def test_staff_split_a_report_off_and_merge_it_back(world: World) -> None:
    await world.say("高某林", "张湾组停水三天了,老人小孩怎么办", at=T0)
    await world.say("张大妈", "张湾组这边也停水了,三天没水了", at=T0 + timedelta(hours=1))
    actions = world.workflow.actions
    new_id = await actions.split(1, reporter="张大妈", actor="刘干事")
    async with world.sessions() as session:
        tickets = {t["id"]: t for t in await tickets_as_json(session)}
    assert new_id == 2 and tickets[1]["reporters"] == ["高某林"] and tickets[2]["reporters"] == ["张大妈"]
    assert tickets[2]["text"] == "张湾组这边也停水了,三天没水了" and tickets[2]["status"] == "open"
    assert [e["type"] for e in tickets[1]["events"]][-1] == "split"
    with pytest.raises(TicketStateError, match="只有一位反映人"):
        await actions.split(1, reporter="高某林", actor="刘干事")
    await actions.merge(2, into=1, actor="刘干事")
    async with world.sessions() as session:
        tickets = {t["id"]: t for t in await tickets_as_json(session)}
        group_posts = [row.text or "" for row in (await session.exec(select(Outbox))).all() if row.chat_name == GROUP]
    assert tickets[1]["reporters"] == ["高某林", "张大妈"]
    assert (tickets[2]["status"], tickets[2]["stage"], tickets[2]["reporters"]) == ("closed", "merged", [])
    assert any("已单独立为工单 #2" in text for text in group_posts)
    assert any("工单 #2 与本工单为同一问题" in text and "现共有2位群众反映" in text for text in group_posts)
    with pytest.raises(TicketStateError, match="已办结归档"):
        await actions.merge(2, into=1, actor="刘干事")


async def test_staff_act_on_a_confidential_clue_and_nothing_reaches_a_group(world: World) -> None:
    await world.say("高某林", "村主任把低保名额给了他亲戚,他家三套房还吃低保", group=None, at=T0)
    actions = world.workflow.actions
    async with world.sessions() as session:
        [ticket] = await tickets_as_json(session)
    assert ticket["confidential"] and ticket["kind"] in ("clue", "demand")
    assert set(await actions.available(1)) >= {"accept", "progress", "resolve", "escalate", "extend", "note"}
    await actions.accept(1, actor="刘干事")
    await actions.progress(1, actor="刘干事", text="已调取低保档案")
    await actions.approve_extension(1, actor="刘干事", working_days=2)
    await actions.escalate(1, actor="刘干事", reason="涉及村主任,提交县纪委")
    await actions.resolve(1, actor="周主任", note="经核查情况属实,已责令整改")
    with pytest.raises(TicketStateError, match="已办结"):
        await actions.escalate(1, actor="周主任", reason="再提级")
    await actions.close(1, actor="周主任", text="核查完毕")
    assert "escalate" not in await actions.available(1) and "extend" not in await actions.available(1)
    await actions.reopen(1, actor="周主任", reason="群众补充了新材料")
    async with world.sessions() as session:
        [ticket] = await tickets_as_json(session)
        rows = list((await session.exec(select(Outbox))).all())
    assert [r for r in rows if r.is_group] == []  # a confidential ticket never produces a group message
    assert any("已责令整改" in (r.text or "") and r.chat_name == "private:高某林" for r in rows)
    assert (ticket["status"], ticket["stage"], ticket["level"]) == ("accepted", "in_progress", "county")
    types = [e["type"] for e in ticket["events"]]
    assert [
        t for t in types if t in ("accepted", "progress", "extended", "escalated", "resolved", "closed", "reopened")
    ] == ["accepted", "progress", "extended", "escalated", "resolved", "closed", "reopened"]


async def test_high_severity_flags_alert_staff_at_once_and_group_when_many(world: World) -> None:
    invitations = [
        "犬子新婚,定于本周六在村委会旁饭店略备薄酒,敬请光临",
        "小女升学,周日中午摆几桌升学宴,请大家赏光",
        "家父七十大寿,周六中午略备薄酒恭候亲朋",
        "乔迁新居,明晚请各位来家里喝喜酒",
        "孙子满月,后天办满月酒欢迎大家来",
    ]
    for minute, text in enumerate(invitations):
        await world.say("李书记", text, at=T0 + timedelta(minutes=minute))
    async with world.sessions() as session:
        rows = [r for r in (await session.exec(select(Outbox).order_by(col(Outbox.id)))).all()]
    to_staff = [r for r in rows if r.chat_name == "private:刘干事"]
    single = [r for r in to_staff if r.dedupe_key.startswith("alert:")]
    grouped = [r for r in to_staff if r.dedupe_key.startswith("alert-group:")]
    assert len(single) == 3 and all("即时预警" in (r.text or "") and "村干部" in (r.text or "") for r in single)
    assert single[0].not_before == T0  # at once, not at tomorrow's digest
    assert len(grouped) == 1 and "即时预警汇总" in (grouped[0].text or "")
    assert "乔迁新居" in (grouped[0].text or "") and "孙子满月" in (grouped[0].text or "")
    assert grouped[0].not_before == T0 + timedelta(minutes=10)
    assert not [r for r in rows if r.is_group]  # nothing said in the group


async def test_two_staff_closing_at_once_one_wins_the_other_is_told(world: World) -> None:
    await world.say("高某林", "村口那段路塌了一个大坑,车子过不去", at=T0)
    actions = world.workflow.actions
    await actions.resolve(1, actor="刘干事", note="已填平")
    await actions.waive_photo(1, actor="刘干事", reason="现场已恢复通行")
    results = await asyncio.gather(
        actions.close(1, actor="刘干事", text="归档"),
        actions.close(1, actor="周主任", text="归档"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, TicketStateError)]
    assert results.count(None) == 1 and len(refused) == 1, results
    assert "已办结归档" in str(refused[0]) or "同时修改" in str(refused[0])
    async with world.sessions() as session:
        [ticket] = await tickets_as_json(session)
    assert [e["type"] for e in ticket["events"]].count("closed") == 1
    assert (ticket["status"], ticket["stage"]) == ("closed", "no_answer")


async def _snapshot(world: World) -> tuple[Any, ...]:
    async with world.sessions() as session:
        [ticket] = await tickets_as_json(session)
        version = (await session.exec(select(Ticket.version))).one()
    return version, ticket["status"], ticket["stage"], ticket["deadline"], len(ticket["events"])


async def test_an_action_the_state_does_not_allow_is_refused_in_chinese_and_changes_nothing(world: World) -> None:
    """From the dashboard and from chat, on a closed ticket: a Chinese refusal, the ticket as it was."""
    await world.say("高某林", "村口那段路塌了一个大坑,车子过不去", at=T0)
    actions = world.workflow.actions
    await actions.resolve(1, actor="刘干事", note="已填平")
    await actions.waive_photo(1, actor="刘干事", reason="现场已恢复通行")
    await actions.close(1, actor="刘干事", text="归档")
    allowed = set(await actions.available(1))
    attempts = {
        "accept": lambda: actions.accept(1, actor="刘干事"),
        "progress": lambda: actions.progress(1, actor="刘干事", text="再看看"),
        "resolve": lambda: actions.resolve(1, actor="刘干事", note="又修了"),
        "waive_photo": lambda: actions.waive_photo(1, actor="刘干事", reason="不用照片"),
        "close": lambda: actions.close(1, actor="刘干事", text="再归档"),
        "escalate": lambda: actions.escalate(1, actor="刘干事", reason="提级"),
        "extend": lambda: actions.approve_extension(1, actor="刘干事", working_days=3),
        "split": lambda: actions.split(1, reporter="高某林", actor="刘干事"),
    }
    before, outbox_before = await _snapshot(world), await world.count(Outbox)
    for op, attempt in attempts.items():
        if op in allowed:
            continue
        with pytest.raises(TicketStateError) as refused:
            await attempt()
        assert re.search(r"[\u4e00-\u9fff]{4}", str(refused.value)), (op, str(refused.value))
        assert "#1" in str(refused.value), (op, str(refused.value))
    assert await _snapshot(world) == before and await world.count(Outbox) == outbox_before
    for text in ("#1 受理", "#1 办结 又修好了", "#1 转镇 需要协调"):
        await world.say("王主任", text)
    assert await _snapshot(world) == before
    async with world.sessions() as session:
        replies = [r for r in (await session.exec(select(Outbox).order_by(col(Outbox.id)))).all()][outbox_before:]
    assert len(replies) == 3 and all(r.dedupe_key.startswith("reply:") for r in replies)
    assert all("工单 #1" in (r.text or "") and re.search(r"[\u4e00-\u9fff]{4}", r.text or "") for r in replies)


async def test_staff_commands_typed_in_a_group_about_a_confidential_ticket_are_answered_privately(
    world: World,
) -> None:
    """The notifier's rule, whatever the chat: a confidential ticket never produces a group message."""
    await world.say("高某林", "村主任把低保名额给了他亲戚,他家三套房还吃低保", group=None, at=T0)
    for text in ("#1 受理", "#1 已调取低保档案", "#1 延期 3个工作日", "#1 转县 涉及村主任", "#1 办结 情况属实"):
        await world.say("刘干事", text, group=GROUP)
    async with world.sessions() as session:
        [ticket] = await tickets_as_json(session)
        rows = list((await session.exec(select(Outbox))).all())
    assert ticket["confidential"] and ticket["status"] == "resolved"
    assert [r.text for r in rows if r.is_group] == []
    assert any(r.chat_name == "private:刘干事" and "工单 #1" in (r.text or "") for r in rows), [
        (r.chat_name, r.text) for r in rows
    ]
    assert any(r.chat_name == "private:高某林" and "情况属实" in (r.text or "") for r in rows)
