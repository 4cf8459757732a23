"""The ticket board (the township whiteboard), a ticket's page and the staff actions on it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from dashboards import humanize, media
from dashboards.context import (
    SESSION_FACTORY,
    SETTINGS,
    TICKET_ACTIONS,
    Viewer,
    audit,
    now,
    query_int,
    render,
    require,
    viewer,
)
from dashboards.ports import ActionRefused
from storage.repos import dashboard as repo
from storage.repos import image_texts as images_repo
from storage.repos import media_notes as notes_repo

IMAGE_TYPES = media.IMAGE_TYPES


def parse_day(request: web.Request, value: str | None) -> datetime | None:
    """A local calendar day (YYYY-MM-DD) as the aware instant it starts."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError as exc:
        raise web.HTTPBadRequest(text="日期格式应为 YYYY-MM-DD") from exc
    if not 2000 <= day.year <= 2200:  # far dates overflow date arithmetic; no ledger needs them
        raise web.HTTPBadRequest(text="日期应在 2000 年到 2200 年之间")
    return day.replace(tzinfo=timezone(timedelta(hours=request.app[SETTINGS].tz_hours)))


def board_filter(request: web.Request) -> repo.TicketFilter:
    q = request.query
    until = parse_day(request, q.get("until"))
    overdue = {"1": True, "0": False}.get(q.get("overdue", ""))
    return repo.TicketFilter(
        status=q.get("status") or None,
        kind=q.get("kind") or None,
        category=q.get("category") or None,
        township=q.get("township") or None,
        village=q.get("village") or None,
        overdue=overdue,
        rating=q.get("rating") or None,
        since=parse_day(request, q.get("since")),
        until=until + timedelta(days=1) if until else None,
        text=(q.get("q") or "").strip()[:50] or None,
    )


VIEWS = {"all": "全部工单", "mine": "我的", "todo": "待我处理"}
SORTS = {"opened": "最新登记", "deadline": "按期限（逾期在前）", "priority": "按优先级", "reporters": "按反映人数"}


def attention(me: Viewer) -> repo.Attention:
    """待我处理: what waits for this viewer's level. A cadre: the village's open tickets. Township staff:
    tickets escalated to the township, overdue ones and extension requests. County staff and admins: the
    county's, overdue ones and extension requests."""
    if me.role == "cadre":
        return repo.Attention(levels=("village",))
    level = "township" if me.role == "township_staff" else "county"
    return repo.Attention(levels=(level,), overdue=True, stages=("extension_requested",))


def queue_filter(request: web.Request, me: Viewer) -> tuple[str, repo.TicketFilter]:
    view = request.query.get("view", "all")
    view = view if view in VIEWS else "all"
    filt = board_filter(request)
    if view == "mine":
        names = tuple(n for n in {me.member_name, me.display_name} if n)
        filt = replace(filt, assignees=names)
    elif view == "todo":
        filt = replace(filt, attention=attention(me))
    return view, filt


def days_left(request: web.Request, deadline: datetime | None, status: str) -> tuple[str, str]:
    """An open ticket's days to its deadline for people (3天后到期, 今天到期, 已超期2天) and its colour class."""
    if status not in repo.ACTIVE:
        return "", ""
    return humanize.due(deadline, now=now(request), tz=timezone(timedelta(hours=request.app[SETTINGS].tz_hours)))


