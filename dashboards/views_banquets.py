"""近期宴席: banquets read from banquet flags, by date, within the viewer's scope, with the host's role and
the days until each. Discipline staff only (cadres are supervised, not supervisors: 403)."""

from __future__ import annotations

from datetime import timedelta, timezone

from aiohttp import web

from dashboards.context import SESSION_FACTORY, SETTINGS, now, render, require, viewer
from storage.repos import banquets as repo

WEEKDAYS = "一二三四五六日"


async def banquets_page(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    local = now(request).astimezone(timezone(timedelta(hours=request.app[SETTINGS].tz_hours)))
    today = local.date()
    async with request.app[SESSION_FACTORY]() as session:
        rows = await repo.upcoming(session, scope=me.scope, since=today)
        undated = await repo.undated(session, scope=me.scope, since=local - timedelta(days=30))
    items = [
        {
            **row,
            "days": (row["date"] - today).days,
            "weekday": f"周{WEEKDAYS[row['date'].weekday()]}",
            "host_role": row["member_role"] or row["flag_role"],
        }
        for row in rows
    ]
    return render(request, "banquets.html", items=items, undated=undated, today=today)
