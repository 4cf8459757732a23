"""Work queues on the ticket board: 我的 / 待我处理, deadline order, days left, reporter counts, bulk actions."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import unquote

from sqlalchemy import update
from sqlmodel import select

from storage.models import AuditLog, StaffUser, Ticket, TicketReporter
from tests.dashboards.conftest import Dash


async def _set(dash: Dash, key: str, **values: object) -> None:
    async with dash.factory() as session, session.begin():
        await session.exec(update(Ticket).where(Ticket.id == dash.world.tickets[key]).values(**values))  # type: ignore[call-overload]


def _ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr class="ticket[^"]*" id="ticket-(\d+)"', page)]


async def test_mine_is_what_is_assigned_to_me_and_still_open(dash: Dash) -> None:
    async with dash.factory() as session, session.begin():
        await session.exec(update(StaffUser).where(StaffUser.username == "cadre_a").values(member_name="李书记"))  # type: ignore[call-overload]
    await _set(dash, "road", assignee_name="别人")
    await dash.login("cadre_a")
    page = await (await dash.client.get("/tickets?view=mine")).text()
    t = dash.world.tickets
    assert _ids(page) == [t["xss"]]  # water is resolved; road is another village's; the clue is confidential
    assert 'class="on" id="view-mine"' in page
    await dash.login("town_a")  # display name "town_a": nothing is assigned to that name
    assert _ids(await (await dash.client.get("/tickets?view=mine")).text()) == []


async def test_waiting_for_me_is_my_level_overdue_and_extension_requests_overdue_first(dash: Dash) -> None:
    t = dash.world.tickets
    await _set(dash, "road", level="township")
    await _set(dash, "xss", overdue=True, deadline=dash.clock.now - timedelta(days=3))
    await _set(dash, "clue", stage="extension_requested")
    await dash.login("town_a")
    page = await (await dash.client.get("/tickets?view=todo")).text()
    assert _ids(page) == [t["xss"], t["road"], t["clue"]]  # overdue first, then the nearest deadline (then number)
    assert "已超期3天" in page and 'class="left dl-over"' in page
    await dash.login("cadre_a")
    page = await (await dash.client.get("/tickets?view=todo")).text()
    assert _ids(page) == [t["xss"]]  # the village's open tickets; road is at the township now


async def test_the_board_shows_days_left_in_colour_reporter_counts_and_sorts_by_them(dash: Dash) -> None:
    t = dash.world.tickets
    async with dash.factory() as session, session.begin():
        for name in ("张三", "李四"):
            session.add(TicketReporter(ticket_id=t["xss"], platform_id=name, name=name, at=dash.clock.now))
    await _set(dash, "road", deadline=dash.clock.now + timedelta(days=1, hours=1))
    await _set(dash, "xss", priority=1)
    await dash.login("town_a")
    page = await (await dash.client.get("/tickets?sort=deadline")).text()
    ids = _ids(page)
    assert ids.index(t["road"]) < ids.index(t["xss"])
    road = page.split(f'id="ticket-{t["road"]}"')[1].split("</tr>")[0]
    assert "明天到期" in road and "dl-soon" in road and "1 人" in road
    xss = page.split(f'id="ticket-{t["xss"]}"')[1].split("</tr>")[0]
    assert "3 人" in xss and "优先" in xss and "天后到期" in xss and "dl-ok" in xss
    water = page.split(f'id="ticket-{t["water"]}"')[1].split("</tr>")[0]
    assert "剩" not in water and "逾期" not in water  # a resolved ticket has no days left
    assert _ids(await (await dash.client.get("/tickets?sort=reporters")).text())[0] == t["xss"]
    assert _ids(await (await dash.client.get("/tickets?sort=priority")).text())[0] == t["xss"]
    assert 'value="deadline" selected' in page  # the sort is kept in the URL and shown


async def test_bulk_transfer_goes_ticket_by_ticket_and_lists_refusals_in_chinese(dash: Dash) -> None:
    t = dash.world.tickets
    await dash.login("town_a")
    back = "/tickets?view=todo&township=城关镇&page=2"
    resp = await dash.post(
        "/tickets/bulk",
        {
            "op": "transfer",
            "to_member": "张新",
            "back": back,
            "ids": [str(t["road"]), str(t["xss"]), str(t["other_town"])],
        },  # type: ignore[dict-item]
    )
    assert resp.status == 302
    location = unquote(resp.headers["Location"])
    assert location.startswith("/tickets?view=todo&township=城关镇&bulk_done=2")  # filters kept, page reset
    assert f"#{t['other_town']}：未找到" in location  # another township's ticket is not even named
    assert [(c[0], c[1], c[2]["to_member"]) for c in dash.actions.calls] == [
        ("transfer", t["road"], "张新"),
        ("transfer", t["xss"], "张新"),
    ]
    page = await (await dash.client.get(resp.headers["Location"])).text()
    assert "已办 2 件" in page and "未找到" in page
    async with dash.factory() as session:
        rows = (
            await session.exec(select(AuditLog).where(AuditLog.action.in_(["ticket_transfer", "ticket_bulk"])))
        ).all()  # type: ignore[attr-defined]
    assert sorted(r.action for r in rows) == ["ticket_bulk", "ticket_transfer", "ticket_transfer"]


async def test_bulk_actions_the_state_refuses_are_reported_not_done(dash: Dash) -> None:
    t = dash.world.tickets
    await dash.login("county")
    dash.actions.refuse = "已是县级，不能再提级"
    resp = await dash.post("/tickets/bulk", {"op": "escalate", "ids": str(t["road"]), "back": "/tickets"})
    location = unquote(resp.headers["Location"])
    assert "bulk_done=0" in location and "已是县级，不能再提级" in location
    assert dash.actions.calls == []
    for form, message in [
        ({"op": "transfer", "ids": str(t["road"])}, "请填写转办对象"),
        ({"op": "close"}, "请先勾选工单"),
        ({"op": "delete", "ids": str(t["road"])}, "请选择批量操作"),
    ]:
        resp = await dash.post("/tickets/bulk", {**form, "back": "https://evil.example/x"})
        location = unquote(resp.headers["Location"])
        assert location.startswith("/tickets?bulk_done=0") and message in location, form


async def test_cadres_have_no_bulk_actions(dash: Dash) -> None:
    await dash.login("cadre_a")
    assert 'action="/tickets/bulk"' not in await (await dash.client.get("/tickets")).text()
    resp = await dash.post("/tickets/bulk", {"op": "close", "ids": str(dash.world.tickets["xss"])})
    assert resp.status == 403 and dash.actions.calls == []
