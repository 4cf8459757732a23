"""The roster pages: members in scope, CSV import with a preview and per-row errors, export, assigning a role
to someone the bot met in a group; every change reaches the running bot's directory at once."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import FormData
from sqlmodel import select

from storage.models import AuditLog, Member
from tests.dashboards.conftest import Dash
from tests.dashboards.seed import staff_roster

HEADER = "name,role,village,township,county,group,categories,head,platform_id\n"
GOOD = "张新,cadre,河西村,,,,road_traffic|water,是,\n王党员,party_member,石桥村,,,,,,\n"
BAD = (
    "赵六,boss,石桥村,,,,,,\n"  # line 4: unknown role
    "钱七,villager,无名村,,,,,,\n"  # line 5: unknown village
    "孙八,cadre,龙山村,,,,,,\n"  # line 6: another township (out of town_a's scope)
    "张新,villager,河西村,,,,,,\n"  # line 7: the same person twice
)


async def _upload(dash: Dash, text: str) -> str:
    form = FormData()
    form.add_field("_csrf", dash.csrf)
    form.add_field("file", text.encode("utf-8"), filename="roster.csv", content_type="text/csv")
    resp = await dash.client.post("/roster/preview", data=form)
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def _member(dash: Dash, name: str) -> Member | None:
    async with dash.factory() as session:
        return (await session.exec(select(Member).where(Member.name == name))).first()


async def test_cadres_have_no_roster_pages(dash: Dash) -> None:
    await dash.login("cadre_a")
    for path in ("/roster", "/roster.csv", "/roster?tab=unassigned"):
        assert (await dash.client.get(path)).status == 403, path
    assert (await dash.post("/roster/preview", {"data": HEADER + GOOD})).status == 403
    assert (await dash.post("/roster/apply", {"data": HEADER + GOOD})).status == 403
    assert "花名册" not in (await (await dash.client.get("/tickets")).text()).split("<main>")[0]


async def test_the_roster_lists_the_viewers_scope_with_roles_categories_and_heads(dash: Dash) -> None:
    await dash.login("town_a")
    page = (await (await dash.client.get("/roster")).text()).split("<main>")[1]
    assert "李书记" in page and "村干部" in page and "供水" in page and "王党员" in page and "党员" in page
    assert "村民甲" not in page  # not on the roster: listed on the other tab
    unassigned = (await (await dash.client.get("/roster?tab=unassigned")).text()).split("<main>")[1]
    assert "村民甲" in unassigned and "赌客" not in unassigned  # 赌客 is in 龙山镇
    assert "13912345678" not in unassigned and "139****5678" in unassigned  # a number is masked where read
    await dash.login("town_b")
    page = await (await dash.client.get("/roster?tab=unassigned")).text()
    assert "赌客" in page and "村民甲" not in page


async def test_an_import_is_previewed_row_by_row_and_applied_only_on_confirmation(dash: Dash) -> None:
    await dash.login("town_a")
    dash.directory.forget()
    async with dash.factory() as session:  # the running bot has 王党员 cached
        cached = await dash.directory.member(session, "王党员")
    assert cached is not None and cached.village == "石桥村"
    preview = await _upload(dash, HEADER + GOOD + BAD)
    for expected in (
        "第 4 行",
        "role(身份)“boss”不正确",
        "第 5 行",
        "village(村)“无名村”不在配置的县、镇、村中",
        "第 6 行",
        "不在您的管辖范围（舒城县 城关镇）内",
        "第 7 行",
        "与第 2 行重复",
        "确认导入无误的 2 行",
    ):
        assert expected in preview, expected
    assert await _member(dash, "张新") is None  # nothing applied by a preview
    data = re.search(r'name="data" value="([^"]*)"', preview)
    assert data is not None
    resp = await dash.post("/roster/apply", {"data": HEADER + GOOD + BAD})
    assert resp.status == 302 and resp.headers["Location"] == "/roster?done=2"
    assert "已导入 2 人" in await (await dash.client.get("/roster?done=2")).text()
    new = await _member(dash, "张新")
    assert new is not None and (new.role, new.township, new.categories, new.is_head) == (
        "cadre",
        "城关镇",
        ["road_traffic", "water"],
        True,
    )
    assert await _member(dash, "孙八") is None and await _member(dash, "赵六") is None
    async with dash.factory() as session:  # the bot's cache was dropped: it reads the new row at once
        assert await dash.directory.member(session, "张新") is not None
        audit = (await session.exec(select(AuditLog).where(AuditLog.action == "roster_import"))).all()
    assert len(audit) == 1 and "导入2人" in audit[0].detail


async def test_a_broken_file_is_refused_as_a_whole(dash: Dash) -> None:
    await dash.login("town_a")
    page = await _upload(dash, "姓名,身份\n张三,村民\n")
    assert "整个文件" not in page and "第 1 行" in page and "表头有不认识的列" in page
    assert "确认导入" not in page
    form = FormData()
    form.add_field("_csrf", dash.csrf)
    form.add_field("file", "name,role\n张三,cadre\n".encode("gbk"), filename="r.csv", content_type="text/csv")
    page = await (await dash.client.post("/roster/preview", data=form)).text()
    assert "不是 UTF-8 编码" in page
    resp = await dash.post("/roster/apply", {"data": HEADER + "".join(BAD.splitlines(keepends=True)[:3])})
    assert resp.status == 400 and "没有可以导入的行" in await resp.text()


async def test_the_export_reads_back_as_the_same_roster(dash: Dash) -> None:
    await dash.login("town_a")
    resp = await dash.client.get("/roster.csv")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    body = await resp.read()
    assert body.startswith("\ufeff".encode())
    text = body.decode("utf-8-sig")
    assert text.splitlines()[0] == HEADER.strip()
    assert "李书记,cadre,石桥村,城关镇,舒城县,石桥村监督服务群,water,是," in text
    assert "村民甲" not in text
    rows = dash.roster.preview(body)
    assert [r.error for r in rows] == [None, None] and {r.name for r in rows} == {"李书记", "王党员"}


async def test_someone_met_in_a_group_is_given_a_role_at_once(dash: Dash) -> None:
    await dash.login("town_a")
    villager = await _member(dash, "村民甲")
    other_town = await _member(dash, "赌客")
    assert villager is not None and other_town is not None
    async with dash.factory() as session:
        cached = await dash.directory.member(session, "村民甲")
    assert cached is not None and cached.role == "villager"
    resp = await dash.post(
        f"/roster/members/{villager.id}/assign", {"role": "cadre", "categories": "water", "head": "1"}
    )
    assert resp.status == 302 and "done=assigned" in resp.headers["Location"]
    updated = await _member(dash, "村民甲")
    assert updated is not None and (updated.role, updated.on_roster, updated.categories, updated.village) == (
        "cadre",
        True,
        ["water"],
        "石桥村",
    )
    async with dash.factory() as session:
        now = await dash.directory.member(session, "村民甲")
    assert now is not None and now.role == "cadre"
    resp = await dash.post(f"/roster/members/{other_town.id}/assign", {"role": "cadre"})
    assert resp.status == 404  # outside town_a's scope: as if absent
    resp = await dash.post(f"/roster/members/{villager.id}/assign", {"role": "mayor"})
    assert resp.status == 302 and "error=" in resp.headers["Location"]


async def test_changes_are_written_back_to_the_roster_file(dash: Dash, tmp_path: Path) -> None:
    file = tmp_path / "roster.csv"
    file.write_text(HEADER, encoding="utf-8")
    roster, _directory = staff_roster(dash.factory, file)
    rows = roster.preview((HEADER + GOOD).encode())
    assert await roster.apply(rows, actor="town_a") == 2
    from bot.directory import read_roster
    from tests.dashboards.seed import seed_config

    again = {e.name: e for e in read_roster(file, seed_config(file))}
    assert {"李书记", "王党员", "张新"} <= set(again) and again["张新"].categories == ("road_traffic", "water")


async def test_roles_may_be_written_in_chinese(dash: Dash) -> None:
    rows = dash.roster.preview((HEADER + "周九,村干部,石桥村,,,,,否,\n吴十,书记,石桥村,,,,,,\n").encode())
    assert rows[0].error is None and rows[0].role == "cadre"
    assert rows[1].error is not None and "cadre(村干部)" in rows[1].error


async def test_names_in_an_uploaded_roster_are_shown_as_text(dash: Dash) -> None:
    await dash.login("town_a")
    page = await _upload(dash, HEADER + '"<script>alert(1)</script>",villager,石桥村,,,,,,\n<b>x</b>,boss,,,,,,,\n')
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page
