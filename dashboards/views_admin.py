"""The home page and the audit log."""

from __future__ import annotations

from aiohttp import web

from dashboards.context import SESSION_FACTORY, query_int, render, require, viewer
from storage.repos import users as users_repo


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/digest" if viewer(request).discipline else "/tickets")


async def audit_page(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.role == "admin")
    before = query_int(request, "before")
    who = request.query.get("user") or None
    async with request.app[SESSION_FACTORY]() as session:
        rows = await users_repo.list_audit(session, limit=100, before_id=before, username=who)
        names = {u.username: u.display_name or u.username for u in await users_repo.list_users(session)}
    return render(request, "audit.html", rows=rows, user=who or "", names=names)
