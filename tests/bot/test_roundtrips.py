"""Database round trips per handled message stay few (counted with SQLAlchemy's event hooks, on both
backends; the figures before and after are in BENCHMARKS.md, `python -m tests.bot.roundtrips`)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.services import Services
from tests.bot.fakes import RecordingAdapter
from tests.bot.roundtrips import SCRIPT, measure, summary


async def test_round_trips_per_message(services: Services, engine: AsyncEngine, tmp_path: Path) -> None:
    adapter = RecordingAdapter()
    measured = await measure(services, adapter)
    assert len(measured) == len(SCRIPT)
    assert [m.replies for m in measured if m.kind.startswith("demand")] == [1, 1, 1]
    by_kind = summary(measured)["by_kind"]
    postgres = engine.dialect.name == "postgresql"
    chat = by_kind["chat"]
    if postgres:
        # chat from a known sender: the message with its classification and its search entry, one
        # autocommitted statement (was BEGIN, ping, 2 INSERTs, COMMIT: 5)
        assert chat["handle"] == 1
        # nothing to send: one claim that finds nothing (was ping, BEGIN, SELECT, COMMIT: 4)
        assert chat["send"] == 1
        # a reply: its claim and its mark, one statement each (were 4 and 5 round trips)
        assert by_kind["demand"]["send"] == 2
        assert by_kind["demand"]["handle"] <= 14
        assert summary(measured)["round_trips_per_message"] <= 10
    else:
        # SQLite: statements cost no network round trip; the message, its classification and its search entry
        # (the FTS5 row replaced: a delete and an insert)
        assert chat["handle"] <= 6
        assert by_kind["demand"]["send"] <= 6
    # every message stored with its classification, every reply sent once and marked sent
    async with services.sessions() as session:
        counts = (
            await session.exec(  # type: ignore[call-overload]
                text(
                    "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM classifications),"
                    " (SELECT count(*) FROM outbox WHERE status = 'sent'), (SELECT count(*) FROM outbox)"
                )
            )
        ).one()
    assert tuple(counts) == (len(SCRIPT) + 1, len(SCRIPT) + 1, len(adapter.sent), len(adapter.sent))
