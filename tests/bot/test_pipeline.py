"""The inbound pipeline, the outbox sender and the scheduler, on both storage backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import CHINA, SimulatedClock
from bot.config import AccountConfig, Config, PacingConfig, load_config
from bot.directory import Directory, RosterEntry
from bot.ingest import Inbound, Ingest
from bot.media import MediaStore
from bot.messages import IncomingMessage, MessageKind
from bot.outbox import OutboxService
from bot.scheduler import Job, Scheduler, daily
from classifiers import ClassifierHolder
from storage.engine import SessionFactory, make_session_factory
from storage.models import Classification, Flag, Group, Message, Outbox
from storage.repos import directory as directory_repo
from tests.bot.fakes import RecordingAdapter

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 9, 7, 6, 48, tzinfo=CHINA)


@pytest.fixture(scope="module")
def holder() -> ClassifierHolder:
    return ClassifierHolder(ROOT / "rules")


@dataclass
class World:
    sessions: SessionFactory
    clock: SimulatedClock
    ingest: Ingest
    outbox: OutboxService
    seen: list[Inbound]
    config: Config


class Recorder:
    """A workflow that records what it was handed and queues one reply per message."""

    def __init__(self, outbox: OutboxService, seen: list[Inbound], *, explode_on: str | None = None) -> None:
        self.outbox, self.seen, self.explode_on = outbox, seen, explode_on

    def wants(self, inbound: Inbound) -> bool:
        return True

    async def handle(self, session: AsyncSession, inbound: Inbound) -> None:
        if self.explode_on and self.explode_on in inbound.message.text:
            raise RuntimeError("workflow bug")
        self.seen.append(inbound)
        if inbound.group is not None:
            await self.outbox.to_group(
                session, key=f"echo:{inbound.message_id}", group=inbound.group, text=f"收到:{inbound.message.text}"
            )


@pytest.fixture
async def world(engine: AsyncEngine, holder: ClassifierHolder, tmp_path: Path) -> AsyncIterator[World]:
    config = load_config(ROOT / "config.example.toml")
    sessions = make_session_factory(engine)
    clock = SimulatedClock(T0)
    directory = Directory(config)
    async with sessions() as session:
        await directory.sync_config(session)
        await directory.add_member(
            session, RosterEntry("李书记", "cadre", "石桥村", "城关镇", "舒城县", "石桥村监督服务群")
        )
        await directory.add_member(
            session, RosterEntry("刘建国", "party_member", "石桥村", "城关镇", "舒城县", "石桥村监督服务群")
        )
        await session.commit()
    outbox = OutboxService(session_factory=sessions, clock=clock, config=config)
    seen: list[Inbound] = []
    ingest = Ingest(
        session_factory=sessions,
        classifiers=holder,
        directory=directory,
        workflow=Recorder(outbox, seen, explode_on="💥"),
        media=MediaStore(tmp_path / "media"),
        clock=clock,
    )
    yield World(sessions, clock, ingest, outbox, seen, config)


def incoming(
    platform_id: str, text: str, *, sender: str = "高某林", group: str | None = "石桥村监督服务群", **kw: object
) -> IncomingMessage:
    values: dict[str, object] = {
        "platform_id": platform_id,
        "account": "demo",
        "at": T0,
        "kind": MessageKind.TEXT,
        "text": text,
        "sender_id": sender,
        "sender_name": sender,
        "group_id": group,
        "group_topic": group,
    }
    values.update(kw)
    return IncomingMessage(**values)  # type: ignore[arg-type]


async def test_message_is_stored_classified_and_handed_on_once(world: World) -> None:
    first = await world.ingest.handle(incoming("m1", "石桥村张湾组连续三天停水了,老人小孩怎么办"))
    again = await world.ingest.handle(incoming("m1", "石桥村张湾组连续三天停水了,老人小孩怎么办"))
    assert first is not None and again is None
    assert len(world.seen) == 1
    inbound = world.seen[0]
    assert inbound.sender.role == "villager" and inbound.group is not None and inbound.group.village == "石桥村"
    assert "demand" in inbound.result.labels and inbound.result.category == "water"
    async with world.sessions() as session:
        stored = (await session.exec(select(Message))).all()
        assert len(stored) == 1 and stored[0].village == "石桥村" and not stored[0].unassigned
        classification = await session.get(Classification, first)
        assert classification is not None and classification.category == "water"
        assert (await session.exec(select(Outbox))).one().dedupe_key == f"echo:{first}"


async def test_red_flags_are_flagged_with_role_and_severity(world: World) -> None:
    text = "本周六家父七十大寿,中午在村部对面农家乐摆几桌,请亲朋好友赏光"
    message_id = await world.ingest.handle(incoming("m2", text, sender="刘建国"))
    async with world.sessions() as session:
        flag = (await session.exec(select(Flag))).one()
    assert flag.message_id == message_id
    assert "banquet" in flag.labels and flag.severity == "high" and flag.role == "party_member"
    assert flag.rules and not flag.confidential


async def test_unknown_group_and_sender_are_stored_unassigned(world: World) -> None:
    message_id = await world.ingest.handle(
        incoming("m3", "大家好", sender="陌生人", group="room-x", group_topic="外村群")
    )
    async with world.sessions() as session:
        message = await session.get(Message, message_id)
        group = await directory_repo.get_group(session, "外村群")
    assert message is not None and message.unassigned and message.group_name == "外村群"
    assert group is not None and not group.configured and group.platform_id == "room-x"


async def test_a_failing_workflow_keeps_the_message_raw_and_the_bot_going(world: World) -> None:
    bad = await world.ingest.handle(incoming("m4", "💥 这条会让流程出错"))
    good = await world.ingest.handle(incoming("m5", "路灯坏了一个礼拜了有人管没有"))
    assert bad is not None and good is not None
    async with world.sessions() as session:
        raw = await session.get(Message, bad)
        assert raw is not None and raw.unassigned and raw.text.startswith("💥")
        assert await session.get(Classification, bad) is None
    assert world.ingest.stats.total["failed"] == 1 and world.ingest.stats.total["handled"] == 1


async def test_photo_is_stored_and_a_failed_download_is_survived(world: World, tmp_path: Path) -> None:
    photo = b"\xff\xd8\xff" + b"x" * 5000
    ok = await world.ingest.handle(
        incoming("p1", "", kind=MessageKind.IMAGE, media=photo, attachment_ref="a", attachment_name="fix.jpg")
    )
    adapter = RecordingAdapter()
    failed = await world.ingest.handle(
        incoming("p2", "", kind=MessageKind.IMAGE, attachment_ref="missing"), download=adapter.download
    )
    async with world.sessions() as session:
        stored = await session.get(Message, ok)
        lost = await session.get(Message, failed)
    assert stored is not None and stored.media_path is not None and stored.media_path.endswith(".jpg")
    assert (tmp_path / "media" / stored.media_path).read_bytes() == photo
    assert lost is not None and lost.media_path is None and lost.kind == "image"


async def test_outbox_sends_each_reply_once_and_retries_failures(world: World) -> None:
    adapter = RecordingAdapter(fail_next=1)
    await world.ingest.handle(incoming("o1", "第一条"))
    await world.ingest.handle(incoming("o2", "第二条"))
    assert await world.outbox.send_due({"demo": adapter}, pace=False) == 1  # first send failed, second went
    assert [m.text for m in adapter.sent] == ["收到:第二条"]
    world.clock.advance_to(T0 + timedelta(seconds=5))
    assert await world.outbox.send_due({"demo": adapter}, pace=False) == 1
    assert await world.outbox.send_due({"demo": adapter}, pace=False) == 0
    assert sorted(m.text or "" for m in adapter.sent) == ["收到:第一条", "收到:第二条"]
    assert all(m.chat_name == "石桥村监督服务群" and m.is_group for m in adapter.sent)


async def test_a_second_sender_after_a_crash_does_not_double(world: World) -> None:
    await world.ingest.handle(incoming("c1", "会不会重复发"))
    first, second = RecordingAdapter(), RecordingAdapter()
    other = OutboxService(session_factory=world.sessions, clock=world.clock, config=world.config)
    assert await world.outbox.send_due({"demo": first}, pace=False) == 1
    assert await other.send_due({"demo": second}, pace=False) == 0  # a restarted process finds it sent
    assert len(first.sent) == 1 and second.sent == []


async def test_pacing_waits_between_messages_to_one_group(engine: AsyncEngine) -> None:
    from bot.clock import SystemClock

    config = Config(
        accounts=[AccountConfig(name="demo", pacing=PacingConfig(per_group_seconds=0.3, per_account_seconds=0))]
    )
    sessions = make_session_factory(engine)
    outbox = OutboxService(session_factory=sessions, clock=SystemClock(), config=config)
    async with sessions() as session:
        group = Group(name="群", platform_id="群")
        session.add(group)
        await session.flush()
        for index in range(3):
            await outbox.to_group(session, key=f"k{index}", group=group, text=str(index))
        await session.commit()
    adapter = RecordingAdapter()
    import time as _time

    started = _time.perf_counter()
    assert await outbox.send_due({"demo": adapter}, pace=True) == 3
    assert _time.perf_counter() - started >= 0.55  # two gaps of 0.3 s
    assert [m.text for m in adapter.sent] == ["0", "1", "2"]


async def test_scheduler_runs_due_jobs_in_order_once(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    clock = SimulatedClock(datetime(2026, 9, 7, 7, 0, tzinfo=CHINA))
    ran: list[tuple[str, datetime]] = []

    def job(name: str, at: time) -> Job:
        async def run(when: datetime) -> None:
            ran.append((name, when))

        return Job(name, daily(at, "Asia/Shanghai"), run)

    scheduler = Scheduler(
        session_factory=sessions, clock=clock, jobs=[job("check", time(8, 30)), job("digest", time(9, 0))]
    )
    assert await scheduler.run_due() == 0
    clock.advance_to(datetime(2026, 9, 9, 8, 45, tzinfo=CHINA))
    assert await scheduler.run_due() == 5
    assert [(n, w.day, w.hour) for n, w in ran] == [
        ("check", 7, 8),
        ("digest", 7, 9),
        ("check", 8, 8),
        ("digest", 8, 9),
        ("check", 9, 8),
    ]
    twin = Scheduler(session_factory=sessions, clock=clock, jobs=scheduler.jobs)
    assert await twin.run_due() == 0  # another process (or a restart) finds them done
    assert await scheduler.run_due() == 0


async def test_a_message_without_a_sender_is_kept(world: World) -> None:
    message_id = await world.ingest.handle(incoming("ns1", "", sender="", kind=MessageKind.OTHER, raw='{"error": "x"}'))
    async with world.sessions() as session:
        stored = await session.get(Message, message_id)
    assert stored is not None and stored.raw == '{"error": "x"}' and stored.kind == "other"
