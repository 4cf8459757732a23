"""The search page: hits in the viewer's scope with their context, masked and escaped; 标记为漏报 and 立案."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import unquote

from sqlmodel import select

from dashboards.views_search import _cursor, _cursor_text
from storage.models import AuditLog, Message
from tests.dashboards.conftest import Dash

HIT_RE = re.compile(r'<li class="card hit" id="m(\d+)">')


async def _page(dash: Dash, query: str) -> str:
    """The page, with the highlighting taken out (the hit's text reads whole)."""
    resp = await dash.client.get("/search" + query)
    assert resp.status == 200, await resp.text()
    return (await resp.text()).replace("<mark>", "").replace("</mark>", "")


async def _message_id(dash: Dash, text: str) -> int:
    async with dash.factory() as session:
        found = (await session.exec(select(Message).where(Message.text == text))).first()
    assert found is not None and found.id is not None
    return found.id


async def test_hits_with_context_highlighted_masked_and_escaped(dash: Dash) -> None:
    await dash.login("town_a")
    resp = await dash.client.get("/search?q=薄酒")
    assert "<mark>薄酒</mark>" in await resp.text()
    page = await _page(dash, "?q=薄酒")
    assert len(HIT_RE.findall(page)) == 1
    assert "138****5678" in page and "13812345678" not in page
    assert "早上好，今天停水吗" in page and "恭喜恭喜" in page  # the messages before and after it
    page = await _page(dash, "?q=开饭")
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert 'value="开饭"' in page  # the query stays in the form (and the URL)


async def test_other_townships_and_confidential_hits_stay_hidden(dash: Dash) -> None:
    await dash.login("town_a")
    assert "龙山村路灯坏了一个礼拜" not in await _page(dash, "?q=路灯")
    assert "三套房" in await _page(dash, "?q=低保")
    await dash.login("town_b")
    assert "龙山村路灯坏了一个礼拜" in await _page(dash, "?q=路灯")
    assert "三套房" not in await _page(dash, "?q=低保")
    await dash.login("cadre_a")
    page = await _page(dash, "?q=低保")
    assert "三套房" not in page  # a clue flag is never shown to a cadre
    assert not HIT_RE.findall(await _page(dash, "?q=升学宴"))  # nor a confidential ticket's message
    page = await _page(dash, "?q=停水")
    assert HIT_RE.findall(page) and "标记为漏报" not in page and "确认立案" not in page
    assert "网巡条目" not in page  # cadres never read flags: no such choice, and asking for it searches messages
    page = await _page(dash, "?q=薄酒&kind=flags")
    assert HIT_RE.findall(page) and "网巡 #" not in page and "大操大办" not in page
    message_id = await _message_id(dash, "早上好，今天停水吗")
    resp = await dash.post(f"/messages/{message_id}/ticket", {"kind": "demand"})
    assert resp.status == 403
    assert dash.actions.calls == []


async def test_filters_kinds_and_pages(dash: Dash) -> None:
    await dash.login("county")
    assert len(HIT_RE.findall(await _page(dash, "?q=路"))) == 2  # 路堵了…, 龙山村路灯…
    assert len(HIT_RE.findall(await _page(dash, "?q=路&township=龙山镇"))) == 1
    assert len(HIT_RE.findall(await _page(dash, "?q=路&village=河西村"))) == 1
    assert not HIT_RE.findall(await _page(dash, "?q=路&until=2026-09-07"))  # both on later days
    tickets = await _page(dash, "?q=停水&kind=tickets")
    assert "工单 #" in tickets and "早上好" not in tickets.split('<ol class="hits">', 1)[1].split("ctx")[0]
    flags = await _page(dash, "?q=大寿&kind=flags")
    assert "网巡 #" in flags and "大操大办" in flags
    resp = await dash.client.get("/search?q=路&since=2026-13-01")
    assert resp.status == 400 and "日期格式" in await resp.text()
    at = datetime(2026, 9, 7, 1, 2, 3, 456789, tzinfo=UTC)
    assert _cursor(_cursor_text((at, 42)) or "") == (at, 42)
    assert _cursor("abc") is None and _cursor("1.0") is None


async def test_open_a_ticket_and_mark_missed_from_a_hit(dash: Dash) -> None:
    await dash.login("town_a")
    page = await _page(dash, "?q=今天停水")
    message_id = await _message_id(dash, "早上好，今天停水吗")
    assert f'href="/messages/{message_id}/label">标记为漏报' in page
    assert f'action="/messages/{message_id}/ticket"' in page
    resp = await dash.post(
        f"/messages/{message_id}/ticket", {"kind": "demand", "category": "water", "back": "/search?q=今天停水"}
    )
    assert resp.status == 302
    assert unquote(resp.headers["Location"]) == f"/search?q=今天停水&opened={900 + message_id}#m{message_id}"
    assert dash.actions.calls == [
        ("open_from_message", message_id, {"kind": "demand", "category": "water", "actor": "town_a"})
    ]
    async with dash.factory() as session:
        audit = (await session.exec(select(AuditLog).where(AuditLog.action == "ticket_open"))).all()
    assert len(audit) == 1 and audit[0].target == f"message:{message_id}"
    followed = await _page(dash, resp.headers["Location"].removeprefix("/search").split("#")[0])
    assert "已立案" in followed and "工单 #" in followed
    dash.actions.refuse = "这条消息已在工单 #3 中"
    resp = await dash.post(f"/messages/{message_id}/ticket", {"kind": "consult"})
    assert resp.status == 302 and "refused=" in resp.headers["Location"]
    assert "这条消息已在工单 #3 中" in await _page(dash, resp.headers["Location"].removeprefix("/search"))
    # out of scope and unknown look the same; a bad kind is a Chinese error
    other = await _message_id(dash, "祠堂今晚开桌，来的私聊")
    assert (await dash.post(f"/messages/{other}/ticket", {"kind": "demand"})).status == 404
    bad = await dash.post(f"/messages/{message_id}/ticket", {"kind": "banquet"})
    assert bad.status == 400 and "工单类型" in await bad.text()
    no_csrf = await dash.client.post(f"/messages/{message_id}/ticket", data={"kind": "demand"}, allow_redirects=False)
    assert no_csrf.status == 403
