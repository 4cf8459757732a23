"""Broadcasts: a notice to every group in scope, a township, chosen villages or chosen groups; a clarification
(澄清) to one group. Compose → preview and confirmation (naming the groups and members) → queued in the outbox,
at once or at a chosen time (cancellable until then) → per-group delivery status from the outbox."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from aiohttp import web

from dashboards.context import BROADCASTER, SESSION_FACTORY, SETTINGS, Viewer, audit, now, render, require, viewer
from dashboards.ports import ActionRefused
from storage.repos import broadcasts as broadcasts_repo
from storage.repos import dashboard as repo
from storage.repos import users as users_repo

MAX_TEXT = 1500
MAX_LISTED = 300
"""A county has thousands of groups: beyond this they are listed one township at a time."""
MAX_DAYS_AHEAD = 30
AUDIENCES = ("all", "township", "villages", "groups")
REFRESH_SECONDS = 15


class _Invalid(Exception):
    """A draft that cannot be sent as it is; the message is shown to staff."""


@dataclass
class Draft:
    kind: str = "notice"
    text: str = ""
    audience: str = "all"
    township: str = ""
    villages: list[str] = field(default_factory=list)
    """"township|village" pairs."""
    groups: list[str] = field(default_factory=list)
    send_at: str = ""
    """As the datetime-local input gives it: "2026-12-01T18:30" in local time, or empty for at once."""

    @classmethod
    def from_form(cls, form: Mapping[str, Any]) -> Draft:
        getall = getattr(form, "getall", None)

        def many(key: str) -> list[str]:
            return [str(v) for v in getall(key, [])] if getall is not None else []

        audience = str(form.get("audience", "") or "")
        groups = many("groups")
        if not audience:  # the form before audiences were named: "all" ticked, or groups chosen
            audience = "all" if form.get("all") == "1" else "groups" if groups else "all"
        return cls(
            kind=str(form.get("kind", "notice")),
            text=str(form.get("text", "")).strip(),
            audience=audience,
            township=str(form.get("township", "") or ""),
            villages=many("villages"),
            groups=groups,
            send_at=str(form.get("send_at", "") or "").strip(),
        )


@dataclass
class Plan:
    """A draft resolved against the viewer's scope: what would be sent where, and when."""

    draft: Draft
    groups: list[str]
    audience: str
    members: int
    send_at: datetime | None
    preview: str


def _local(request: web.Request) -> timezone:
    return timezone(timedelta(hours=request.app[SETTINGS].tz_hours))


def _parse_send_at(request: web.Request, text: str) -> datetime | None:
    if not text:
        return None
    try:
        local = datetime.strptime(text[:16], "%Y-%m-%dT%H:%M")
    except ValueError as exc:
        raise _Invalid("定时发送的时间格式不对，请用日期时间选择框选择") from exc
    at = local.replace(tzinfo=_local(request))
    current = now(request)
    if at <= current:
        raise _Invalid("定时发送的时间必须晚于现在；要立即发送请把时间留空")
    if at > current + timedelta(days=MAX_DAYS_AHEAD):
        raise _Invalid(f"定时发送的时间不能超过{MAX_DAYS_AHEAD}天以后")
    return at


