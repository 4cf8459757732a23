"""Verdicts, the patrol mark, ticket actions, broadcasts, exports, statistics, the rule bench, users."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from aiohttp import FormData
from openpyxl import load_workbook
from sqlalchemy import update
from sqlmodel import col, select

from dashboards.users import UserError, add_user, ensure_first_admin
from storage.models import AuditLog, Flag, FlagReview, Message, StaffUser
from storage.repos.dashboard import Scope, ticket_stats
from tests.dashboards.conftest import Dash


async def test_verdict_is_recorded_with_who_and_when_and_feeds_precision(dash: Dash) -> None:
    await dash.login("town_a")
    flag_id = dash.world.flags["banquet"]
    resp = await dash.post(f"/flags/{flag_id}/verdict", {"verdict": "confirmed", "note": "确有其事", "back": "/digest"})
    assert resp.status == 302 and resp.headers["Location"] == "/digest"
    await dash.post(f"/flags/{dash.world.flags['xss_img']}/verdict", {"verdict": "false_alarm"})
    await dash.post(f"/flags/{flag_id}/verdict", {"verdict": "note", "note": "已约谈"})
    async with dash.factory() as session:
        reviews = (await session.exec(select(FlagReview).where(FlagReview.flag_id == flag_id))).all()
        flag = await session.get(Flag, flag_id)
    assert [(r.username, r.verdict, r.note) for r in reviews] == [
        ("town_a", "confirmed", "确有其事"),
        ("town_a", "note", "已约谈"),
    ]
    assert reviews[0].at == dash.clock.now
    assert flag is not None and flag.verdict == "confirmed"
    page = await (await dash.client.get(f"/flags/{flag_id}")).text()
    assert "确有其事" in page and "已约谈" in page
    rules = await (await dash.client.get("/rules")).text()
    # banquet.birthday: 1 confirmed, 1 false alarm → 50%
    assert "50.0%" in rules
    assert "寿宴 | 大寿 | 摆酒" in rules


async def test_bad_verdict_is_refused(dash: Dash) -> None:
    await dash.login("town_a")
    assert (await dash.post(f"/flags/{dash.world.flags['banquet']}/verdict", {"verdict": "drop table"})).status == 400


async def test_patrol_mark_hides_what_was_patrolled(dash: Dash) -> None:
    await dash.login("town_a")
    page = await (await dash.client.get("/digest")).text()
    assert "家父八十" in page
    # high severity first
    order = [page.index(f'id="flag-{dash.world.flags[k]}"') for k in ("clue", "banquet", "xss_img", "xss_script")]
    assert order == sorted(order)
    assert (await dash.post("/digest/mark", {"upto": "999"})).status == 302
    async with dash.factory() as session:
        user = (await session.exec(select(StaffUser).where(StaffUser.username == "town_a"))).one()
    assert user.patrolled_to_flag_id == 999 and user.patrolled_at == dash.clock.now
    page = await (await dash.client.get("/digest")).text()
    assert "没有新的预警" in page
    page = await (await dash.client.get("/digest?all=1")).text()
    assert "家父八十" in page


async def test_ticket_actions_go_through_the_port(dash: Dash) -> None:
    await dash.login("town_a")
    tid = dash.world.tickets["water"]
    for action, data in [
        ("transfer", {"to_member": "张主任"}),
        ("escalate", {"reason": "群众反复反映"}),
        ("extend", {"working_days": "5"}),
        ("note", {"text": "已回访"}),
    ]:
        resp = await dash.post(f"/tickets/{tid}/{action}", data)
        assert resp.status == 302 and resp.headers["Location"] == f"/tickets/{tid}?done={action}"
    form = FormData()
    form.add_field("_csrf", dash.csrf)
    form.add_field("note", "修好了")
    form.add_field("image", b"\xff\xd8fakejpeg", filename="fix.jpg", content_type="image/jpeg")
    resp = await dash.client.post(f"/tickets/{tid}/photo", data=form, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    assert [(name, kwargs.get("actor")) for name, _, kwargs in dash.actions.calls] == [
        ("transfer", "town_a"),
        ("escalate", "town_a"),
        ("approve_extension", "town_a"),
        ("add_note", "town_a"),
        ("upload_photo", "town_a"),
    ]
    assert dash.actions.calls[2][2]["working_days"] == 5
    assert dash.actions.calls[4][2]["size"] == 10
    assert (
        (await dash.post(f"/tickets/{tid}/extend", {"working_days": "99"}))
        .headers["Location"]
        .startswith(f"/tickets/{tid}?error=")
    )
    dash.actions.refuse = "工单已关闭"
    resp = await dash.post(f"/tickets/{tid}/note", {"text": "x"})
    page = await (await dash.client.get(resp.headers["Location"])).text()
    assert "工单已关闭" in page


async def test_ticket_page_shows_history_reporters_and_messages(dash: Dash) -> None:
    await dash.login("town_a")
    page = await (await dash.client.get(f"/tickets/{dash.world.tickets['water']}")).text()
    assert "高某林" in page and "受理登记" in page and "张湾组连续三天停水了" in page and "满意" in page


async def test_board_filters(dash: Dash) -> None:
    await dash.login("admin")
    page = await (await dash.client.get("/tickets?status=closed")).text()
    assert "龙山村路灯" in page and "张湾组" not in page
    page = await (await dash.client.get("/tickets?q=停水")).text()
    assert "张湾组" in page and "龙山村路灯" not in page
    page = await (await dash.client.get("/tickets?township=城关镇&category=road_traffic")).text()
    assert "路堵了" in page and "张湾组" not in page


async def test_broadcasts(dash: Dash) -> None:
    await dash.login("town_a")
    resp = await dash.post("/broadcasts", {"kind": "notice", "text": "明天开会", "all": "1"})
    assert resp.status == 200 and "确认发送到 2 个群" in await resp.text()  # confirmation first
    assert dash.broadcaster.calls == []
    resp = await dash.post("/broadcasts", {"kind": "notice", "text": "明天开会", "all": "1", "confirm": "2"})
    assert resp.status == 302 and resp.headers["Location"] == "/broadcasts/1?sent=1"
    assert sorted(dash.broadcaster.calls[0]["groups"]) == sorted(["石桥村监督服务群", "河西村监督服务群"])
    resp = await dash.client.post(
        "/broadcasts",
        data=[
            ("_csrf", dash.csrf),
            ("kind", "clarification"),
            ("text", "经核查，反映不实"),
            ("groups", "石桥村监督服务群"),
            ("groups", "河西村监督服务群"),
            ("confirm", "2"),
        ],
        allow_redirects=False,
    )
    assert resp.status == 400 and "澄清只能发往一个群" in await resp.text()
    resp = await dash.post(
        "/broadcasts",
        {"kind": "clarification", "text": "经核查，反映不实", "groups": "河西村监督服务群", "confirm": "1"},
    )
    assert dash.broadcaster.calls[1] == {
        "actor": "town_a",
        "kind": "clarification",
        "text": "经核查，反映不实",
        "groups": ["河西村监督服务群"],
    }
    resp = await dash.post("/broadcasts", {"kind": "notice", "text": "x", "groups": "龙山村监督服务群", "confirm": "1"})
    assert resp.status == 403
    assert len(dash.broadcaster.calls) == 2


async def _sheet(dash: Dash, path: str) -> list[tuple[object, ...]]:
    resp = await dash.client.get(path)
    assert resp.status == 200, await resp.text()
    wb = load_workbook(io.BytesIO(await resp.read()))
    return [tuple(r) for r in wb.active.iter_rows(values_only=True)]  # type: ignore[union-attr]


async def test_exports_mask_numbers_unless_admin(dash: Dash) -> None:
    await dash.login("town_a")
    rows = await _sheet(dash, "/exports/tickets.xlsx?since=2026-09-01&until=2026-09-30")
    assert rows[0][:3] == ("编号", "投诉时间", "乡镇")
    text = "\n".join(str(c) for r in rows for c in r)
    assert "110101********1234" in text and "110101199001011234" not in text
    assert "升学宴" in text  # township staff are discipline staff
    assert "龙山村" not in text
    flags = await _sheet(dash, "/exports/flags.xlsx?since=2026-09-01&until=2026-09-30")
    ftext = "\n".join(str(c) for r in flags for c in r)
    assert "138****5678" in ftext and "13812345678" not in ftext
    await dash.login("admin")
    rows = await _sheet(dash, "/exports/tickets.xlsx?since=2026-09-01&until=2026-09-30")
    assert "110101199001011234" in "\n".join(str(c) for r in rows for c in r)
    await dash.login("cadre_a")
    rows = await _sheet(dash, "/exports/tickets.xlsx?since=2026-09-01&until=2026-09-30")
    assert "升学宴" not in "\n".join(str(c) for r in rows for c in r)


async def test_statistics_definitions(dash: Dash) -> None:
    async with dash.factory() as session:
        rows, total = await ticket_stats(
            session,
            scope=Scope(),
            since=datetime(2026, 1, 1, tzinfo=UTC),
            until=datetime(2027, 1, 1, tzinfo=UTC),
            dimension="township",
        )
    assert total["received"] == 5
    assert total["done"] == 2  # resolved + closed
    assert total["resolved"] == 2 and total["on_time"] == 2
    assert (total["satisfied"], total["rated"]) == (1, 2)
    assert total["within5"] == 1
    assert total["median_response"] == pytest.approx(7200, abs=1)
    assert total["median_resolution"] == pytest.approx(4 * 86400, abs=1)
    by = {r["key"]: r["received"] for r in rows}
    assert by == {"城关镇": 4, "龙山镇": 1}
    await dash.login("town_a")
    page = await (await dash.client.get("/stats?since=2026-09-01&until=2026-09-30")).text()
    assert "<svg" in page and "办结率" in page and "2小时<" in page


async def test_rule_bench_and_shadow_switch(dash: Dash) -> None:
    await dash.login("town_a")
    page = await (
        await dash.client.post(
            "/bench", data={"_csrf": dash.csrf, "text": "家父八十大寿", "role": "party_member", "action": "classify"}
        )
    ).text()
    assert "banquet.birthday" in page and "大操大办" in page
    page = await (await dash.client.post("/bench", data={"_csrf": dash.csrf, "days": "7", "action": "dry_run"})).text()
    assert "结果会变化的消息（1 条）" in page
    assert ("dry_run", (7, "舒城县", "城关镇", None, 200)) in dash.bench.calls
    assert (await dash.post("/rules/banquet.birthday/shadow", {"shadow": "1"})).status == 403
    await dash.login("county")
    assert (await dash.post("/rules/banquet.birthday/shadow", {"shadow": "1"})).status == 302
    assert dash.bench.shadow["banquet.birthday"] is True
    assert (await dash.post("/rules/nope/shadow", {"shadow": "1"})).status == 404


async def test_user_helpers(dash: Dash) -> None:
    assert await ensure_first_admin(dash.factory) is None
    with pytest.raises(UserError):
        await add_user(dash.factory, username="x", password="short", role="admin")
    with pytest.raises(UserError):
        await add_user(dash.factory, username="t", password="long-enough", role="township_staff", county="舒城县")
    with pytest.raises(UserError):
        await add_user(dash.factory, username="admin", password="long-enough", role="admin")


async def test_first_admin_on_an_empty_database(engine) -> None:  # type: ignore[no-untyped-def]
    from storage.engine import make_session_factory

    factory = make_session_factory(engine)
    login = await ensure_first_admin(factory)
    assert login is not None and login[0] == "admin" and len(login[1]) >= 12
    assert await ensure_first_admin(factory) is None


async def test_statistics_can_narrow_to_a_township(dash: Dash) -> None:
    await dash.login("admin")
    page = await (await dash.client.get("/stats?since=2026-09-01&until=2026-09-30&township=龙山镇&dim=village")).text()
    assert "龙山镇 / 龙山村" in page and "城关镇 / 石桥村" not in page
    await dash.login("town_b")
    # a township's staff cannot widen their scope with the filter
    page = await (await dash.client.get("/stats?since=2026-09-01&until=2026-09-30&township=城关镇&dim=village")).text()
    assert "城关镇 / 石桥村" not in page


async def test_kept_raw_messages_are_shown_to_staff_and_rerun_by_them(dash: Dash) -> None:
    async with dash.factory() as session, session.begin():
        for n in range(2):
            session.add(
                Message(
                    account="demo",
                    platform_id=f"raw-{n}",
                    at=datetime(2026, 9, 9, 8, 0, tzinfo=UTC),
                    group_name="石桥村监督服务群",
                    sender_name="新村民",
                    text="本周六家父七十大寿,请大家赏光",
                    unassigned=True,
                    kept_raw=True,
                )
            )

    async def clear() -> int:
        async with dash.factory() as session, session.begin():
            result = await session.exec(update(Message).where(col(Message.kept_raw)).values(kept_raw=False))
            return int(result.rowcount)

    dash.pipeline.clear = clear

    await dash.login("cadre_a")
    assert "原样保存" not in await (await dash.client.get("/digest")).text()
    assert (await dash.post("/kept-raw/rerun")).status == 403
    assert dash.pipeline.calls == []

    await dash.login("town_a")
    page = await (await dash.client.get("/digest")).text()
    assert "有 2 条消息处理失败，已原样保存但尚未分类" in page and 'action="/kept-raw/rerun"' in page
    # the existing CSRF token protects it
    refused = await dash.client.post("/kept-raw/rerun", data={"_csrf": "forged"}, allow_redirects=False)
    assert refused.status == 403 and dash.pipeline.calls == []

    resp = await dash.post("/kept-raw/rerun")
    assert resp.status == 302 and resp.headers["Location"] == "/digest?rerun=2.0"
    assert dash.pipeline.calls == ["town_a"]
    page = await (await dash.client.get(resp.headers["Location"])).text()
    assert "已重新处理 2 条原样保存的消息" in page and "尚未分类" not in page
    async with dash.factory() as session:
        audited = (await session.exec(select(AuditLog).where(AuditLog.action == "rerun_kept_raw"))).all()
    assert [(a.username, a.detail) for a in audited] == [("town_a", "2条已处理 0条仍失败 0条待处理")]


async def test_split_and_merge_go_through_the_port_and_are_audited(dash: Dash) -> None:
    await dash.login("town_a")
    tid = dash.world.tickets["water"]
    resp = await dash.post(f"/tickets/{tid}/split", {"reporter": "张三"})
    assert resp.headers["Location"] == f"/tickets/{tid}?done=split"
    resp = await dash.post(f"/tickets/{tid}/merge", {"into": f"#{tid}"})
    assert resp.headers["Location"] == f"/tickets/{tid}?done=merge"
    assert [(name, kwargs) for name, _, kwargs in dash.actions.calls] == [
        ("split", {"actor": "town_a", "reporter": "张三"}),
        ("merge", {"actor": "town_a", "into": tid}),
    ]
    other = dash.world.tickets["other_town"]
    resp = await dash.post(f"/tickets/{tid}/merge", {"into": str(other)})
    assert resp.status == 404  # another township's ticket is not a merge target
    async with dash.factory() as session:
        actions = {row.action for row in (await session.exec(select(AuditLog))).all()}
    assert {"ticket_split", "ticket_merge"} <= actions
