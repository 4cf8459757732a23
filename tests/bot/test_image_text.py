"""Text in images in the live pipeline, on SQLite and PostgreSQL, with a stand-in for the OCR pool (the real
one is tested in tests/ocr): the image message is stored and answered before it is read (OCR never blocks
message handling); an image accepted but not read when the process died is read after the restart; its text
is classified exactly once, whatever runs again."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.clock import SimulatedClock
from bot.config import load_config
from bot.messages import MessageKind
from bot.ocr import reader
from bot.ocr.reader import Reading
from bot.services import Services, build_services
from storage.models import Banquet, Flag, Ticket
from storage.repos import image_texts as images_repo
from tests.bot.conftest import ROOT, T0
from tests.bot.test_kept_raw import _health
from tests.bot.test_pipeline import incoming
from tests.ocr import images

CARD_TEXT = "\n".join(images.PARTY_CARD)


class GatedPool:
    """Reads every image as the party member's card, once ``gate`` is set."""

    workers = 1

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.reads = 0

    async def read(self, data: bytes) -> Reading:
        await self.gate.wait()
        self.reads += 1
        return Reading(reader.DONE, text=CARD_TEXT)

    def close(self) -> None:
        return None


def _card(platform_id: str) -> object:
    return incoming(platform_id, "", sender="刘建国", kind=MessageKind.IMAGE, media=images.invitation_card())


async def _counts(services: Services) -> tuple[int, int, list[str]]:
    async with services.sessions() as session:
        flags = (await session.exec(select(Flag))).all()
        banquets = (await session.exec(select(Banquet))).all()
        statuses = await images_repo.count_by_status(session)
    return len(flags), len(banquets), sorted(f"{k}:{v}" for k, v in statuses.items())


async def _restart(services: Services, db_url: str, tmp_path: Path) -> Services:
    config = load_config(ROOT / "config.example.toml").model_copy(update={"data_dir": tmp_path / "data"})
    return await build_services(
        config, clock=SimulatedClock(T0), db_url=db_url, media_root=tmp_path / "media", migrate=False
    )


async def test_image_is_stored_first_and_read_later_without_blocking(services: Services) -> None:
    pool = GatedPool()
    services.images.pool = pool  # type: ignore[assignment]
    runner = asyncio.create_task(services.images.run(poll_seconds=0.05))
    try:
        message_id = await asyncio.wait_for(services.ingest.handle(_card("card-1")), 30)  # type: ignore[arg-type]
        assert message_id is not None
        # While the image waits for the OCR pool, the bot goes on: a villager's report opens its ticket.
        report = incoming("r-1", "石桥村张湾组连续三天停水了,老人小孩怎么办")
        assert await asyncio.wait_for(services.ingest.handle(report), 30) is not None
        async with services.sessions() as session:
            assert len((await session.exec(select(Ticket))).all()) == 1
        assert await _counts(services) == (0, 0, ["pending:1"])
        assert (await _health(services))["ocr"] == {"enabled": True, "pending": 1, "failed": 0}
        pool.gate.set()
        for _ in range(400):
            if (await _counts(services))[0]:
                break
            await asyncio.sleep(0.05)
        assert await _counts(services) == (1, 1, ["done:1"])
        async with services.sessions() as session:
            flag = (await session.exec(select(Flag))).one()
        assert flag.from_image and "banquet" in flag.labels and flag.severity == "high"
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_image_pending_at_a_crash_is_read_after_restart_and_classified_once(
    services: Services, db_url: str, tmp_path: Path
) -> None:
    # The process stores the image and dies before reading it (no reader ran).
    message_id = await services.ingest.handle(_card("card-2"))  # type: ignore[arg-type]
    assert message_id is not None
    assert await _counts(services) == (0, 0, ["pending:1"])
    await services.close()

    restarted = await _restart(services, db_url, tmp_path)
    try:
        pool = GatedPool()
        pool.gate.set()
        restarted.images.pool = pool  # type: ignore[assignment]
        assert await restarted.images.drain() == 1
        assert await _counts(restarted) == (1, 1, ["done:1"])
        # Whatever runs again (a second drain, a late result of a read another run started) changes nothing.
        assert await restarted.images.drain() == 0
        again = await restarted.ingest.handle_image_text(message_id, status=reader.DONE, text=CARD_TEXT, error=None)
        assert again is False
        assert await restarted.ingest.handle(_card("card-2")) is None  # redelivered: stored before
        assert await _counts(restarted) == (1, 1, ["done:1"])
        assert pool.reads == 1
    finally:
        await restarted.close()


async def test_a_cadres_picture_is_read_but_raises_no_flag(services: Services) -> None:
    pool = GatedPool()
    pool.gate.set()
    services.images.pool = pool  # type: ignore[assignment]
    cadre = replace(_card("card-3"), sender_id="王主任", sender_name="王主任")  # type: ignore[type-var]
    message_id = await services.ingest.handle(cadre)
    assert message_id is not None
    assert await services.images.drain() == 1
    async with services.sessions() as session:
        row = await images_repo.get(session, message_id)
    assert row is not None and row["status"] == "done" and "banquet" in row["labels"]
    assert await _counts(services) == (0, 0, ["done:1"])


async def test_ocr_switched_off_stores_images_unread(engine: AsyncEngine, db_url: str, tmp_path: Path) -> None:
    config = load_config(ROOT / "config.example.toml").model_copy(update={"data_dir": tmp_path / "data"})
    config = config.model_copy(update={"ocr": config.ocr.model_copy(update={"enabled": False})})
    built = await build_services(
        config, clock=SimulatedClock(T0), db_url=db_url, media_root=tmp_path / "m", migrate=False
    )
    try:
        assert await built.ingest.handle(_card("card-4")) is not None  # type: ignore[arg-type]
        assert await built.images.drain() == 0
        assert await _counts(built) == (0, 0, [])
    finally:
        await built.close()


async def test_retention_blanks_the_text_read_from_old_images(services: Services) -> None:
    from datetime import timedelta

    from storage.repos import ops

    pool = GatedPool()
    pool.gate.set()
    services.images.pool = pool  # type: ignore[assignment]
    message_id = await services.ingest.handle(_card("card-5"))  # type: ignore[arg-type]
    assert message_id is not None and await services.images.drain() == 1
    async with services.sessions() as session:
        await ops.blank_message_text(session, before=T0 + timedelta(days=1))
        await session.commit()
        row = await images_repo.get(session, message_id)
    assert row is not None and row["text"] == "" and row["status"] == "done"