async def _plan(request: web.Request, me: Viewer, draft: Draft) -> Plan:
    """Check a draft and resolve its audience within the viewer's scope; raises _Invalid with the reason."""
    if draft.kind not in ("notice", "clarification"):
        raise _Invalid("无效的类型")
    if not draft.text or len(draft.text) > MAX_TEXT:
        raise _Invalid(f"内容不能为空，且不超过{MAX_TEXT}字")
    if draft.audience not in AUDIENCES:
        raise _Invalid("请选择发送对象")
    if draft.kind == "clarification" and draft.audience != "groups":
        raise _Invalid("澄清正名只能发往一个群：请在“选定的群”里选一个群")
    send_at = _parse_send_at(request, draft.send_at)
    async with request.app[SESSION_FACTORY]() as session:
        in_scope = await repo.groups_in_scope(session, scope=me.scope)
        if draft.audience == "all":
            chosen = [g["name"] for g in in_scope]
            audience = "管辖范围内的全部群"
        elif draft.audience == "township":
            if not draft.township:
                raise _Invalid("请选择乡镇")
            chosen = [g["name"] for g in in_scope if g["township"] == draft.township]
            if not chosen:
                raise _Invalid(f"“{draft.township}”不在您的管辖范围内，或没有群")
            audience = f"{draft.township}的全部群"
        elif draft.audience == "villages":
            wanted = {tuple(v.split("|", 1)) for v in draft.villages if "|" in v}
            if not wanted:
                raise _Invalid("请至少选择一个村")
            chosen = [g["name"] for g in in_scope if (g["township"], g["village"]) in wanted]
            known = {(g["township"], g["village"]) for g in in_scope}
            if not wanted <= known:
                raise web.HTTPForbidden(text="所选村不在您的管辖范围内")
            names = sorted(village for _, village in wanted)
            audience = "、".join(names[:5]) + (f"等{len(names)}个村" if len(names) > 5 else "") + "的群"
        else:
            chosen = list(dict.fromkeys(draft.groups))
            if not chosen:
                raise _Invalid("请选择发送的群")
            if not set(chosen) <= {g["name"] for g in in_scope}:
                raise web.HTTPForbidden(text="所选群不在您的管辖范围内")
            audience = chosen[0] if len(chosen) == 1 else f"选定的{len(chosen)}个群"
        if not chosen:
            raise _Invalid("所选范围内没有群")
        if draft.kind == "clarification" and len(chosen) != 1:
            raise _Invalid("澄清只能发往一个群")
        members = await broadcasts_repo.members_in_groups(session, groups=chosen)
    preview = request.app[BROADCASTER].preview(kind=draft.kind, text=draft.text)
    return Plan(draft=draft, groups=chosen, audience=audience, members=members, send_at=send_at, preview=preview)


async def _compose(
    request: web.Request, me: Viewer, draft: Draft, *, error: str = "", status: int = 200
) -> web.Response:
    township = request.query.get("township") or draft.township or None
    async with request.app[SESSION_FACTORY]() as session:
        groups = await repo.groups_in_scope(session, scope=me.scope, township=township)
        places = await repo.places(session, scope=me.scope)
        history = await repo.list_broadcasts(session, limit=30)
        allowed = {g["name"] for g in await repo.groups_in_scope(session, scope=me.scope)}
        history = [b for b in history if me.role == "admin" or set(b["groups"]) <= allowed]
        counts = {b["id"]: await broadcasts_repo.delivery_counts(session, outbox_ids=b["outbox_ids"]) for b in history}
        names = await _names(session)
    too_many = township is None and len(groups) > MAX_LISTED
    villages: dict[str, list[str]] = {}
    for t, v in places:
        villages.setdefault(t, []).append(v)
    response = render(
        request,
        "broadcasts.html",
        draft=draft,
        groups=[] if too_many else groups,
        too_many=too_many,
        group_count=len(allowed),
        townships=sorted(villages),
        villages=villages,
        township=township or "",
        history=history,
        counts=counts,
        names=names,
        current=now(request),
        error=error,
        min_send_at=(now(request) + timedelta(minutes=1)).astimezone(_local(request)).strftime("%Y-%m-%dT%H:%M"),
        status=status,
    )
    return response


async def _names(session: Any) -> dict[str, str]:
    """Login → the name a person reads (a login name is never shown)."""
    return {u.username: u.display_name or "工作人员" for u in await users_repo.list_users(session)}


