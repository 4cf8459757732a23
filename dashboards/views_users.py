"""Accounts: the admins' users page (add, edit scope, disable, reset a password) and everyone's password change."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from dashboards import users
from dashboards.auth import safe_next
from dashboards.context import ROLES, SESSION_FACTORY, audit, render, require, viewer
from dashboards.labels import STAFF_ROLES
from dashboards.users import Hierarchy, UserError
from storage.repos import dashboard as repo
from storage.repos import users as users_repo


async def hierarchy(request: web.Request) -> Hierarchy:
    """The configured counties, townships and villages (synced into the groups table at every start)."""
    async with request.app[SESSION_FACTORY]() as session:
        return Hierarchy.of(await repo.configured_places(session))


def _field(form: Any, name: str, limit: int = 64) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def _scope_text(role: str, county: str, township: str, village: str) -> str:
    """An account's role and scope as the audit log shows them: 镇纪委 舒城县 城关镇."""
    return f"{STAFF_ROLES.get(role, role)} " + (" ".join(p for p in (county, township, village) if p) or "全部")


async def _page(request: web.Request, *, status: int = 200, **context: Any) -> web.Response:
    async with request.app[SESSION_FACTORY]() as session:
        accounts = await users_repo.list_users(session)
    context.setdefault("error", "")
    context.setdefault("done", request.query.get("done", ""))
    context.setdefault("form", {})
    context.setdefault("generated", None)
    return render(
        request,
        "users.html",
        status=status,
        accounts=accounts,
        places=await hierarchy(request),
        roles=ROLES,
        **context,
    )


async def users_page(request: web.Request) -> web.StreamResponse:
    require(request, viewer(request).manages_accounts)
    return await _page(request)


async def add_user(request: web.Request) -> web.StreamResponse:
    require(request, viewer(request).manages_accounts)
    form = await request.post()
    values = {k: _field(form, k) for k in ("username", "display_name", "role", "county", "township", "village")}
    password = users.random_password()
    try:
        await users.add_user(
            request.app[SESSION_FACTORY],
            username=values["username"],
            password=password,
            role=values["role"],
            county=values["county"],
            township=values["township"],
            village=values["village"],
            display_name=values["display_name"],
            hierarchy=await hierarchy(request),
            must_change=True,
        )
    except UserError as exc:
        return await _page(request, status=400, error=str(exc), form=values)
    detail = _scope_text(values["role"], values["county"], values["township"], values["village"])
    await audit(request, "user_add", target=f"user:{values['username']}", detail=detail)
    return await _page(
        request, generated={"username": values["username"], "password": password, "new": True}, done="add"
    )


async def _account(request: web.Request) -> Any:
    username = request.match_info["username"]
    async with request.app[SESSION_FACTORY]() as session:
        account = await users_repo.get_user(session, username=username)
    if account is None:
        raise web.HTTPNotFound(text="没有这个账号")
    return account


async def edit_page(request: web.Request) -> web.StreamResponse:
    require(request, viewer(request).manages_accounts)
    account = await _account(request)
    return render(
        request,
        "user_edit.html",
        account=account,
        form={
            "display_name": account.display_name,
            "role": account.role,
            "county": account.county,
            "township": account.township,
            "village": account.village,
            "member_name": account.member_name or "",
        },
        places=await hierarchy(request),
        roles=ROLES,
        error="",
        done=request.query.get("done", ""),
    )


async def edit_user(request: web.Request) -> web.StreamResponse:
    require(request, viewer(request).manages_accounts)
    account = await _account(request)
    form = await request.post()
    values = {k: _field(form, k) for k in ("display_name", "role", "county", "township", "village", "member_name")}
    places = await hierarchy(request)
    try:
        before = await users.update_user(
            request.app[SESSION_FACTORY],
            username=account.username,
            role=values["role"],
            county=values["county"],
            township=values["township"],
            village=values["village"],
            display_name=values["display_name"],
            hierarchy=places,
            member_name=values["member_name"],
        )
    except UserError as exc:
        return render(
            request,
            "user_edit.html",
            status=400,
            account=account,
            form=values,
            places=places,
            roles=ROLES,
            error=str(exc),
            done="",
        )
    was = _scope_text(before.role, before.county, before.township, before.village)
    now_ = _scope_text(values["role"], values["county"], values["township"], values["village"])
    await audit(request, "user_edit", target=f"user:{account.username}", detail=f"{was} → {now_}")
    raise web.HTTPFound(f"/users/{quote(account.username, safe='')}?done=edit")


async def set_active(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.manages_accounts)
    account = await _account(request)
    form = await request.post()
    active = _field(form, "active") == "1"
    if not active and account.username == me.username:
        return await _page(request, status=400, error="不能停用自己正在使用的账号")
    try:
        await users.set_active(request.app[SESSION_FACTORY], username=account.username, active=active)
    except UserError as exc:
        return await _page(request, status=400, error=str(exc))
    await audit(request, "user_enable" if active else "user_disable", target=f"user:{account.username}")
    raise web.HTTPFound("/users?done=" + ("enable" if active else "disable"))


async def reset_password(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.manages_accounts)
    account = await _account(request)
    if account.username == me.username:
        return await _page(request, status=400, error="请在“修改密码”页修改自己的密码")
    password = await users.reset_password(request.app[SESSION_FACTORY], username=account.username)
    await audit(request, "user_password_reset", target=f"user:{account.username}")
    # Shown once, in this response only (never in a URL, never stored in clear; the page is not cached).
    return await _page(request, generated={"username": account.username, "password": password, "new": False})


async def password_page(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    return render(
        request,
        "password.html",
        error="",
        forced=me.must_change_password,
        next=_next(request.query),
        done=request.query.get("done") == "1",
    )


def _next(source: Any) -> str:
    value = source.get("next", "/")
    target = safe_next(value if isinstance(value, str) else "/")
    return "/" if target.startswith("/password") else target


async def change_password(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    form = await request.post()
    target = _next(form)

    def secret(name: str) -> str:
        value = form.get(name, "")
        return value[:300] if isinstance(value, str) else ""

    try:
        await users.change_own_password(
            request.app[SESSION_FACTORY],
            username=me.username,
            old=secret("old"),
            new=secret("new"),
            confirm=secret("confirm"),
            keep_session=me.session_id,
        )
    except UserError as exc:
        await audit(request, "password_change", target=f"user:{me.username}", detail=f"未成功：{exc}")
        return render(
            request,
            "password.html",
            status=400,
            error=str(exc),
            forced=me.must_change_password,
            next=target,
            done=False,
        )
    await audit(request, "password_change", target=f"user:{me.username}")
    raise web.HTTPFound(target if me.must_change_password else "/password?done=1")
