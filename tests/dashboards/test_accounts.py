"""Accounts: the admins' users page, disabling, password resets and the forced change of a generated password."""

from __future__ import annotations

import re

from sqlmodel import select

from storage.models import AuditLog, DashboardSession, StaffUser
from tests.dashboards.conftest import CSRF_RE, Dash
from tests.dashboards.seed import PASSWORD

GENERATED_RE = re.compile(r'<code class="password">([^<]+)</code>')


async def _switch(dash: Dash, username: str, password: str = PASSWORD) -> str:
    """Log in as someone else in the same client; returns the new session cookie."""
    dash.client.session.cookie_jar.clear()
    await dash.login(username, password)
    return _cookie(dash)


def _cookie(dash: Dash) -> str:
    for cookie in dash.client.session.cookie_jar:
        if cookie.key == "vw_session":
            return cookie.value
    raise AssertionError("no session cookie")


def _use(dash: Dash, token: str) -> None:
    dash.client.session.cookie_jar.clear()
    dash.client.session.cookie_jar.update_cookies({"vw_session": token}, dash.client.make_url("/"))


async def _user(dash: Dash, username: str) -> StaffUser:
    async with dash.factory() as session:
        found = (await session.exec(select(StaffUser).where(StaffUser.username == username))).first()
    assert found is not None
    return found


async def test_only_admins_reach_the_users_page(dash: Dash) -> None:
    for username in ("county", "town_a", "cadre_a"):
        await _switch(dash, username)
        assert (await dash.client.get("/users")).status == 403, username
        resp = await dash.post("/users", {"username": "x", "role": "admin"})
        assert resp.status == 403, username
        assert "账号" not in re.sub(r"账号已", "", await (await dash.client.get("/tickets")).text()).split("<main>")[0]
    await _switch(dash, "admin")
    page = await (await dash.client.get("/users")).text()
    for name in ("town_a", "cadre_a", "镇纪委", "村干部", "舒城县 城关镇 石桥村"):
        assert name in page
    assert "township_staff" not in page.split("<main>")[1].replace('value="township_staff"', "")


async def test_a_new_account_is_checked_against_the_hierarchy_in_chinese(dash: Dash) -> None:
    await dash.login("admin")
    for form, message in [
        (
            {"username": "t1", "role": "township_staff", "county": "舒城县", "township": "城关填"},
            "镇“城关填”不在配置中",
        ),
        ({"username": "t1", "role": "township_staff", "township": "城关镇"}, "镇纪委账号需要填写 县"),
        (
            {"username": "t1", "role": "cadre", "county": "舒城县", "township": "龙山镇", "village": "石桥村"},
            "村“石桥村”不在配置中“龙山镇”之下",
        ),
        ({"username": "t1", "role": "boss"}, "角色“boss”不正确"),
        ({"username": "", "role": "admin"}, "用户名须为 1–64 个字符"),
        ({"username": "admin", "role": "admin"}, "账号 admin 已存在"),
    ]:
        resp = await dash.post("/users", form)
        assert resp.status == 400, form
        text = await resp.text()
        assert message in text, (form, text[-2000:])
        assert (
            'value="t1"' in text or not form["username"] or form["username"] == "admin"
        )  # the form keeps what was typed
    async with dash.factory() as session:
        assert (await session.exec(select(StaffUser).where(StaffUser.username == "t1"))).first() is None


