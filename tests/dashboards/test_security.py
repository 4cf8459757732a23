"""Logins, scopes, confidentiality, CSRF, escaping and session expiry."""

from __future__ import annotations

from sqlmodel import select

from storage.models import AuditLog
from tests.dashboards.conftest import CSRF_RE, Dash
from tests.dashboards.seed import XSS_IMG, XSS_SCRIPT


async def test_every_page_needs_a_login(dash: Dash) -> None:
    for path in [
        "/",
        "/digest",
        "/tickets",
        f"/tickets/{dash.world.tickets['water']}",
        "/stats",
        "/exports",
        "/exports/tickets.xlsx?since=2026-01-01&until=2026-12-31",
        "/rules",
        "/audit",
    ]:
        resp = await dash.client.get(path, allow_redirects=False)
        assert resp.status == 302, path
        assert resp.headers["Location"].startswith("/login?next="), path
    resp = await dash.client.post(
        f"/flags/{dash.world.flags['banquet']}/verdict", data={"verdict": "confirmed"}, allow_redirects=False
    )
    assert resp.status == 403
    assert (await dash.client.get("/static/style.css")).status == 200
    assert (await dash.client.get("/login")).status == 200


async def test_wrong_password_and_unknown_user_are_refused_alike(dash: Dash) -> None:
    page = await dash.client.get("/login")
    token = CSRF_RE.search(await page.text())
    assert token
    for user, password in [("admin", "wrong-password"), ("nobody", "whatever-pass")]:
        resp = await dash.client.post("/login", data={"_csrf": token.group(1), "username": user, "password": password})
        assert resp.status == 401
        assert "用户名或密码错误" in await resp.text()


async def test_login_is_throttled_after_repeated_failures(dash: Dash) -> None:
    page = await dash.client.get("/login")
    token = CSRF_RE.search(await page.text())
    assert token
    for _ in range(5):
        await dash.client.post("/login", data={"_csrf": token.group(1), "username": "town_a", "password": "bad"})
    resp = await dash.client.post(
        "/login", data={"_csrf": token.group(1), "username": "town_a", "password": "correct-horse-42"}
    )
    assert resp.status == 429
    assert "登录失败次数过多" in await resp.text()
    dash.clock.advance(minutes=16)
    await dash.login("town_a")


async def test_login_without_its_csrf_token_is_rejected(dash: Dash) -> None:
    resp = await dash.client.post("/login", data={"username": "admin", "password": "correct-horse-42"})
    assert resp.status == 403


