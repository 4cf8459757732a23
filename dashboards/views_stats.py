"""Statistics: received, 办结率, 按期办结率, satisfaction, done within 5 days, medians; tables and charts."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from aiohttp import web

from dashboards import charts, hotspots, humanize
from dashboards.context import SESSION_FACTORY, SETTINGS, now, query_int, render, viewer
from dashboards.labels import CATEGORIES, KINDS
from dashboards.views_tickets import parse_day
from storage.repos import dashboard as repo

DIMENSIONS = {"township": "乡镇", "village": "村", "category": "类别", "kind": "类型"}
MAX_ROWS = 300
GRANULARITIES = {"month": "按月", "week": "按周", "day": "按日"}
HOT_WEEKS = {2: "近2周", 4: "近4周", 8: "近8周", 12: "近12周"}


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


async def stats(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    settings = request.app[SETTINGS]
    q = request.query
    dimension = q.get("dim") or "township"
    if dimension not in DIMENSIONS:
        dimension = "township"
    if me.role == "cadre" and dimension == "township":
        dimension = "category"
    granularity = q.get("gran") or "month"
    if granularity not in GRANULARITIES:
        granularity = "month"
    today = (now(request) + timedelta(hours=settings.tz_hours)).strftime("%Y-%m-%d")
    until = parse_day(request, q.get("until") or today)
    since = parse_day(request, q.get("since")) or (until - timedelta(days=365) if until else None)
    assert since is not None and until is not None
    end = until + timedelta(days=1)
    scope = me.scope
    township = q.get("township") or None
    if township and scope.township is None:
        scope = replace(scope, township=township)
    weeks = query_int(request, "weeks", default=4) or 4
    weeks = weeks if weeks in HOT_WEEKS else 4
    moment = now(request)
    rank_by = "village" if scope.township is not None else "township"
    async with request.app[SESSION_FACTORY]() as session:
        places = await repo.places(session, scope=me.scope)
        recent = await repo.hot_spot_tickets(session, scope=scope, since=moment - timedelta(weeks=weeks), until=moment)
        ranking = await repo.place_ranking(session, scope=scope, since=since, until=end, by=rank_by)
        by_dim, total = await repo.ticket_stats(
            session, scope=scope, since=since, until=end, dimension=dimension, tz_hours=settings.tz_hours
        )
        by_time, _ = await repo.ticket_stats(
            session,
            scope=scope,
            since=since,
            until=end,
            dimension=granularity,
            tz_hours=settings.tz_hours,
            medians=False,
        )
    names = {"category": {**CATEGORIES, **dict(settings.category_names)}, "kind": KINDS}.get(dimension, {})
    for r in by_dim:
        r["name"] = names.get(r["key"], r["key"]) or "（未分类）"
    top = sorted(by_dim, key=lambda r: r["received"], reverse=True)[:20]
    # Thousands of villages make an unreadable (and slow) table: show the busiest, say so.
    shown = by_dim if len(by_dim) <= MAX_ROWS else sorted(by_dim, key=lambda r: r["received"], reverse=True)[:MAX_ROWS]
    for r in by_time:
        r["label"] = humanize.bucket(str(r["key"]), granularity)
    labels = [r["label"] for r in by_time]
    spots = hotspots.hot_spots(recent, places=[p for pair in places for p in pair])
    return render(
        request,
        "stats.html",
        request_query=dict(request.query),
        hot_spots=spots,
        hot_weeks=weeks,
        hot_week_choices=HOT_WEEKS,
        hot_capped=len(recent) >= repo.HOT_SPOT_ROWS,
        ranking=ranking,
        rank_by=rank_by,
        rows=shown,
        hidden_rows=len(by_dim) - len(shown),
        townships=sorted({t for t, _ in places}),
        township=township or "",
        total=total,
        by_time=by_time,
        dimension=dimension,
        granularity=granularity,
        dimensions=DIMENSIONS,
        granularities=GRANULARITIES,
        since=since.strftime("%Y-%m-%d"),
        until=until.strftime("%Y-%m-%d"),
        chart_received=charts.hbars([(r["name"], r["received"]) for r in top]),
        chart_done=charts.hbars([(r["name"], r["done"] / r["received"]) for r in top if r["received"]], percent=True),
        chart_time=charts.lines(labels, [("受理数", [r["received"] for r in by_time])]),
        chart_rates=charts.lines(
            labels,
            [
                ("办结率", [_ratio(r["done"], r["received"]) for r in by_time]),
                ("按期办结率", [_ratio(r["on_time"], r["resolved"]) for r in by_time]),
                ("满意率", [_ratio(r["satisfied"], r["rated"]) for r in by_time]),
            ],
            percent=True,
        ),
    )
