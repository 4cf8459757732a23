"""Scale-out: several bot processes (one account each) on one PostgreSQL, each sending only its own replies.

Two instances of the service are built from two configs that differ only in their account, as two
`villagewatch run` processes of a city would be; the second starts last, as in the probe that found
every group moved to the last process's account.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from bot.clock import CHINA, SimulatedClock
from bot.config import Config
from bot.messages import IncomingMessage, MessageKind
from bot.services import Services, build_services
from storage.engine import make_engine
from storage.migrate import current_revision, upgrade
from storage.models import Group, Outbox
from tests.bot.fakes import RecordingAdapter
from tests.conftest import PG_ADMIN_DSN, _pg_admin, _truncate_all
from tests.scenarios.harness import HIERARCHY, ROOT

T0 = datetime(2026, 9, 7, 8, 0, tzinfo=CHINA)
STONE, EAST, NEW = "石桥村监督服务群", "河东村监督服务群", "新河村监督服务群"


def _config(tmp_path: Path, accounts: list[dict[str, Any]]) -> Config:
    return Config.model_validate(
        {"data_dir": tmp_path, "rules_dir": ROOT / "rules", "accounts": accounts, "dashboard": {"enabled": False}}
        | HIERARCHY
    )


def _demand(account: str, group: str, n: int) -> IncomingMessage:
    return IncomingMessage(
        platform_id=f"{account}-{n}",
        account=account,
        at=T0,
        kind=MessageKind.TEXT,
        text=f"村里连续三天停水了,老人小孩怎么办({n})",
        sender_id=f"villager-{group}-{n}",
        sender_name=f"村民{n}",
        group_id=group,
        group_topic=group,
    )


@pytest.fixture
async def pg_url(pg_database_url: str) -> AsyncIterator[str]:
    engine = make_engine(pg_database_url)
    await _truncate_all(engine)
    await engine.dispose()
    yield pg_database_url


async def _start(config: Config, url: str, tmp_path: Path) -> Services:
    return await build_services(config, clock=SimulatedClock(T0), db_url=url, media_root=tmp_path / "media")


async def test_two_processes_each_send_only_their_own_replies(pg_url: str, tmp_path: Path) -> None:
    a = await _start(_config(tmp_path, [{"name": "bot-a", "groups": [STONE, NEW]}]), pg_url, tmp_path)
    b = await _start(_config(tmp_path, [{"name": "bot-b", "groups": [EAST]}]), pg_url, tmp_path)
    try:
        async with b.sessions() as session:
            owners = {g.name: g.account for g in (await session.exec(select(Group))).all()}
        assert owners == {STONE: "bot-a", NEW: "bot-a", EAST: "bot-b"}
        for n in range(3):
            await a.ingest.handle(_demand("bot-a", STONE, n))
            await b.ingest.handle(_demand("bot-b", EAST, n))
        sent_a, sent_b = RecordingAdapter("bot-a"), RecordingAdapter("bot-b")
        await asyncio.gather(
            a.outbox.send_due({"bot-a": sent_a}, pace=False), b.outbox.send_due({"bot-b": sent_b}, pace=False)
        )
        assert len(sent_a.sent) == 3 and len(sent_b.sent) == 3
        assert {(m.account, m.chat_name) for m in sent_a.sent} == {("bot-a", STONE)}
        assert {(m.account, m.chat_name) for m in sent_b.sent} == {("bot-b", EAST)}
        async with a.sessions() as session:
            rows = (await session.exec(select(Outbox))).all()
        assert len(rows) == 6 and all(r.status == "sent" for r in rows)
        assert {(r.chat_name, r.account) for r in rows} == {(STONE, "bot-a"), (EAST, "bot-b")}
        # a restart of the first process (it starts last now) takes nothing from the second
        again = await _start(_config(tmp_path, [{"name": "bot-a", "groups": [STONE, NEW]}]), pg_url, tmp_path)
        await again.close()
        async with b.sessions() as session:
            assert (await session.exec(select(Group).where(Group.name == EAST))).one().account == "bot-b"
    finally:
        await a.close()
        await b.close()


async def test_a_catch_all_account_never_takes_a_claimed_group(pg_url: str, tmp_path: Path) -> None:
    a = await _start(_config(tmp_path, [{"name": "bot-a", "groups": [STONE]}]), pg_url, tmp_path)
    everyone = await _start(_config(tmp_path, [{"name": "bot-all"}]), pg_url, tmp_path)
    try:
        # a message from a claimed group reaching the catch-all account does not move the group either
        await everyone.ingest.handle(_demand("bot-all", STONE, 1))
        async with a.sessions() as session:
            owners = {g.name: g.account for g in (await session.exec(select(Group))).all()}
        assert owners[STONE] == "bot-a"
        assert owners[EAST] == owners[NEW] == "bot-all"
        async with a.sessions() as session:
            assert {r.account for r in (await session.exec(select(Outbox))).all()} == {"bot-a"}
    finally:
        await a.close()
        await everyone.close()


async def test_a_room_reported_by_an_account_belongs_to_it(pg_url: str, tmp_path: Path) -> None:
    """A room nobody configured (Wechaty reports every room its account is in) goes to that account."""
    a = await _start(_config(tmp_path, [{"name": "bot-a", "groups": [STONE]}]), pg_url, tmp_path)
    b = await _start(_config(tmp_path, [{"name": "bot-b", "groups": [EAST]}]), pg_url, tmp_path)
    try:
        await b.ingest.handle(_demand("bot-b", "room-42@chatroom", 1))
        await a.ingest.handle(_demand("bot-a", "room-42@chatroom", 2))  # both sit in it: the first keeps it
        async with a.sessions() as session:
            room = (await session.exec(select(Group).where(Group.platform_id == "room-42@chatroom"))).one()
        assert room.account == "bot-b"
    finally:
        await a.close()
        await b.close()


async def test_concurrent_upgrades_of_a_fresh_database_take_turns(tmp_path: Path) -> None:
    name = f"vw_mig_{tmp_path.name[-8:].lower().replace('-', '_')}"
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}"')
    await _pg_admin(f'CREATE DATABASE "{name}"')
    url = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    engines = [make_engine(url) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        revisions = {await current_revision(engine) for engine in engines}
        assert len(revisions) == 1 and None not in revisions
        async with engines[0].connect() as connection:
            count = (await connection.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one()
        assert count == 1
    finally:
        for engine in engines:
            await engine.dispose()
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