async def test_session_cookie_flags(dash: Dash) -> None:
    page = await dash.client.get("/login")
    token = CSRF_RE.search(await page.text())
    assert token
    resp = await dash.client.post(
        "/login",
        data={"_csrf": token.group(1), "username": "admin", "password": "correct-horse-42"},
        allow_redirects=False,
    )
    cookie = resp.cookies["vw_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]


async def test_post_without_csrf_token_is_rejected(dash: Dash) -> None:
    await dash.login("town_a")
    flag = dash.world.flags["banquet"]
    resp = await dash.client.post(f"/flags/{flag}/verdict", data={"verdict": "confirmed"}, allow_redirects=False)
    assert resp.status == 403
    resp = await dash.client.post(
        f"/flags/{flag}/verdict", data={"verdict": "confirmed", "_csrf": "forged"}, allow_redirects=False
    )
    assert resp.status == 403
    resp = await dash.post(f"/flags/{flag}/verdict", {"verdict": "confirmed"})
    assert resp.status == 302
    resp = await dash.client.post(
        "/broadcasts", data={"kind": "notice", "text": "x", "all": "1"}, allow_redirects=False
    )
    assert resp.status == 403
    assert dash.broadcaster.calls == []
    resp = await dash.client.post("/logout", allow_redirects=False)
    assert resp.status == 403


async def test_sessions_expire_server_side(dash: Dash) -> None:
    await dash.login("town_a")
    assert (await dash.client.get("/digest", allow_redirects=False)).status == 200
    dash.clock.advance(minutes=61)
    resp = await dash.client.get("/digest", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"].startswith("/login")


async def test_logout_ends_the_session(dash: Dash) -> None:
    await dash.login("town_a")
    stolen = dash.client.session.cookie_jar.filter_cookies(dash.client.make_url("/"))["vw_session"].value
    assert (await dash.post("/logout")).status == 302
    dash.client.session.cookie_jar.update_cookies({"vw_session": stolen})
    resp = await dash.client.get("/digest", allow_redirects=False)
    assert resp.status == 302


async def test_message_text_renders_as_text(dash: Dash) -> None:
    await dash.login("admin")
    for path in [
        "/digest",
        f"/flags/{dash.world.flags['xss_img']}",
        f"/flags/{dash.world.flags['xss_script']}",
        "/tickets",
        f"/tickets/{dash.world.tickets['xss']}",
    ]:
        html = await (await dash.client.get(path)).text()
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
        assert "onerror=alert(1)>" not in html, path
    html = await (await dash.client.get("/digest")).text()
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;下周摆" in html
    assert XSS_SCRIPT not in html and XSS_IMG not in html


async def test_township_staff_cannot_open_another_townships_ticket_or_flag(dash: Dash) -> None:
    await dash.login("town_b")
    for path in [
        f"/flags/{dash.world.flags['banquet']}",
        f"/tickets/{dash.world.tickets['water']}",
        f"/tickets/{dash.world.tickets['clue']}",
    ]:
        resp = await dash.client.get(path)
        assert resp.status == 404, path
    resp = await dash.post(f"/flags/{dash.world.flags['banquet']}/verdict", {"verdict": "false_alarm"})
    assert resp.status == 404
    resp = await dash.post(f"/tickets/{dash.world.tickets['water']}/note", {"text": "hi"})
    assert resp.status == 404
    assert dash.actions.calls == []
    board = await (await dash.client.get("/tickets")).text()
    assert "龙山村路灯坏了" in board and "张湾组" not in board
    digest = await (await dash.client.get("/digest?all=1")).text()
    assert "祠堂今晚" in digest and "家父八十" not in digest
    # their own township's items open
    assert (await dash.client.get(f"/tickets/{dash.world.tickets['other_town']}")).status == 200
    assert (await dash.client.get(f"/flags/{dash.world.flags['other_town']}")).status == 200


async def test_cadre_never_sees_confidential_tickets_or_clue_flags(dash: Dash) -> None:
    await dash.login("cadre_a")
    assert (await dash.client.get(f"/tickets/{dash.world.tickets['clue']}")).status == 404
    board = await (await dash.client.get("/tickets")).text()
    assert "升学宴" not in board and "张湾组" in board and "路堵了" not in board  # 河西村 is not theirs
    # cadres are supervised, not supervisors: no digest, flags, verdicts, rules or audit, even by URL
    for path in ("/digest", "/digest?all=1", f"/flags/{dash.world.flags['banquet']}", "/rules", "/audit"):
        assert (await dash.client.get(path, allow_redirects=False)).status == 403, path
    assert (await dash.post("/digest/mark", {"upto": "999"})).status == 403
    assert (await dash.client.get("/broadcasts")).status == 403
    assert (await dash.post(f"/tickets/{dash.world.tickets['water']}/transfer", {"to_member": "x"})).status == 403
    assert (await dash.post(f"/flags/{dash.world.flags['banquet']}/verdict", {"verdict": "confirmed"})).status == 403


async def test_county_staff_see_the_confidential_ticket(dash: Dash) -> None:
    await dash.login("county")
    resp = await dash.client.get(f"/tickets/{dash.world.tickets['clue']}")
    assert resp.status == 200
    assert "升学宴" in await resp.text()


async def test_numbers_are_masked_on_pages_for_non_admins(dash: Dash) -> None:
    await dash.login("town_a")
    html = await (await dash.client.get("/digest?all=1")).text()
    assert "138****5678" in html and "13812345678" not in html


async def test_staff_actions_are_audited(dash: Dash) -> None:
    await dash.login("town_a")
    await dash.post(f"/flags/{dash.world.flags['banquet']}/verdict", {"verdict": "confirmed", "note": "已核实"})
    await dash.post(f"/tickets/{dash.world.tickets['water']}/note", {"text": "已电话回访"})
    async with dash.factory() as session:
        actions = [(a.username, a.action) for a in (await session.exec(select(AuditLog))).all()]
    assert ("town_a", "login") in actions
    assert ("town_a", "flag_verdict") in actions
    assert ("town_a", "ticket_note") in actions


async def test_pages_are_not_stored_but_the_stylesheet_is_revalidated(dash: Dash) -> None:
    await dash.login("town_a")
    page = await dash.client.get("/tickets")
    assert page.headers["Cache-Control"] == "no-store"
    css = await dash.client.get("/static/style.css")
    assert css.status == 200 and css.headers["Cache-Control"] == "no-cache"
    again = await dash.client.get("/static/style.css", headers={"If-Modified-Since": css.headers["Last-Modified"]})
    assert again.status == 304
    script = await dash.client.get("/static/phone.js")
    assert script.status == 200 and "cards-on-phone" in await script.text()
