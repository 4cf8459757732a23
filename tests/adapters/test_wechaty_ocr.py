"""Text in images through the real Wechaty puppet service (the whole service on the example county's config):
a party member's invitation card posted in the group becomes a high-severity banquet flag with its date, place
and scale read from the picture; a villager's photo of a 停水通知 is a notice and opens no ticket; a corrupt
photo is kept and marked, and the bot goes on answering."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlmodel import select

from bot.app import Running
from bot.directory import RosterEntry
from bot.reports import flags_as_json
from storage.models import ImageText, Message, Ticket
from tests.adapters.test_wechaty_e2e import running  # noqa: F401  (the fixture)
from tests.ocr import images
from tests.wechaty.service import GAO, ZHANG, WechatyService

pytestmark = [pytest.mark.wechaty]


async def _read(running: Running, count: int, timeout: float = 120) -> list[ImageText]:  # noqa: F811
    """Wait until ``count`` images are read (done or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        async with running.services.sessions() as session:
            rows = list((await session.exec(select(ImageText).order_by(ImageText.message_id))).all())
        if sum(row.status != "pending" for row in rows) >= count:
            return rows
        assert time.monotonic() < deadline, [(r.message_id, r.status) for r in rows]
        await asyncio.sleep(0.2)


async def test_card_notice_and_corrupt_photo_through_wechaty(running: Running, wechaty_service: WechatyService) -> None:  # noqa: F811
    service = wechaty_service
    async with running.services.sessions() as session:
        await running.services.directory.add_member(
            session, RosterEntry(name="张三", role="party_member", village="石桥村", platform_id=ZHANG)
        )
        await session.commit()

    await service.say(ZHANG, image=images.invitation_card(), name="请柬.jpg")
    await service.say(GAO, image=images.notice(), name="通知.jpg")
    await service.say(GAO, image=images.corrupt_jpeg(), name="坏图.jpg")
    rows = await _read(running, 3)
    assert [(r.status, r.error) for r in rows] == [("done", None), ("done", None), ("failed", "corrupt")]
    assert images.accuracy("".join(images.PARTY_CARD), rows[0].text) >= 0.90
    assert "notice" in rows[1].labels

    # The bot went on: a typed report is answered in the group.
    await service.say(GAO, "村口的路灯坏了好几天了，晚上走路看不见，请村里尽快派人来修一下")
    await service.wait_sent(lambda item: item["kind"] == "text" and "【工单 #" in item["text"], timeout=30)

    async with running.services.sessions() as session:
        flags = await flags_as_json(session)
        tickets = (await session.exec(select(Ticket))).all()
        kinds = (await session.exec(select(Message.kind).order_by(Message.id))).all()
    assert list(kinds) == ["image", "image", "image", "text"]  # every photo kept
    [flag] = flags
    assert flag["sender"] == "张三" and flag["role"] == "party_member" and flag["from_image"]
    assert "banquet" in flag["labels"] and flag["severity"] == "high"
    banquet = flag["banquet"]
    assert (banquet["calendar"], banquet["lunar"], banquet["place"], banquet["tables"]) == (
        "lunar",
        "农历十月初八",
        "石桥村文化礼堂",
        20,
    )
    assert len(tickets) == 1  # the report; not the notice
