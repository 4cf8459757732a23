"""Broadcasts: a notice to chosen groups or every group in scope; a clarification (澄清) to one group."""

from __future__ import annotations

from aiohttp import web

from dashboards.context import BROADCASTER, SESSION_FACTORY, audit, render, require, viewer
from dashboards.ports import ActionRefused
from storage.repos import dashboard as repo

MAX_TEXT = 1500
MAX_LISTED = 300


async def broadcasts(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    township = request.query.get("township") or None
    async with request.app[SESSION_FACTORY]() as session:
        groups = await repo.groups_in_scope(session, scope=me.scope, township=township)
        places = await repo.places(session, scope=me.scope)
        history = await repo.list_broadcasts(session, limit=30)
        allowed = {g["name"] for g in await repo.groups_in_scope(session, scope=me.scope)}
        history = [b for b in history if me.role == "admin" or set(b["groups"]) <= allowed]
        ids = [i for b in history for i in b["outbox_ids"]]
        statuses = await repo.outbox_statuses(session, outbox_ids=ids)
    # A county has thousands of groups: list them one township at a time.
    too_many = township is None and len(groups) > MAX_LISTED
    return render(
        request,
        "broadcasts.html",
        groups=[] if too_many else groups,
        too_many=too_many,
        group_count=len(groups),
        townships=sorted({t for t, _ in places}),
        township=township or "",
        history=history,
        statuses=statuses,
        error=request.query.get("error", ""),
        sent=request.query.get("sent", ""),
    )


async def send_broadcast(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    form = await request.post()
    kind = str(form.get("kind", "notice"))
    text = str(form.get("text", "")).strip()
    chosen = [str(v) for v in form.getall("groups", [])]
    async with request.app[SESSION_FACTORY]() as session:
        allowed = [g["name"] for g in await repo.groups_in_scope(session, scope=me.scope)]
    if form.get("all") == "1" and kind == "notice":
        chosen = allowed
    error = ""
    if kind not in ("notice", "clarification"):
        error = "无效的类型"
    elif not text or len(text) > MAX_TEXT:
        error = f"内容不能为空，且不超过{MAX_TEXT}字"
    elif not chosen:
        error = "请选择发送的群"
    elif not set(chosen) <= set(allowed):
        raise web.HTTPForbidden(text="所选群不在您的管辖范围内")
    elif kind == "clarification" and len(chosen) != 1:
        error = "澄清只能发往一个群"
    if error:
        raise web.HTTPFound("/broadcasts?error=" + _q(error))
    try:
        broadcast_id = await request.app[BROADCASTER].broadcast(actor=me.username, kind=kind, text=text, groups=chosen)
    except ActionRefused as exc:
        raise web.HTTPFound("/broadcasts?error=" + _q(str(exc))) from exc
    await audit(request, f"broadcast_{kind}", target=f"broadcast:{broadcast_id}", detail=f"{len(chosen)}个群: {text}")
    raise web.HTTPFound(f"/broadcasts?sent={broadcast_id}")


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