async def broadcasts(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    return await _compose(request, me, Draft(), error=request.query.get("error", ""))


async def _confirm(request: web.Request, plan: Plan, *, changed: bool = False) -> web.Response:
    return render(
        request,
        "broadcast_confirm.html",
        plan=plan,
        draft=plan.draft,
        listed=plan.groups[:MAX_LISTED],
        changed=changed,
    )


async def preview(request: web.Request) -> web.StreamResponse:
    """The message as a group will see it, and what it would reach, before anything is queued."""
    me = viewer(request)
    require(request, me.discipline)
    draft = Draft.from_form(await request.post())
    if (await request.post()).get("back"):
        return await _compose(request, me, draft)
    try:
        plan = await _plan(request, me, draft)
    except _Invalid as exc:
        return await _compose(request, me, draft, error=str(exc), status=400)
    return await _confirm(request, plan)


async def send_broadcast(request: web.Request) -> web.StreamResponse:
    """Queue a confirmed broadcast. A form without the confirmation (or whose audience changed since it was
    confirmed) gets the confirmation page instead: nothing is queued without staff seeing the group count."""
    me = viewer(request)
    require(request, me.discipline)
    form = await request.post()
    draft = Draft.from_form(form)
    try:
        plan = await _plan(request, me, draft)
    except _Invalid as exc:
        return await _compose(request, me, draft, error=str(exc), status=400)
    confirmed = str(form.get("confirm", ""))
    if confirmed != str(len(plan.groups)):
        return await _confirm(request, plan, changed=bool(confirmed))
    try:
        broadcast_id = await request.app[BROADCASTER].broadcast(
            actor=me.username,
            kind=draft.kind,
            text=draft.text,
            groups=plan.groups,
            send_at=plan.send_at,
            audience=plan.audience,
            members=plan.members,
        )
    except ActionRefused as exc:
        return await _compose(request, me, draft, error=str(exc), status=400)
    when = f"定时 {plan.send_at.astimezone(_local(request)):%Y-%m-%d %H:%M}，" if plan.send_at else ""
    await audit(
        request,
        f"broadcast_{draft.kind}",
        target=f"broadcast:{broadcast_id}",
        detail=f"{when}{plan.audience}，{len(plan.groups)}个群: {draft.text}",
    )
    raise web.HTTPFound(f"/broadcasts/{broadcast_id}?sent=1")


async def _visible(request: web.Request, me: Viewer, broadcast_id: int) -> Any:
    async with request.app[SESSION_FACTORY]() as session:
        record = await broadcasts_repo.get_broadcast(session, broadcast_id)
        if record is None:
            raise web.HTTPNotFound(text="找不到这次群发")
        if me.role != "admin":
            allowed = {g["name"] for g in await repo.groups_in_scope(session, scope=me.scope)}
            if not set(record.groups) <= allowed:
                raise web.HTTPNotFound(text="找不到这次群发")
        return record


async def broadcast_page(request: web.Request) -> web.StreamResponse:
    """One broadcast: what was sent, to whom, and each group's delivery status from the outbox."""
    me = viewer(request)
    require(request, me.discipline)
    record = await _visible(request, me, int(request.match_info["broadcast_id"]))
    async with request.app[SESSION_FACTORY]() as session:
        rows = await broadcasts_repo.delivery(session, outbox_ids=record.outbox_ids)
        names = await _names(session)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    current = now(request)
    scheduled = record.cancelled_at is None and record.send_at is not None and record.send_at > current
    waiting = record.cancelled_at is None and counts.get("pending", 0) > 0
    return render(
        request,
        "broadcast.html",
        b=record,
        names=names,
        rows=rows,
        counts=counts,
        scheduled=scheduled,
        refresh=REFRESH_SECONDS if waiting else 0,
        current_time=current,
        preview=request.app[BROADCASTER].preview(kind=record.kind, text=record.text),
        sent=request.query.get("sent", ""),
        error=request.query.get("error", ""),
        cancelled=request.query.get("cancelled", ""),
    )


async def cancel_broadcast(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    broadcast_id = int(request.match_info["broadcast_id"])
    await _visible(request, me, broadcast_id)
    try:
        withdrawn = await request.app[BROADCASTER].cancel(broadcast_id, actor=me.username)
    except ActionRefused as exc:
        raise web.HTTPFound(f"/broadcasts/{broadcast_id}?error=" + quote(str(exc), safe="")) from exc
    await audit(request, "broadcast_cancel", target=f"broadcast:{broadcast_id}", detail=f"撤回{withdrawn}个群的消息")
    raise web.HTTPFound(f"/broadcasts/{broadcast_id}?cancelled={withdrawn}")
