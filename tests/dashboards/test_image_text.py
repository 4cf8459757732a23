"""Images on the dashboard, on SQLite and PostgreSQL: the digest, flag and ticket pages show a message's image
(thumbnail, full size behind a click) with the text read from it and its keywords marked, or why it could not
be read, in Chinese; the image is served only behind login and scope (a cadre: only a ticket's images)."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncEngine

from dashboards.app import create_app
from dashboards.settings import DashboardSettings
from storage.engine import make_session_factory
from storage.models import Flag, ImageText, Message, Ticket, TicketMessage
from tests.dashboards.conftest import CSRF_RE, SECRET
from tests.dashboards.fakes import (
    FakeClock,
    FakeRuleBench,
    RecordingBroadcaster,
    RecordingModelTeacher,
    RecordingPipeline,
    RecordingTicketActions,
)
from tests.dashboards.seed import PASSWORD, seed
from tests.ocr import images

T1 = datetime(2026, 9, 8, 1, 0, tzinfo=UTC)
CARD_TEXT = "\n".join(images.PARTY_CARD)


@dataclass
class Pages:
    client: TestClient
    card: int
    """The party member's card: a banquet flag from its image."""
    broken: int
    """A ticket's photo that could not be read."""
    flag_id: int
    ticket_id: int
    card_bytes: bytes

    async def login(self, username: str) -> None:
        await self.client.post("/logout", allow_redirects=False)
        self.client.session.cookie_jar.clear()
        page = await self.client.get("/login")
        token = CSRF_RE.search(await page.text())
        assert token is not None
        form = {"_csrf": token.group(1), "username": username, "password": PASSWORD, "next": "/"}
        assert (await self.client.post("/login", data=form, allow_redirects=False)).status == 302


@pytest.fixture
async def pages(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Pages]:
    factory = make_session_factory(engine)
    await seed(factory)
    media = tmp_path / "media"
    (media / "ab").mkdir(parents=True)
    card = images.invitation_card()
    (media / "ab" / "card.jpg").write_bytes(card)
    (media / "ab" / "broken.jpg").write_bytes(images.corrupt_jpeg())
    async with factory() as session, session.begin():
        place = {"county": "舒城县", "township": "城关镇", "village": "石桥村", "group_name": "石桥村监督服务群"}
        shown = Message(account="bot1", platform_id="img1", at=T1, sender_platform_id="王党员", sender_name="王党员",
                        role="party_member", kind="image", media_path="ab/card.jpg", **place)  # fmt: skip
        broken = Message(account="bot1", platform_id="img2", at=T1, sender_platform_id="李书记", sender_name="李书记",
                         role="cadre", kind="image", media_path="ab/broken.jpg", **place)  # fmt: skip
        session.add_all([shown, broken])
        await session.flush()
        assert shown.id is not None and broken.id is not None
        session.add(ImageText(message_id=shown.id, account="bot1", status="done", text=CARD_TEXT,
                              labels=["banquet"], created_at=T1, read_at=T1))  # fmt: skip
        session.add(ImageText(message_id=broken.id, account="bot1", status="failed", error="corrupt",
                              created_at=T1, read_at=T1))  # fmt: skip
        flag = Flag(message_id=shown.id, at=T1, sender_name="王党员", role="party_member", labels=["banquet"],
                    severity="high", rules=["banquet.birthday"], keywords=["寿宴", "薄酒"], from_image=True,
                    county="舒城县", township="城关镇", village="石桥村", group_name="石桥村监督服务群")  # fmt: skip
        ticket = Ticket(kind="demand", category="water", county="舒城县", township="城关镇", village="石桥村",
                        group_name="石桥村监督服务群", opened_at=T1, text="停水了")  # fmt: skip
        session.add_all([flag, ticket])
        await session.flush()
        assert ticket.id is not None and flag.id is not None
        session.add(TicketMessage(ticket_id=ticket.id, message_id=broken.id))
        ids = (shown.id, broken.id, flag.id, ticket.id)
    app = create_app(
        session_factory=factory,
        settings=DashboardSettings(session_minutes=60, secret=SECRET, media_dir=media, freeze_gc=False),
        ticket_actions=RecordingTicketActions(),
        broadcaster=RecordingBroadcaster(),
        rule_bench=FakeRuleBench(),
        pipeline=RecordingPipeline(),
        model_teacher=RecordingModelTeacher(),
        clock=FakeClock(),
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Pages(client, *ids, card_bytes=card)
    finally:
        await client.close()


def _ocr_text(html: str) -> str:
    found = re.search(r'<span class="ocr-text">(.*?)</span>\s*</figcaption>', html, re.S)
    assert found, html
    return found.group(1)


async def test_digest_and_flag_show_the_image_with_its_text_marked(pages: Pages) -> None:
    await pages.login("town_a")
    for path in ("/digest?all=1", f"/flags/{pages.flag_id}"):
        html = await (await pages.client.get(path)).text()
        assert f'href="/messages/{pages.card}/image"' in html
        assert f'src="/messages/{pages.card}/image?size=thumb"' in html
        text = _ocr_text(html)
        assert "<mark>寿宴</mark>" in text and "<mark>薄酒</mark>" in text and "石桥村文化礼堂" in text
    html = await (await pages.client.get(f"/flags/{pages.flag_id}")).text()
    assert "预警依据是图中文字" in html


async def test_ticket_page_says_why_a_photo_could_not_be_read(pages: Pages) -> None:
    await pages.login("town_a")
    html = await (await pages.client.get(f"/tickets/{pages.ticket_id}")).text()
    assert f'src="/messages/{pages.broken}/image?size=thumb"' in html
    assert "图中文字无法识别：图片文件已损坏或不完整（图片已保存）" in html
    # The thumbnail of a file that cannot be decoded is refused, not an error page.
    assert (await pages.client.get(f"/messages/{pages.broken}/image?size=thumb")).status == 404


async def test_image_needs_login_and_scope(pages: Pages) -> None:
    card = f"/messages/{pages.card}/image"
    response = await pages.client.get(card, allow_redirects=False)
    assert response.status in (302, 303) and "/login" in response.headers["Location"]
    await pages.login("town_a")
    full = await pages.client.get(card)
    assert full.status == 200 and full.content_type == "image/jpeg" and await full.read() == pages.card_bytes
    thumb = await pages.client.get(card + "?size=thumb")
    assert thumb.status == 200 and thumb.content_type == "image/jpeg"
    assert max(Image.open(io.BytesIO(await thumb.read())).size) <= 320
    await pages.login("town_b")  # another township
    assert (await pages.client.get(card)).status == 404
    await pages.login("cadre_a")  # the village's cadre: a ticket's photo, never a flagged message's
    assert (await pages.client.get(card)).status == 404
    assert (await pages.client.get(f"/messages/{pages.broken}/image")).status == 200
