"""One storage suite, run on SQLite and on the real PostgreSQL (the `engine` fixture is parametrised)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import StorageError, make_session_factory, normalise_url
from storage.migrate import current_revision, upgrade
from storage.models import Group, Member
from storage.repos import directory, messages, outbox, state

CHINA = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 9, 7, 6, 48, tzinfo=CHINA)


def _message(platform_id: str, **extra: object) -> dict[str, object]:
    values: dict[str, object] = {
        "account": "demo",
        "platform_id": platform_id,
        "at": T0,
        "group_name": "石桥村监督服务群",
        "sender_platform_id": "高某林",
        "sender_name": "高某林",
        "text": "石桥村张湾组连续三天停水了",
    }
    values.update(extra)
    return values


async def test_message_is_stored_once_per_platform_id(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        first = await messages.insert_message(session, values=_message("m1"))
        again = await messages.insert_message(session, values=_message("m1", text="changed"))
        other_account = await messages.insert_message(session, values=_message("m1", account="other"))
        await session.commit()
    assert first is not None and other_account is not None and first != other_account
    assert again is None
    async with sessions() as session:
        stored = await messages.get_message(session, first)
        assert stored is not None and stored.text == "石桥村张湾组连续三天停水了"


async def test_chat_is_stored_many_to_a_statement_once(engine: AsyncEngine) -> None:
    """A replay's batch: messages and their classifications together; stored messages are skipped."""
    sessions = make_session_factory(engine)
    label = {
        "labels": ["chat"],
        "category": None,
        "severity": None,
        "matches": [],
        "shadow_matches": [],
        "ruleset_version": "v1",
    }
    rows = [(_message(f"c{i}", text=f"第{i}条", raw=f'{{"n": {i}}}'), dict(label)) for i in range(3)]
    async with sessions() as session:
        assert await messages.insert_message(session, values=_message("c1", text="first")) is not None
        assert await messages.store_chat(session, rows) == 2
        await session.commit()
    async with sessions() as session:
        assert await messages.store_chat(session, rows) == 0
        await session.commit()
    async with sessions() as session:
        stored = {m.platform_id: m for m in await messages.messages_between(session, start=T0, end=T0 + timedelta(1))}
        assert stored["c1"].text == "first"  # stored before: kept as it was
        assert stored["c2"].text == "第2条" and stored["c2"].raw == '{"n": 2}' and stored["c2"].at == T0
        for platform_id in ("c0", "c2"):
            found = await messages.get_classification(session, stored[platform_id].id or 0)
            assert found is not None and found.labels == ["chat"] and found.ruleset_version == "v1"
        assert await messages.get_classification(session, stored["c1"].id or 0) is None  # not this batch's


