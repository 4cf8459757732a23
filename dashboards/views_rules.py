"""Rules with their text, shadow-mode switch and precision from verdicts; the rule bench and dry run."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dashboards.context import RULE_BENCH, SESSION_FACTORY, audit, render, require, viewer
from storage.repos import dashboard as repo


def precision_by_rule(reviewed: list[Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for rules, verdict in reviewed:
        for rule in rules or []:
            entry = out.setdefault(rule, {"confirmed": 0, "false_alarm": 0, "follow_up": 0})
            if verdict in entry:
                entry[verdict] += 1
    for entry in out.values():
        decided = entry["confirmed"] + entry["false_alarm"]
        entry["precision"] = entry["confirmed"] / decided if decided else None
        entry["reviewed"] = decided + entry["follow_up"]
    return out


async def rules_page(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    async with request.app[SESSION_FACTORY]() as session:
        reviewed = list(await repo.reviewed_flag_rules(session))
    precision = precision_by_rule(reviewed)
    bench = request.app[RULE_BENCH]
    return render(request, "rules.html", rules=bench.rules(), precision=precision, rules_status=bench.status())


async def set_shadow(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.manages_rules)
    rule_id = request.match_info["rule_id"]
    form = await request.post()
    shadow = form.get("shadow") == "1"
    bench = request.app[RULE_BENCH]
    if rule_id not in {r["id"] for r in bench.rules()}:
        raise web.HTTPNotFound(text="未找到该规则")
    await bench.set_shadow(rule_id, shadow, actor=me.username)
    await audit(request, "rule_shadow", target=f"rule:{rule_id}", detail="on" if shadow else "off")
    raise web.HTTPFound("/rules#rule-" + rule_id)


async def bench_page(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    return render(request, "bench.html", text="", role="villager", result=None, days=7, changes=None)


async def bench_run(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    form = await request.post()
    bench = request.app[RULE_BENCH]
    text = str(form.get("text", ""))[:2000]
    role = str(form.get("role", "villager"))
    if role not in ("villager", "party_member", "cadre", "staff"):
        role = "villager"
    result = None
    changes = None
    try:
        days = max(1, min(90, int(str(form.get("days", "7")))))
    except ValueError:
        days = 7
    if form.get("action") == "dry_run":
        scope = me.scope
        changes = await bench.dry_run(
            days=days, county=scope.county, township=scope.township, village=scope.village, limit=200
        )
        await audit(request, "rule_dry_run", detail=f"{days}天 {len(changes)}条变化")
    elif text.strip():
        result = bench.classify(text, role)
    return render(request, "bench.html", text=text, role=role, result=result, days=days, changes=changes)
