"""Login, logout, server-side sessions, CSRF checks and security headers."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import quote, urlsplit

from aiohttp import web

from dashboards import throttle
from dashboards.context import SESSION_FACTORY, SETTINGS, VIEWER_KEY, Viewer, audit, now, render
from dashboards.security import new_token, same, token_id, verify_password
from dashboards.throttle import Limits
from storage.models import DashboardSession
from storage.repos import users as users_repo

log = logging.getLogger(__name__)

SESSION_COOKIE = "vw_session"
LOGIN_COOKIE = "vw_login"
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = ("/login", "/health", "/favicon.ico")
PASSWORD_PATHS = ("/password", "/logout")
"""What a login with a generated password may reach until its own password is chosen."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATIC_PREFIX = "/static/"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The dashboard's outermost error boundary: every response, error pages included, gets the headers."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _set_headers(exc)
        raise
    except Exception:  # a bug in a page: log it with context, answer in Chinese, keep serving
        log.exception("dashboard error on %s %s", request.method, request.path)
        response = web.Response(
            text="服务器内部错误，请稍后重试。", status=500, content_type="text/plain", charset="utf-8"
        )
    if request.path.startswith(STATIC_PREFIX) and response.status in (200, 304):
        # the stylesheet and scripts hold nothing private: kept, and revalidated (a 304) on each page, instead
        # of downloaded again with every page as no-store did (a phone on a slow link felt it)
        response.headers.setdefault("Cache-Control", "no-cache")
    _set_headers(response)
    return response


async def headers_on_prepare(_request: web.Request, response: web.StreamResponse) -> None:
    """The same headers on responses made outside the middlewares (aiohttp's own error pages)."""
    _set_headers(response)