async def test_datetimes_come_back_aware_and_equal(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        message_id = await messages.insert_message(session, values=_message("m2"))
        await session.commit()
    assert message_id is not None
    async with make_session_factory(engine)() as session:
        stored = await messages.get_message(session, message_id)
        assert stored is not None
        assert stored.at.tzinfo is not None
        assert stored.at == T0


async def test_outbox_dedupes_and_leases(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    row = {
        "dedupe_key": "ack:1",
        "account": "demo",
        "chat_id": "石桥村监督服务群",
        "chat_name": "石桥村监督服务群",
        "text": "【工单 #1】",
        "created_at": T0,
        "not_before": T0,
    }
    async with sessions() as session:
        assert await outbox.enqueue(session, values=row) is not None
        assert await outbox.enqueue(session, values=row) is None
        await session.commit()
    async with sessions() as session:
        claimed = await outbox.claim_due(session, account="demo", now=T0, lease=timedelta(seconds=60))
        await session.commit()
    assert [r.dedupe_key for r in claimed] == ["ack:1"]
    async with sessions() as session:  # a second sender sees nothing while the lease holds
        assert (
            await outbox.claim_due(session, account="demo", now=T0 + timedelta(seconds=5), lease=timedelta(seconds=60))
            == []
        )
        await session.commit()
    async with sessions() as session:  # after a crash the lease runs out and the row is sent again
        again = await outbox.claim_due(
            session, account="demo", now=T0 + timedelta(seconds=61), lease=timedelta(seconds=60)
        )
        assert len(again) == 1 and again[0].attempts == 2
        assert again[0].id is not None
        await outbox.mark_sent(session, [(again[0].id, T0 + timedelta(seconds=62), "x")])
        await session.commit()
    async with sessions() as session:
        assert (
            await outbox.claim_due(session, account="demo", now=T0 + timedelta(hours=1), lease=timedelta(seconds=60))
            == []
        )
        assert await outbox.pending_count(session) == 0
        assert await outbox.last_sent(session, account="demo") == T0 + timedelta(seconds=62)


async def test_job_run_is_claimed_once_even_concurrently(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)

    async def claim(owner: str) -> state.Claim:
        async with sessions() as session:
            won = await state.claim_job_run(
                session, job="daily_check", run_key="2026-09-08T08:30", at=T0, owner=owner, lease=timedelta(minutes=10)
            )
            await session.commit()
            return won

    results = await asyncio.gather(*(claim(f"p{n}") for n in range(4)))
    assert results.count(state.Claim.TAKEN) == 1
    assert results.count(state.Claim.BUSY) == 3


async def test_a_job_run_claim_is_a_lease_until_done(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    lease = timedelta(minutes=10)

    async def claim(owner: str, at: datetime) -> state.Claim:
        async with sessions() as session:
            won = await state.claim_job_run(session, job="digest", run_key="d1", at=at, owner=owner, lease=lease)
            await session.commit()
            return won

    assert await claim("a", T0) is state.Claim.TAKEN
    assert await claim("b", T0 + timedelta(minutes=5)) is state.Claim.BUSY  # a's lease is live
    assert await claim("a", T0 + timedelta(minutes=5)) is state.Claim.TAKEN  # a restarted takes its own back
    assert await claim("b", T0 + timedelta(minutes=14)) is state.Claim.BUSY  # renewed by that claim
    assert await claim("b", T0 + timedelta(minutes=16)) is state.Claim.TAKEN  # expired: a died
    async with sessions() as session:
        await state.finish_job_run(session, job="digest", run_key="d1", at=T0 + timedelta(minutes=17))
        await session.commit()
    for owner in ("a", "b"):
        assert await claim(owner, T0 + timedelta(hours=1)) is state.Claim.DONE


async def test_settings_round_trip(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        assert await state.get_setting(session, "replay:clock") is None
        await state.set_setting(session, "replay:clock", "a")
        await state.set_setting(session, "replay:clock", "b")
        await session.commit()
    async with sessions() as session:
        assert await state.get_setting(session, "replay:clock") == "b"


async def test_directory_queries(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        await directory.save(session, Group(name="石桥村监督服务群", platform_id="room-1", village="石桥村"))
        await directory.save(
            session,
            Member(
                platform_id="li",
                name="李书记",
                role="cadre",
                village="石桥村",
                group_name="石桥村监督服务群",
                on_roster=True,
            ),
        )
        await directory.save(session, Member(platform_id="gao", name="高某林", village="石桥村"))
        await session.commit()
    async with sessions() as session:
        group = await directory.get_group_by_platform_id(session, "room-1")
        assert group is not None and group.name == "石桥村监督服务群"
        assert [m.name for m in await directory.village_cadres(session, village="石桥村")] == ["李书记"]
        assert await directory.people_by_group(session) == {"石桥村监督服务群": [{"name": "李书记", "role": "cadre"}]}


async def test_upgrade_is_idempotent(engine: AsyncEngine) -> None:
    await upgrade(engine)
    assert await current_revision(engine) is not None


def test_urls_are_normalised_to_async_drivers() -> None:
    assert normalise_url("postgresql://u@h/db").startswith("postgresql+asyncpg://")
    assert normalise_url("sqlite:///x.db").startswith("sqlite+aiosqlite://")
    with pytest.raises(StorageError):
        normalise_url("mysql://u@h/db")


def test_naive_datetimes_are_refused() -> None:
    from storage.types import UTCDateTime

    with pytest.raises(ValueError):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), None)  # type: ignore[arg-type]
    assert UTCDateTime().process_bind_param(datetime(2026, 1, 1, 8, tzinfo=CHINA), None) == datetime(2026, 1, 1, 0)  # type: ignore[arg-type]
    _ = UTC


async def test_an_inline_sqlite_engine_runs_on_the_loop_thread(tmp_path: object) -> None:
    """A replay's engine: statements, commits and rollbacks work with no worker thread at all."""
    import threading

    from storage.engine import make_engine

    before = threading.active_count()
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/inline.db", inline=True)
    await upgrade(engine)
    sessions = make_session_factory(engine)
    async with sessions() as session:
        kept = await messages.insert_message(session, values=_message("m1"))
        await session.commit()
    async with sessions() as session:
        await messages.insert_message(session, values=_message("m2"))
        await session.rollback()
    async with sessions() as session:
        assert kept is not None and (await messages.get_message(session, kept)) is not None
        assert await messages.insert_message(session, values=_message("m2")) is not None
        assert threading.active_count() == before
    await engine.dispose()
