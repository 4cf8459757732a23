"""The patrol digest (网巡), a flag's page, verdicts, the "patrolled up to here" mark, and the messages
kept raw after a failure (counted on the digest, re-run from it).

Discipline staff only: cadres are supervised, not supervisors, and never read flags or verdicts about
their own village (a cadre opening /digest by URL is refused).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.engine import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from dashboards.context import (
    MAX_ID,
    PIPELINE,
    SESSION_FACTORY,
    SETTINGS,
    audit,
    now,
    render,
    render_fragment,
    require,
    viewer,
)
from dashboards.labels import VERDICTS
from dashboards.templating import qs
from dashboards.views_tickets import parse_day
from storage.repos import banquets as banquets_repo
from storage.repos import dashboard as repo
from storage.repos import image_texts as images_repo
from storage.repos import media_notes as notes_repo
from storage.repos import messages as messages_repo
from storage.repos import users as users_repo


def _cursor(value: str) -> tuple[int, int] | None:
    try:
        sev, last = value.split(".", 1)
        if len(sev) > 3 or len(last) > 12:
            return None
        cursor = int(sev), int(last)
    except ValueError:
        return None
    return cursor if 0 <= cursor[0] <= 9 and 0 <= cursor[1] <= MAX_ID else None


FLAG_LABELS = ("banquet", "clue", "gambling", "abuse", "spam", "demand", "consult")
"""The labels a digest can be filtered by (those a flag carries)."""
TIERS = {"confirmed": "确认", "review": "请核查"}
JUDGED = ("confirmed", "false_alarm", "follow_up")
"""Verdicts a flag keeps (a note leaves the verdict as it was)."""


def digest_filter(request: web.Request) -> repo.FlagFilter:
    """The digest's filters from the query string; an unknown value is ignored, a bad date is a clear 400."""
    q = request.query
    until = parse_day(request, q.get("until"))
    verdict = q.get("verdict") or ("none" if q.get("unreviewed") == "1" else "")

    def pick(name: str, allowed: Iterable[str]) -> str | None:
        value = q.get(name) or ""
        return value if value in allowed else None

    return repo.FlagFilter(
        township=(q.get("township") or "").strip()[:64] or None,
        village=(q.get("village") or "").strip()[:64] or None,
        label=pick("label", FLAG_LABELS),
        severity=pick("severity", repo.SEVERITIES),
        tier=pick("tier", TIERS),
        verdict=verdict if verdict in (*JUDGED, repo.UNJUDGED) else None,
        since=parse_day(request, q.get("since")),
        until=until + timedelta(days=1) if until else None,
    )


async def card_context(session: AsyncSession, rows: Sequence[RowMapping], scope: repo.Scope) -> dict[str, Any]:
    """What the digest's cards show besides the flag itself: context lines, banquet details, verdict notes
    (``review_notes``, by flag), voice transcripts and link cards (``notes``, by message), text read from
    images (``images``, by message)."""
    context = await repo.message_context(
        session,
        anchors=[(r["message_id"], r["group_name"], r["at"]) for r in rows],
        before=2,
        after=2,
        scope=scope,
    )
    banquets = await banquets_repo.by_message(session, [r["message_id"] for r in rows])
    review_notes = await repo.review_notes(session, flag_ids=[r["id"] for r in rows])
    # voice transcripts and link/file cards of the flagged messages and their context (media_note.html)
    notes = await notes_repo.for_messages(
        session, [r["message_id"] for r in rows] + [m["id"] for ms in context.values() for m in ms]
    )
    # what was read from the flagged images (image_text.html)
    images = await images_repo.by_message(session, [r["message_id"] for r in rows if r["message_kind"] == "image"])
    return {"context": context, "banquets": banquets, "review_notes": review_notes, "notes": notes, "images": images}