async def board(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    size = request.app[SETTINGS].page_size
    page = query_int(request, "page", default=1) or 1
    view, filt = queue_filter(request, me)
    sort = request.query.get("sort") or ("opened" if view == "all" else "deadline")
    sort = sort if sort in SORTS else "opened"
    async with request.app[SESSION_FACTORY]() as session:
        rows, total = await repo.board_page(
            session, scope=me.scope, filt=filt, limit=size, offset=(page - 1) * size, sort=sort
        )
        last = max(1, (total + size - 1) // size)
        if page > last:  # past the end (a stale link, a typed number): the last page instead of an empty one
            page = last
            rows, total = await repo.board_page(
                session, scope=me.scope, filt=filt, limit=size, offset=(page - 1) * size, sort=sort
            )
        places = await repo.places(session, scope=me.scope)
    cards = [{**dict(r), "left": days_left(request, r["deadline"], r["status"])} for r in rows]
    query = {k: v for k, v in request.query.items() if not k.startswith("bulk_")}  # links drop the last outcome
    return render(
        request,
        "board.html",
        rows=cards,
        total=total,
        page=page,
        pages=max(1, (total + size - 1) // size),
        query=query,
        view=view,
        views=VIEWS,
        sort=sort,
        sorts=SORTS,
        places=[(t, v) for t, v in places if v],
        townships=sorted({t for t, _ in places}),
        villages=sorted({v for t, v in places if v and (not filt.township or t == filt.township)}),
        bulk=me.discipline,
        back=request.path_qs,
        bulk_done=query_int(request, "bulk_done", default=None, low=0),
        bulk_error=request.query.get("bulk_error", "")[:3000],
    )


async def _visible_ticket(request: web.Request, ticket_id: int) -> dict[str, Any]:
    me = viewer(request)
    async with request.app[SESSION_FACTORY]() as session:
        row = await repo.get_ticket(session, ticket_id=ticket_id, scope=me.scope)
    if row is None:
        raise web.HTTPNotFound(text="未找到")
    return dict(row)


# The dashboard's forms → the state machine's actions they need (TicketActions.available).
FORMS = {
    "accept": "accept",
    "progress": "progress",
    "resolve": "resolve",
    "waive_photo": "waive_photo",
    "photo": "attach_photo",
    "close": "close",
    "reopen": "reopen",
    "transfer": "transfer",
    "escalate": "escalate",
    "extend": "extend",
    "note": "note",
    "split": "split",
    "merge": "merge_into",
}
CADRE_FORMS = frozenset({"note", "photo"})


async def allowed_actions(request: web.Request, me: Viewer, ticket_id: int) -> set[str]:
    """The forms this viewer may use on this ticket now: what the role allows and the state allows."""
    available = set(await request.app[TICKET_ACTIONS].available(ticket_id))
    forms = {form for form, op in FORMS.items() if op in available}
    return forms if me.discipline else forms & CADRE_FORMS


def actor_name(me: Viewer) -> str:
    """How the acting person appears in the ticket's history and in messages: never the login name."""
    return me.display_name or me.scope_name


async def ticket_page(request: web.Request) -> web.StreamResponse:
    ticket_id = int(request.match_info["ticket_id"])
    ticket = await _visible_ticket(request, ticket_id)
    async with request.app[SESSION_FACTORY]() as session:
        details = await repo.ticket_details(session, ticket_id=ticket_id)
        notes = await notes_repo.for_messages(session, [m["id"] for m in details["messages"]])
        images = await images_repo.by_message(session, [m["id"] for m in details["messages"] if m["kind"] == "image"])
    await audit(request, "view_ticket", target=f"ticket:{ticket_id}")
    return render(
        request,
        "ticket.html",
        t=ticket,
        actions=await allowed_actions(request, viewer(request), ticket_id),
        error=request.query.get("error", ""),
        done=request.query.get("done", ""),
        reporters=details["reporters"],
        events=details["events"],
        messages=details["messages"],
        photos=details["photos"],
        notes=notes,
        images=images,
    )


def _image(form: Any) -> tuple[bytes, str] | None:
    upload = form.get("image")
    if not isinstance(upload, web.FileField) or not upload.filename:
        return None
    filename = Path(upload.filename or "photo.jpg").name
    if Path(filename).suffix.lower() not in IMAGE_TYPES:
        raise ActionRefused("只支持 jpg、png、gif、webp 格式的照片")
    image = upload.file.read()
    if not image:
        raise ActionRefused("照片为空")
    return image, filename


async def ticket_action(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    ticket_id = int(request.match_info["ticket_id"])
    action = request.match_info["action"]
    if action not in FORMS:
        raise web.HTTPNotFound()
    await _visible_ticket(request, ticket_id)
    require(request, me.discipline or action in CADRE_FORMS)
    form = await request.post()
    actions = request.app[TICKET_ACTIONS]
    actor = actor_name(me)

    def field(name: str, limit: int = 1000) -> str:
        value = form.get(name, "")
        return value.strip()[:limit] if isinstance(value, str) else ""

    detail = ""
    try:
        if action == "transfer":
            to_member = field("to_member", 64)
            if not to_member:
                raise ActionRefused("请填写转办对象")
            await actions.transfer(ticket_id, to_member=to_member, actor=actor)
            detail = to_member
        elif action == "escalate":
            reason = field("reason")
            await actions.escalate(ticket_id, actor=actor, reason=reason or "纪检监察干部提级督办")
            detail = reason
        elif action == "extend":
            try:
                days = int(field("working_days", 4))
            except ValueError as exc:
                raise ActionRefused("延期天数应为 1 到 30 的整数") from exc
            if not 1 <= days <= 30:
                raise ActionRefused("延期天数应为 1 到 30 的整数")
            await actions.approve_extension(ticket_id, actor=actor, working_days=days)
            detail = str(days)
        elif action in ("note", "progress"):
            text = field("text", 2000)
            if not text:
                raise ActionRefused("内容不能为空")
            if action == "note":
                await actions.add_note(ticket_id, actor=actor, text=text)
            else:
                await actions.progress(ticket_id, actor=actor, text=text)
            detail = text
        elif action == "accept":
            await actions.accept(ticket_id, actor=actor)
        elif action == "resolve":
            photo = _image(form)
            note = field("note")
            if photo is None:
                await actions.resolve(ticket_id, actor=actor, note=note)
            else:
                await actions.resolve(ticket_id, actor=actor, note=note, image=photo[0], filename=photo[1])
            detail = note
        elif action == "waive_photo":
            reason = field("reason")
            await actions.waive_photo(ticket_id, actor=actor, reason=reason)
            detail = reason
        elif action == "close":
            text = field("text")
            await actions.close(ticket_id, actor=actor, text=text)
            detail = text
        elif action == "reopen":
            reason = field("reason")
            await actions.reopen(ticket_id, actor=actor, reason=reason)
            detail = reason
        elif action == "split":
            reporter = field("reporter", 64)
            if not reporter:
                raise ActionRefused("请选择要拆分的反映人")
            new_id = await actions.split(ticket_id, reporter=reporter, actor=actor)
            detail = f"{reporter} → #{new_id}"
        elif action == "merge":
            try:
                into = int(field("into", 12).lstrip("#"))
            except ValueError as exc:
                raise ActionRefused("请填写要并入的工单号") from exc
            await _visible_ticket(request, into)
            await actions.merge(ticket_id, into=into, actor=actor)
            detail = f"→ #{into}"
        else:  # photo
            photo = _image(form)
            if photo is None:
                raise ActionRefused("请选择照片")
            await actions.upload_photo(ticket_id, actor=actor, image=photo[0], filename=photo[1])
            detail = f"{photo[1]} {len(photo[0])} bytes"
    except ActionRefused as exc:
        await audit(request, f"ticket_{action}_refused", target=f"ticket:{ticket_id}", detail=str(exc))
        raise web.HTTPFound(f"/tickets/{ticket_id}?error=" + _q(str(exc))) from exc
    await audit(request, f"ticket_{action}", target=f"ticket:{ticket_id}", detail=detail)
    raise web.HTTPFound(f"/tickets/{ticket_id}?done={action}")


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


async def ticket_photo(request: web.Request) -> web.StreamResponse:
    ticket_id = int(request.match_info["ticket_id"])
    await _visible_ticket(request, ticket_id)
    media_dir = request.app[SETTINGS].media_dir
    async with request.app[SESSION_FACTORY]() as session:
        photo = await repo.get_photo(session, photo_id=int(request.match_info["photo_id"]))
    if photo is None or photo["ticket_id"] != ticket_id or media_dir is None:
        raise web.HTTPNotFound(text="未找到")
    path = media.photo_path(media_dir, photo["path"])
    if path is None:
        raise web.HTTPNotFound(text="未找到")
    return web.FileResponse(path, headers={"Content-Type": IMAGE_TYPES[path.suffix.lower()]})
