"""Search (搜索) across the messages, tickets and flags a viewer may see, and what staff do from a hit: mark it
as a missed red flag or demand (标记为漏报, the 标注 page) or open a ticket from it (立案).

GET only, the query kept in the URL; newest first, a page at a time, never counted (a common word has
millions of hits at city scale). Each hit comes with the messages just before and after it in its group.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from dashboards.context import (
    MAX_ID,
    SESSION_FACTORY,
    SETTINGS,
    TICKET_ACTIONS,
    Viewer,
    audit,
    render,
    require,
    viewer,
)
from dashboards.labels import CATEGORIES
from dashboards.ports import ActionRefused
from dashboards.views_tickets import actor_name, parse_day
from storage.repos import dashboard as repo
from storage.repos import search as search_repo

KINDS = {"messages": "全部消息", "tickets": "工单", "flags": "网巡条目"}
TICKET_KINDS = {"demand": "诉求", "consult": "咨询", "clue": "问题线索"}
MAX_QUERY = 50
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _cursor(value: str) -> tuple[datetime, int] | None:
    """``<epoch microseconds>.<id>``: where the previous page ended."""
    try:
        micros, last = value.split(".", 1)
        if len(micros) > 18 or len(last) > 12:
            return None
        at = EPOCH + timedelta(microseconds=int(micros))
        message_id = int(last)
    except (ValueError, OverflowError, OSError):
        return None
    return (at, message_id) if 0 < message_id <= MAX_ID else None


def _cursor_text(cursor: tuple[datetime, int] | None) -> str | None:
    if cursor is None:
        return None
    return f"{(cursor[0] - EPOCH) // timedelta(microseconds=1)}.{cursor[1]}"


def kinds_for(me: Viewer) -> dict[str, str]:
    """Cadres are supervised, not supervisors: they never read flags (the digest is closed to them too)."""
    return KINDS if me.discipline else {k: v for k, v in KINDS.items() if k != "flags"}


def search_filter(request: web.Request, me: Viewer) -> search_repo.SearchFilter:
    q = request.query
    until = parse_day(request, q.get("until"))
    kind = q.get("kind", "messages")
    return search_repo.SearchFilter(
        text=(q.get("q") or "").strip()[:MAX_QUERY],
        kind=kind if kind in kinds_for(me) else "messages",
        township=q.get("township") or None,
        village=q.get("village") or None,
        since=parse_day(request, q.get("since")),
        until=until + timedelta(days=1) if until else None,
    )


async def search_page(request: web.Request) -> web.StreamResponse:
    """GET /search?q=…&kind=…&township=…&village=…&since=…&until=…&cursor=…"""
    me = viewer(request)
    filt = search_filter(request, me)
    cursor = _cursor(request.query.get("cursor", ""))
    rows: list[Any] = []
    next_cursor = None
    context: dict[int, Any] = {}
    async with request.app[SESSION_FACTORY]() as session:
        if filt.text:
            rows, next_cursor = await search_repo.search(
                session, scope=me.scope, filt=filt, cursor=cursor, limit=request.app[SETTINGS].page_size
            )
            context = await repo.message_context(
                session,
                anchors=[(r["id"], r["group_name"], r["at"]) for r in rows],
                before=2,
                after=2,
                scope=me.scope,
            )
        places = await repo.places(session, scope=me.scope)
    query = dict(request.query)
    query.pop("cursor", None)
    words = search_repo.highlight_words(filt.text)
    return render(
        request,
        "search.html",
        rows=[dict(r) for r in rows],
        context=context,
        words=words,
        query=query,
        kinds=kinds_for(me),
        ticket_kinds={k: v for k, v in TICKET_KINDS.items() if k != "clue" or me.discipline},
        filt=filt,
        searched=bool(filt.text),
        first_page=cursor is None,
        next_cursor=_cursor_text(next_cursor),
        places=[(t, v) for t, v in places if v],
        townships=sorted({t for t, _ in places}),
        back=request.path_qs,
        opened=request.query.get("opened", ""),
        refused=request.query.get("refused", "")[:300],
    )


def _back(form: Any) -> str:
    back = str(form.get("back", ""))
    return back if back.startswith("/search") else "/search"


def _with(back: str, **values: str) -> str:
    return back + ("&" if "?" in back else "?") + urlencode(values)


async def open_ticket(request: web.Request) -> web.StreamResponse:
    """POST /messages/{id}/ticket: 立案 from a search hit (discipline staff; the message must be in scope)."""
    me = viewer(request)
    require(request, me.discipline)
    message_id = int(request.match_info["message_id"])
    async with request.app[SESSION_FACTORY]() as session:
        message = await repo.get_message(session, message_id=message_id, scope=me.scope)
    if message is None:  # absent or out of scope look the same
        raise web.HTTPNotFound(text="未找到")
    form = await request.post()
    back = _back(form)
    kind = str(form.get("kind", ""))
    category = str(form.get("category", "")) or None
    if kind not in TICKET_KINDS:
        raise web.HTTPBadRequest(text="请选择工单类型：诉求、咨询或问题线索")
    if category is not None and category not in CATEGORIES:
        raise web.HTTPBadRequest(text="未知的类别")
    try:
        ticket_id = await request.app[TICKET_ACTIONS].open_from_message(
            message_id, kind=kind, category=category, actor=actor_name(me)
        )
    except ActionRefused as exc:
        await audit(request, "ticket_open_refused", target=f"message:{message_id}", detail=str(exc))
        raise web.HTTPFound(_with(back, refused=str(exc))) from exc
    await audit(
        request, "ticket_open", target=f"message:{message_id}", detail=f"工单 #{ticket_id} {TICKET_KINDS[kind]}"
    )
    raise web.HTTPFound(_with(back, opened=str(ticket_id)) + f"#m{message_id}")