def _set_headers(response: web.StreamResponse) -> None:
    if response.prepared:
        return
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not response.headers.get("Cache-Control"):
        response.headers["Cache-Control"] = "no-store"


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@web.middleware
async def require_login(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but /login, /health and /static needs a live session; every POST a CSRF token."""
    if _is_public(request.path):
        return await handler(request)
    found = await _load_viewer(request)
    if found is None:
        if request.method == "GET":
            target = request.path_qs
            raise web.HTTPFound("/login?next=" + quote(target, safe=""))
        raise web.HTTPForbidden(text="登录已过期，请重新登录")
    request[VIEWER_KEY] = found
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        await check_csrf(request, found.csrf)
    if found.must_change_password and request.path not in PASSWORD_PATHS:
        if request.method == "GET":
            raise web.HTTPFound("/password?next=" + quote(safe_next(request.path_qs), safe=""))
        raise web.HTTPForbidden(text="请先修改初始密码")
    return await handler(request)


async def check_csrf(request: web.Request, expected: str) -> None:
    sent = request.headers.get("X-CSRF-Token", "")
    if not sent and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get("_csrf", "")
        sent = value if isinstance(value, str) else ""
    if not expected or not sent or not same(sent, expected):
        raise web.HTTPForbidden(text="请求无效（缺少或错误的安全令牌），请刷新页面后重试")


async def _load_viewer(request: web.Request) -> Viewer | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    moment = now(request)
    async with request.app[SESSION_FACTORY]() as session:
        session_id = token_id(token, request.app[SETTINGS].secret)
        row = await users_repo.get_session(session, session_id=session_id)
        if row is None or row.expires_at <= moment:
            return None
        user = await users_repo.get_user(session, username=row.username)
    if user is None or not user.active:
        return None
    return Viewer(
        username=user.username,
        display_name=user.display_name or user.username,
        role=user.role,
        county=user.county,
        township=user.township,
        village=user.village,
        patrolled_to_flag_id=user.patrolled_to_flag_id,
        csrf=row.csrf,
        must_change_password=user.must_change_password,
        session_id=session_id,
        member_name=user.member_name or "",
    )


def safe_next(value: str) -> str:
    """Where to go after login: a path on this site only, else the home page.

    Browsers drop tabs and newlines from a URL and treat a backslash like a slash, so ``/\t/host`` or
    ``/\\host`` would leave the site: anything but printable ASCII is refused, as is anything with a scheme
    or a host.
    """
    if not value or len(value) > 2000 or not value.isascii() or not value.isprintable() or " " in value:
        return "/"
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


async def login_page(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(LOGIN_COOKIE) or new_token()
    response = render(request, "login.html", login_csrf=token, next=safe_next(request.query.get("next", "/")), error="")
    _cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


async def login_submit(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    form = await request.post()
    expected = request.cookies.get(LOGIN_COOKIE, "")
    sent = str(form.get("_csrf", ""))
    if not expected or not same(sent, expected):
        raise web.HTTPForbidden(text="请求无效（缺少或错误的安全令牌），请刷新页面后重试")
    username = str(form.get("username", "")).strip()[:64] or "?"
    password = str(form.get("password", ""))[:256]
    next_url = safe_next(str(form.get("next", "/")))
    source = (request.remote or "")[:64]
    moment = now(request)
    limits = Limits(
        per_pair=settings.login_attempts,
        per_source=settings.login_attempts_per_source,
        per_user=settings.login_attempts_per_user,
        window=timedelta(minutes=settings.login_window_minutes),
    )

    def _again(message: str, status: int = 401) -> web.Response:
        return render(request, "login.html", status=status, login_csrf=expected, next=next_url, error=message)

    async with request.app[SESSION_FACTORY]() as session, session.begin():
        attempt = await users_repo.add_audit_row(
            session, at=moment, username=username, action="login_attempt", target=source, detail=source
        )
    async with request.app[SESSION_FACTORY]() as session:
        others = await users_repo.audit_rows_since(
            session,
            actions=throttle.COUNTED,
            since=moment - limits.window,
            username=username,
            target=source,
            before_id=attempt,
        )
        wait = throttle.wait_needed(
            [(r.username, r.target, r.at) for r in others], username=username, source=source, now=moment, limits=limits
        )
        user = await users_repo.get_user(session, username=username) if wait <= timedelta(0) else None
    if wait > timedelta(0):
        await _settle(request, attempt, "login_throttled", f"{source} 等待{_seconds(wait)}秒")
        return _again(f"登录失败次数过多，请{_wait_text(wait)}后再试", status=429)
    stored_hash = user.password_hash if user is not None else None
    good = await asyncio.to_thread(verify_password, stored_hash, password)  # argon2 never on the event loop
    if user is None or not good:
        await _settle(request, attempt, "login_failed", source)
        return _again("用户名或密码错误")
    if not user.active:  # told only to whoever knows the password
        await _settle(request, attempt, "login_disabled", source)
        return _again("该账号已停用，请联系管理员", status=403)
    token = new_token()
    async with request.app[SESSION_FACTORY]() as session, session.begin():
        await users_repo.delete_expired_sessions(session, now=moment)
        await users_repo.create_session(
            session,
            row=DashboardSession(
                id=token_id(token, settings.secret),
                username=user.username,
                csrf=new_token(),
                created_at=moment,
                expires_at=moment + timedelta(minutes=settings.session_minutes),
            ),
        )
        await users_repo.settle_audit_row(session, audit_id=attempt, action="login", detail=source)
    if user.must_change_password:
        next_url = "/password?next=" + quote(next_url, safe="")
    response = web.HTTPFound(next_url)
    _cookie(request, response, SESSION_COOKIE, token, max_age=settings.session_minutes * 60)
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


async def _settle(request: web.Request, attempt: int, action: str, detail: str) -> None:
    async with request.app[SESSION_FACTORY]() as session, session.begin():
        await users_repo.settle_audit_row(session, audit_id=attempt, action=action, detail=detail)


def _seconds(wait: timedelta) -> int:
    return max(1, math.ceil(wait.total_seconds()))


def _wait_text(wait: timedelta) -> str:
    seconds = _seconds(wait)
    return f"{seconds}秒" if seconds < 60 else f"{math.ceil(seconds / 60)}分钟"


async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE, "")
    async with request.app[SESSION_FACTORY]() as session, session.begin():
        await users_repo.delete_session(session, session_id=token_id(token, request.app[SETTINGS].secret))
    await audit(request, "logout")
    response = web.HTTPFound("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def _cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.app[SETTINGS].secure_cookies,
    )