async def test_a_generated_password_is_shown_once_and_must_be_changed_at_first_login(dash: Dash) -> None:
    await dash.login("admin")
    resp = await dash.post(
        "/users",
        {
            "username": "zhang",
            "display_name": "张干事",
            "role": "township_staff",
            "county": "舒城县",
            "township": "龙山镇",
        },
    )
    assert resp.status == 200
    found = GENERATED_RE.search(await resp.text())
    assert found is not None
    generated = found.group(1)
    assert generated not in await (await dash.client.get("/users")).text()  # once only
    assert (await _user(dash, "zhang")).must_change_password

    await _switch(dash, "zhang", generated)
    for path in ("/tickets", "/digest", "/stats"):
        resp = await dash.client.get(path, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"].startswith("/password?next="), path
    page = await (await dash.client.get("/tickets")).text()
    assert "系统生成的初始密码" in page
    assert (await dash.post("/digest/mark", {"upto": "1"})).status == 403
    for form, message in [
        ({"old": "wrong-one-1", "new": "my-own-pass-9", "confirm": "my-own-pass-9"}, "当前密码不正确"),
        ({"old": generated, "new": "my-own-pass-9", "confirm": "my-own-pass-8"}, "两次输入的新密码不一致"),
        ({"old": generated, "new": "short", "confirm": "short"}, "密码至少 8 个字符"),
        ({"old": generated, "new": generated, "confirm": generated}, "新密码不能与当前密码相同"),
    ]:
        resp = await dash.post("/password", {**form, "next": "/tickets"})
        assert resp.status == 400 and message in await resp.text(), form
    resp = await dash.post(
        "/password", {"old": generated, "new": "my-own-pass-9", "confirm": "my-own-pass-9", "next": "/tickets"}
    )
    assert resp.status == 302 and resp.headers["Location"] == "/tickets"
    assert (await dash.client.get("/tickets", allow_redirects=False)).status == 200
    assert not (await _user(dash, "zhang")).must_change_password
    await _switch(dash, "zhang", "my-own-pass-9")


async def test_everyone_can_change_their_own_password_and_other_sessions_end(dash: Dash) -> None:
    first = await _switch(dash, "cadre_a")
    second = await _switch(dash, "cadre_a")
    resp = await dash.post("/password", {"old": PASSWORD, "new": "new-cadre-pass", "confirm": "new-cadre-pass"})
    assert resp.status == 302 and resp.headers["Location"] == "/password?done=1"
    assert "密码已修改" in await (await dash.client.get("/password?done=1")).text()
    _use(dash, first)
    resp = await dash.client.get("/tickets", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")
    _use(dash, second)
    assert (await dash.client.get("/tickets", allow_redirects=False)).status == 200


async def test_a_disabled_account_is_logged_out_at_once_and_cannot_log_in(dash: Dash) -> None:
    town = await _switch(dash, "town_a")
    await _switch(dash, "admin")
    resp = await dash.post("/users/town_a/active", {"active": "0"})
    assert resp.status == 302
    assert "账号已停用" in await (await dash.client.get(resp.headers["Location"])).text()
    async with dash.factory() as session:
        left = (await session.exec(select(DashboardSession).where(DashboardSession.username == "town_a"))).all()
    assert left == []
    _use(dash, town)
    resp = await dash.client.get("/digest", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")
    page = await dash.client.get("/login")
    token = CSRF_RE.search(await page.text())
    assert token
    resp = await dash.client.post("/login", data={"_csrf": token.group(1), "username": "town_a", "password": PASSWORD})
    assert resp.status == 403 and "该账号已停用" in await resp.text()
    resp = await dash.client.post(
        "/login", data={"_csrf": token.group(1), "username": "town_a", "password": "wrong-wrong"}
    )
    assert resp.status == 401 and "用户名或密码错误" in await resp.text()  # a stranger learns nothing
    await _switch(dash, "admin")
    assert (await dash.post("/users/town_a/active", {"active": "1"})).status == 302
    await _switch(dash, "town_a")


async def test_a_reset_ends_the_sessions_and_forces_a_new_password(dash: Dash) -> None:
    county = await _switch(dash, "county")
    await _switch(dash, "admin")
    resp = await dash.post("/users/county/password")
    assert resp.status == 200
    found = GENERATED_RE.search(await resp.text())
    assert found is not None and "原有的登录已全部失效" in await resp.text()
    _use(dash, county)
    assert (await dash.client.get("/digest", allow_redirects=False)).status == 302
    await _switch(dash, "county", found.group(1))
    resp = await dash.client.get("/digest", allow_redirects=False)
    assert resp.headers["Location"].startswith("/password")


async def test_editing_a_scope_is_checked_and_the_last_admin_is_kept(dash: Dash) -> None:
    await dash.login("admin")
    page = await (await dash.client.get("/users/town_a")).text()
    assert 'value="城关镇" data-in="舒城县" selected' in page
    resp = await dash.post(
        "/users/town_a", {"display_name": "甲", "role": "township_staff", "county": "舒城县", "township": "无名镇"}
    )
    assert resp.status == 400 and "镇“无名镇”不在配置中" in await resp.text()
    resp = await dash.post(
        "/users/town_a",
        {"display_name": "甲", "role": "cadre", "county": "舒城县", "township": "龙山镇", "village": "龙山村"},
    )
    assert resp.status == 302
    user = await _user(dash, "town_a")
    assert (user.role, user.township, user.village, user.display_name) == ("cadre", "龙山镇", "龙山村", "甲")
    resp = await dash.post("/users/admin", {"display_name": "管理员", "role": "county_staff", "county": "舒城县"})
    assert resp.status == 400 and "最后一个管理员" in await resp.text()
    resp = await dash.post("/users/admin/active", {"active": "0"})
    assert resp.status == 400 and "不能停用自己" in await resp.text()
    assert (await dash.client.get("/users/nobody")).status == 404


async def test_account_changes_are_audited_and_the_log_reads_in_chinese(dash: Dash) -> None:
    await dash.login("admin")
    await dash.post("/users", {"username": "li", "role": "county_staff", "county": "舒城县"})
    await dash.post("/users/li/active", {"active": "0"})
    await dash.client.get(f"/tickets/{dash.world.tickets['water']}")
    async with dash.factory() as session:
        actions = [r.action for r in (await session.exec(select(AuditLog))).all()]
    assert {"user_add", "user_disable", "view_ticket"} <= set(actions)
    page = (await (await dash.client.get("/audit")).text()).split("<main>")[1]
    for chinese in ("新增账号", "停用账号", "查看工单", "登录"):
        assert chinese in page
    for raw in ("user_add", "user_disable", "view_ticket", "login_attempt"):
        assert f"<td>{raw}</td>" not in page


async def test_account_forms_need_the_csrf_token(dash: Dash) -> None:
    await dash.login("admin")
    for path in ("/users", "/users/town_a", "/users/town_a/active", "/users/town_a/password", "/password"):
        resp = await dash.client.post(
            path, data={"username": "x", "role": "admin", "active": "0"}, allow_redirects=False
        )
        assert resp.status == 403, path
    assert (await _user(dash, "town_a")).active


async def test_the_new_pages_need_a_login_and_forms_a_token(dash: Dash) -> None:
    for path in ("/users", "/users/town_a", "/password", "/roster", "/roster.csv", "/tickets?view=todo"):
        resp = await dash.client.get(path, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"].startswith("/login?next="), path
    for path in ("/tickets/bulk", "/roster/preview", "/roster/apply", "/users", "/password"):
        assert (await dash.client.post(path, data={"op": "close"}, allow_redirects=False)).status == 403, path
    await dash.login("town_a")
    for path in ("/tickets/bulk", "/roster/preview", "/roster/apply"):
        resp = await dash.client.post(path, data={"op": "close", "data": "x"}, allow_redirects=False)
        assert resp.status == 403, path


async def test_a_login_is_linked_to_its_roster_name_for_my_tickets(dash: Dash) -> None:
    await dash.login("admin")
    resp = await dash.post(
        "/users/cadre_a",
        {
            "display_name": "cadre_a",
            "role": "cadre",
            "county": "舒城县",
            "township": "城关镇",
            "village": "石桥村",
            "member_name": "李书记",
        },
    )
    assert resp.status == 302
    assert (await _user(dash, "cadre_a")).member_name == "李书记"
    await _switch(dash, "cadre_a")
    page = await (await dash.client.get("/tickets?view=mine")).text()
    assert f'id="ticket-{dash.world.tickets["xss"]}"' in page


async def test_audit_targets_read_in_chinese(dash: Dash) -> None:
    await dash.login("admin")
    await dash.client.get(f"/tickets/{dash.world.tickets['water']}")
    await dash.post("/users/town_b/password")
    page = (await (await dash.client.get("/audit")).text()).split("<main>")[1]
    assert f"工单 #{dash.world.tickets['water']}" in page and "账号 town_b" in page
    assert "ticket:" not in page and "user:" not in page
