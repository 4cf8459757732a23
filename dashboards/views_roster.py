"""The roster and the hierarchy: who is a villager, party member, cadre or staff; import, export, assign.

Discipline staff keep the roster of their own scope (cadres are supervised, not supervisors). Checking a
file and applying it are the bot's (dashboards.ports.Roster), so the rules are the roster file's; what
lies outside the viewer's scope is refused here, row by row, with the one scope rule (Scope.admits).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta, timezone
from typing import Any

from aiohttp import web

from dashboards.context import ROSTER, SESSION_FACTORY, SETTINGS, Viewer, audit, now, query_int, render, require, viewer
from dashboards.labels import MEMBER_ROLES
from dashboards.ports import ActionRefused, Roster, RosterRow
from storage.repos import dashboard as repo

MAX_ROSTER_BYTES = 2 * 1024 * 1024
PREVIEW_ROWS = 500
"""Rows listed in a preview (every row is checked; the bad ones are always all listed)."""


def _staff(request: web.Request) -> Viewer:
    me = viewer(request)
    require(request, me.manages_roster)
    return me


def _port(request: web.Request) -> Roster:
    found = request.app.get(ROSTER)
    if found is None:
        raise web.HTTPServiceUnavailable(text="花名册服务未连接机器人，暂时无法修改")
    return found


def _filter(request: web.Request) -> repo.MemberFilter:
    q = request.query
    return repo.MemberFilter(
        on_roster=q.get("tab") != "unassigned",
        role=q.get("role") if q.get("role") in MEMBER_ROLES else None,
        township=q.get("township") or None,
        village=q.get("village") or None,
        text=(q.get("q") or "").strip()[:30] or None,
    )


async def roster_page(request: web.Request) -> web.StreamResponse:
    me = _staff(request)
    size = request.app[SETTINGS].page_size
    page = query_int(request, "page", default=1) or 1
    filt = _filter(request)
    async with request.app[SESSION_FACTORY]() as session:
        rows, total = await repo.members_page(session, scope=me.scope, filt=filt, limit=size, offset=(page - 1) * size)
        unassigned = (
            await repo.members_page(session, scope=me.scope, filt=repo.MemberFilter(on_roster=False), limit=1, offset=0)
        )[1]
        places = await repo.places(session, scope=me.scope)
    return render(
        request,
        "roster.html",
        rows=rows,
        total=total,
        unassigned=unassigned,
        page=page,
        pages=max(1, (total + size - 1) // size),
        query=dict(request.query),
        tab="unassigned" if filt.on_roster is False else "roster",
        places=places,
        townships=sorted({t for t, _ in places if t}),
        done=request.query.get("done", ""),
        error=request.query.get("error", ""),
        can_edit=ROSTER in request.app,
    )


def _in_scope(me: Viewer, rows: list[RosterRow]) -> list[RosterRow]:
    """The rows as the bot read them, with those outside the viewer's scope refused."""
    out = []
    for row in rows:
        if row.error is None and not me.scope.admits(county=row.county, township=row.township, village=row.village):
            place = " ".join(p for p in (row.county, row.township, row.village) if p) or "未填写地点"
            row = replace(row, error=f"“{place}”不在您的管辖范围（{me.scope_name}）内")
        out.append(row)
    return out


async def _uploaded(request: web.Request) -> bytes:
    form = await request.post()
    upload = form.get("file")
    if isinstance(upload, web.FileField):
        data = upload.file.read(MAX_ROSTER_BYTES + 1)
    else:
        text = form.get("data", "")
        data = text.encode("utf-8") if isinstance(text, str) else b""
    if len(data) > MAX_ROSTER_BYTES:
        raise ActionRefused("文件太大（最多 2 MB），请分批导入")
    if not data.strip():
        raise ActionRefused("请选择花名册 CSV 文件")
    return data


def _preview(request: web.Request, me: Viewer, data: bytes, *, status: int = 200, error: str = "") -> web.Response:
    rows = _in_scope(me, _port(request).preview(data))
    bad = [r for r in rows if r.error is not None]
    good = [r for r in rows if r.error is None]
    try:
        carried = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        carried = ""
    return render(
        request,
        "roster_preview.html",
        status=status,
        good=good[:PREVIEW_ROWS],
        good_count=len(good),
        bad=bad,
        data=carried,
        error=error,
    )


async def preview(request: web.Request) -> web.StreamResponse:
    me = _staff(request)
    _port(request)
    try:
        data = await _uploaded(request)
    except ActionRefused as exc:
        raise web.HTTPFound("/roster?error=" + _q(str(exc))) from exc
    return _preview(request, me, data)


async def apply(request: web.Request) -> web.StreamResponse:
    me = _staff(request)
    port = _port(request)
    try:
        data = await _uploaded(request)
    except ActionRefused as exc:
        raise web.HTTPFound("/roster?error=" + _q(str(exc))) from exc
    rows = _in_scope(me, port.preview(data))  # checked again: the file is whatever the form sent back
    good = [r for r in rows if r.error is None]
    if not good:
        return _preview(request, me, data, status=400, error="没有可以导入的行")
    count = await port.apply(good, actor=me.username)
    skipped = len(rows) - len(good)
    await audit(request, "roster_import", target="roster", detail=f"导入{count}人，跳过{skipped}行有误")
    raise web.HTTPFound(f"/roster?done={count}")


async def assign(request: web.Request) -> web.StreamResponse:
    me = _staff(request)
    port = _port(request)
    member_id = int(request.match_info["member_id"])
    async with request.app[SESSION_FACTORY]() as session:
        member = await repo.get_member(session, member_id=member_id, scope=me.scope)
    if member is None:
        raise web.HTTPNotFound(text="未找到")
    form = await request.post()
    role = _text(form, "role")
    categories = tuple(c for c in form.getall("categories", []) if isinstance(c, str) and c)
    back = "/roster?tab=unassigned"
    try:
        if role not in MEMBER_ROLES:
            raise ActionRefused("请选择身份")
        await port.assign(
            member["platform_id"],
            role=role,
            categories=categories,
            is_head=_text(form, "head") == "1",
            actor=me.username,
        )
    except ActionRefused as exc:
        raise web.HTTPFound(f"{back}&error=" + _q(str(exc))) from exc
    await audit(
        request, "roster_assign", target=f"member:{member_id}", detail=f"{member['name']} → {MEMBER_ROLES[role]}"
    )
    raise web.HTTPFound(f"{back}&done=assigned")


async def export_roster(request: web.Request) -> web.StreamResponse:
    me = _staff(request)
    port = _port(request)
    async with request.app[SESSION_FACTORY]() as session:
        members = await repo.iter_roster_members(session, scope=me.scope)
    rows = [
        RosterRow(
            line=0,
            name=m["name"],
            role=m["role"],
            village=m["village"],
            township=m["township"],
            county=m["county"],
            group=m["group_name"],
            categories=tuple(m["categories"] or ()),
            is_head=bool(m["is_head"]),
            platform_id=m["platform_id"],
        )
        for m in members
    ]
    await audit(request, "roster_export", target="roster", detail=f"{len(rows)}人")
    body = "\ufeff" + port.export(rows)  # a BOM: Excel opens UTF-8 CSV as Chinese only with it
    tz = timezone(timedelta(hours=request.app[SETTINGS].tz_hours))
    stamp = now(request).astimezone(tz).strftime("%Y%m%d")
    return web.Response(
        body=body.encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="roster-{stamp}.csv"'},
    )


def _text(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value.strip()[:64] if isinstance(value, str) else ""


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
