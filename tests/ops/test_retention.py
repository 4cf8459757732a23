"""Retention: old message text is blanked by a scheduled job; tickets, their events and flags are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.clock import SimulatedClock
from bot.config import load_config
from bot.messages import IncomingMessage, MessageKind
from bot.retention import Retention
from bot.services import build_services
from storage.engine import make_session_factory
from storage.models import Flag, Message, MessageCard, Ticket, TicketEvent, VoiceNote
from storage.repos import ops

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 9, 7, 1, 0, tzinfo=UTC)


def message(platform_id: str, text: str, at: datetime) -> IncomingMessage:
    return IncomingMessage(
        platform_id=platform_id,
        account="demo",
        at=at,
        kind=MessageKind.TEXT,
        text=text,
        sender_id="gao",
        sender_name="高某林",
        group_id="石桥村监督服务群",
        group_topic="石桥村监督服务群",
        raw='{"payload": "kept until retention"}',
    )


async def test_old_text_is_blanked_and_the_audit_kept(tmp_path: Path) -> None:
    base = load_config(ROOT / "config.example.toml")
    config = base.model_copy(
        update={"data_dir": tmp_path, "retention": base.retention.model_copy(update={"message_text_days": 30})}
    )
    old_at = NOW - timedelta(days=40)
    services = await build_services(
        config, clock=SimulatedClock(old_at), db_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    )
    try:
        assert "retention.message_text" in [job.name for job in services.scheduler.jobs]
        await services.ingest.handle(message("old-demand", "石桥村张湾组连续三天停水了,老人小孩怎么办", old_at))
        await services.ingest.handle(message("old-flag", "今晚老地方打麻将,带够钱", old_at))
        await services.ingest.handle(message("new", "路灯坏了,请尽快修", NOW - timedelta(days=1)))
        retention = Retention(session_factory=services.sessions, config=config.retention, timezone="Asia/Shanghai")
        assert await retention.blank_old_text(NOW) == 2
        assert await retention.blank_old_text(NOW) == 0  # idempotent
        async with services.sessions() as session:
            stored = {m.platform_id: m for m in (await session.exec(select(Message))).all()}
            tickets = (await session.exec(select(Ticket))).all()
            events = (await session.exec(select(TicketEvent))).all()
            flags = (await session.exec(select(Flag))).all()
        assert stored["old-demand"].text == "" and stored["old-demand"].raw is None
        assert stored["old-flag"].text == ""
        assert stored["old-demand"].sender_name == "高某林" and stored["old-demand"].village == "石桥村"
        assert stored["new"].text == "路灯坏了,请尽快修" and stored["new"].raw is not None
        assert tickets and "停水" in tickets[0].text  # the ticket record keeps what was reported
        assert events and flags
    finally:
        await services.close()


async def test_no_retention_job_by_default(tmp_path: Path) -> None:
    config = load_config(ROOT / "config.example.toml").model_copy(update={"data_dir": tmp_path})
    assert config.retention.message_text_days == 0
    services = await build_services(
        config, clock=SimulatedClock(NOW), db_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    )
    try:
        assert "retention.message_text" not in [job.name for job in services.scheduler.jobs]
    finally:
        await services.close()


async def test_ops_queries_on_both_backends(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        old = Message(account="a", platform_id="1", at=NOW - timedelta(days=9), kind="voice", text="旧", raw="{}")
        new = Message(account="a", platform_id="2", at=NOW, kind="voice", text="新")
        link = Message(account="a", platform_id="3", at=NOW - timedelta(days=9), kind="link", text="停水通知")
        session.add_all([old, new, link])
        await session.flush()
        assert old.id and new.id and link.id
        session.add(VoiceNote(message_id=old.id, transcript="旧"))
        session.add(VoiceNote(message_id=new.id, transcript="新"))
        session.add(MessageCard(message_id=link.id, title="停水通知", description="明天检修", host="mp.weixin.qq.com"))
        await session.commit()
        ids = (old.id, new.id, link.id)
    async with sessions() as session:
        assert await ops.blank_message_text(session, before=NOW - timedelta(days=1)) == 2
        await session.commit()
    async with sessions() as session:
        texts = sorted(m.text for m in (await session.exec(select(Message))).all())
        assert texts == ["", "", "新"]
        transcripts = {n.message_id: n.transcript for n in (await session.exec(select(VoiceNote))).all()}
        assert transcripts == {ids[0]: "", ids[1]: "新"}
        card = await session.get(MessageCard, ids[2])
        assert card is not None and (card.title, card.description, card.host) == ("", "", "mp.weixin.qq.com")
        assert await ops.tickets_by_status(session) == {}
        assert await ops.outbox_by_account(session) == []
        assert not await ops.flag_labels_since(session, since=NOW - timedelta(days=1))