async def digest(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    show_all = request.query.get("all") == "1"
    filt = digest_filter(request)
    after_id = 0 if show_all else me.patrolled_to_flag_id
    cursor = _cursor(request.query.get("cursor", ""))
    async with request.app[SESSION_FACTORY]() as session:
        upto = await repo.max_flag_id(session)
        rows, next_cursor = await repo.digest_page(
            session,
            scope=me.scope,
            after_id=after_id,
            cursor=cursor,
            limit=request.app[SETTINGS].page_size,
            filt=filt,
        )
        counts = await repo.count_flags_after(session, scope=me.scope, after_id=after_id, filt=filt)
        cards = await card_context(session, rows, me.scope)
        places = await repo.places(session, scope=me.scope)
        # Kept-raw messages have no place yet (that is what failed), so discipline staff see them all.
        kept_raw = await messages_repo.count_kept_raw(session) if me.discipline else 0
        pending_voices = await notes_repo.pending_voices(session, scope=me.scope)
        pending = await notes_repo.for_messages(session, [m["id"] for m in pending_voices])
    filtered = filt != repo.FlagFilter()
    query = {k: v for k, v in request.query.items() if k != "rerun"}
    if "unreviewed" in query:  # the old link's "only unjudged" is the verdict filter now
        query.pop("unreviewed")
        if filt.verdict == repo.UNJUDGED:
            query["verdict"] = repo.UNJUDGED
    return render(
        request,
        "digest.html",
        kept_raw=kept_raw,
        rerun=_rerun_outcome(request.query.get("rerun", "")),
        rows=rows,
        **{**cards, "notes": {**cards["notes"], **pending}},
        pending_voices=pending_voices,
        counts=counts,
        count_cap=repo.FILTERED_COUNT_CAP if filtered else 2**62,
        upto=upto,
        show_all=show_all,
        filtered=filtered,
        query=query,
        back_base="/digest" + (qs(query) if query else ""),
        townships=sorted({t for t, _ in places if t}),
        places=[(t, v) for t, v in places if v],
        flag_labels=FLAG_LABELS,
        tiers=TIERS,
        judged=JUDGED,
        next_cursor=f"{next_cursor[0]}.{next_cursor[1]}" if next_cursor else None,
        verdicts=VERDICTS,
    )


async def _visible_flag(request: web.Request, flag_id: int) -> dict[str, Any]:
    me = viewer(request)
    require(request, me.discipline)
    async with request.app[SESSION_FACTORY]() as session:
        row = await repo.get_flag(session, flag_id=flag_id, scope=me.scope)
    if row is None:
        # Same answer whether it does not exist or is out of scope: no probing other townships.
        raise web.HTTPNotFound(text="未找到")
    return dict(row)


async def flag_page(request: web.Request) -> web.StreamResponse:
    flag_id = int(request.match_info["flag_id"])
    row = await _visible_flag(request, flag_id)
    async with request.app[SESSION_FACTORY]() as session:
        context = await repo.message_context(
            session,
            anchors=[(row["message_id"], row["group_name"], row["at"])],
            before=6,
            after=6,
            scope=viewer(request).scope,
        )
        reviews = await repo.flag_reviews(session, flag_id=flag_id)
        banquet = (await banquets_repo.by_message(session, [row["message_id"]])).get(row["message_id"])
        around = context.get(row["message_id"], [])
        notes = await notes_repo.for_messages(session, [row["message_id"]] + [m["id"] for m in around])
        image = await images_repo.get(session, row["message_id"]) if row["message_kind"] == "image" else None
    await audit(request, "view_flag", target=f"flag:{flag_id}")
    return render(
        request,
        "flag.html",
        f=row,
        context=context.get(row["message_id"], []),
        reviews=reviews,
        banquet=banquet,
        notes=notes,
        image=image,
        verdicts=VERDICTS,
        request_taught=request.query.get("taught") == "1",
    )


async def record_verdict(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    flag_id = int(request.match_info["flag_id"])
    await _visible_flag(request, flag_id)
    form = await request.post()
    verdict = str(form.get("verdict", ""))
    note = str(form.get("note", "")).strip()[:1000]
    if verdict not in VERDICTS:
        raise web.HTTPBadRequest(text="无效的核查结论")
    async with request.app[SESSION_FACTORY]() as session, session.begin():
        await repo.record_verdict(
            session, flag_id=flag_id, username=me.username, verdict=verdict, note=note, at=now(request)
        )
    await audit(
        request, "flag_verdict", target=f"flag:{flag_id}", detail=f"{VERDICTS.get(verdict, verdict)} {note}".strip()
    )
    back = str(form.get("back", ""))
    if not back.startswith("/") or back.startswith("//"):
        back = f"/flags/{flag_id}"
    if "application/json" in request.headers.get("Accept", ""):
        # the digest's keyboard and buttons (fetch): the card as it is now, to replace in place
        return web.json_response({"ok": True, "html": await _card_html(request, flag_id, back.split("#", 1)[0])})
    raise web.HTTPFound(back)


async def _card_html(request: web.Request, flag_id: int, back_base: str) -> str:
    me = viewer(request)
    async with request.app[SESSION_FACTORY]() as session:
        row = await repo.get_flag(session, flag_id=flag_id, scope=me.scope)
        if row is None:
            raise web.HTTPNotFound(text="未找到")
        cards = await card_context(session, [row], me.scope)
    return render_fragment(request, "digest/card.html", f=row, back_base=back_base, verdicts=VERDICTS, **cards)


async def mark_patrolled(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    form = await request.post()
    try:
        upto = int(str(form.get("upto", "0")))
    except ValueError as exc:
        raise web.HTTPBadRequest(text="无效的标记") from exc
    async with request.app[SESSION_FACTORY]() as session, session.begin():
        await users_repo.set_patrol_mark(session, username=me.username, flag_id=upto, at=now(request))
    await audit(request, "patrol_mark", target=f"flag:{upto}")
    raise web.HTTPFound("/digest")


def _rerun_outcome(value: str) -> dict[str, int] | None:
    try:
        handled, failed = (int(part) for part in value.split(".", 1))
    except ValueError:
        return None
    return {"handled": handled, "failed": failed}


async def rerun_kept_raw(request: web.Request) -> web.StreamResponse:
    """Staff run the messages kept raw through the pipeline again (a banquet flagged, a demand ticketed)."""
    me = viewer(request)
    require(request, me.discipline)
    outcome = await request.app[PIPELINE].rerun_kept_raw(actor=me.username)
    await audit(
        request,
        "rerun_kept_raw",
        detail=f"{outcome.handled}条已处理 {outcome.failed}条仍失败 {outcome.remaining}条待处理",
    )
    raise web.HTTPFound(f"/digest?rerun={outcome.handled}.{outcome.failed}")
