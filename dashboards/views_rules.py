"""The rules as cards (precision from verdicts, recent matches, shadow hits), the rule editor (check, dry run,
save, versions, rollback) and the rule bench."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

from aiohttp import web

from dashboards import labels
from dashboards.context import (
    RULE_BENCH,
    RULE_EDITOR,
    SESSION_FACTORY,
    audit,
    now,
    query_int,
    render,
    require,
    viewer,
)
from dashboards.ports import ActionRefused, DryRunResult, RuleEdit, RuleEditor
from storage.repos import dashboard as repo
from storage.repos import rules as rules_repo
from storage.repos import users as users_repo


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


RECENT_DAYS = 30
"""Cards count a rule's flags, and list its matches and shadow hits, over this many recent days."""
PER_PAGE = 20


def _editor(request: web.Request) -> RuleEditor:
    editor = request.app.get(RULE_EDITOR)
    if editor is None:
        raise web.HTTPNotFound(text="规则编辑未启用")
    return editor


def target_name(label: str) -> str:
    """A rule's label or category by its Chinese name."""
    if label.startswith("category:"):
        return "类别：" + labels.CATEGORIES.get(label[9:], "其他")
    return labels.LABELS.get(label, "其他")


def _matches(card: dict[str, Any], query: str) -> bool:
    if not query:
        return True
    words = [card["description"], target_name(card["label"]), *card["any"], *card["none"]]
    words += [term for group in card["all"] for term in group]
    return any(query in word for word in words)


async def rules_page(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    bench = request.app[RULE_BENCH]
    editor = request.app.get(RULE_EDITOR)
    query = request.query.get("q", "").strip()[:50]
    group = request.query.get("group", "")
    since = now(request) - timedelta(days=RECENT_DAYS)
    async with request.app[SESSION_FACTORY]() as session:
        reviewed = list(await repo.reviewed_flag_rules(session))
        hits = await rules_repo.flag_rule_counts(session, since=since, scope=me.scope)
        cards = editor.cards() if editor is not None else [_bench_card(r) for r in bench.rules()]
        shadow_ids = [c["id"] for c in cards if c["shadow"]]
        shadow_hits = await rules_repo.rule_matches(
            session, since=since, scope=me.scope, rule_ids=shadow_ids, shadow=True, limit=PER_PAGE
        )
    precision = precision_by_rule(reviewed)
    groups: dict[str, list[dict[str, Any]]] = {}
    for card in cards:
        if _matches(card, query) and (not group or card["label"] == group):
            groups.setdefault(card["label"], []).append(card)
    order = [*labels.LABELS, *(f"category:{c}" for c in labels.CATEGORIES)]
    grouped = sorted(groups.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    return render(
        request,
        "rules.html",
        grouped=grouped,
        targets=[(code, target_name(code)) for code in order],
        query=query,
        group=group,
        total=len(cards),
        precision=precision,
        hits=hits,
        shadow_hits=shadow_hits,
        target_name=target_name,
        rules_status=bench.status(),
        editable=editor is not None and me.manages_rules,
        recent_days=RECENT_DAYS,
        saved=request.query.get("saved") == "1",
    )


def _bench_card(rule: dict[str, Any]) -> dict[str, Any]:
    """A card from the rule bench's description, when no editor is wired (terms shown as written)."""
    return {
        "id": rule["id"],
        "label": rule["label"],
        "description": rule.get("description", ""),
        "any": rule.get("any", [rule.get("text", "")]),
        "all": rule.get("all", []),
        "none": rule.get("none", []),
        "weight": rule.get("weight", 1.0),
        "window": rule.get("window"),
        "shadow": rule["shadow"],
        "severity": rule.get("severity"),
    }


def _edit_from(form: Any) -> RuleEdit:
    def many(name: str) -> tuple[str, ...]:
        return tuple(str(v)[:200] for v in form.getall(name, []) if str(v).strip())[:500]

    return RuleEdit(
        rule_id=str(form.get("rule_id", ""))[:100],
        target=str(form.get("target", ""))[:60],
        description=str(form.get("description", ""))[:500],
        any=many("any") + many("any_add"),
        none=many("none") + many("none_add"),
        weight=str(form.get("weight", ""))[:30],
        window=str(form.get("window", ""))[:30],
        shadow=form.get("shadow") == "1",
    )


def _card_of(edit: RuleEdit, base: dict[str, Any] | None) -> dict[str, Any]:
    """The edited rule as the form shows it again (the terms split as the editor will split them)."""
    terms = [t for v in edit.any for t in re.split(r"[\s,，、;；]+", v) if t]
    excluded = [t for v in edit.none for t in re.split(r"[\s,，、;；]+", v) if t]
    card = dict(base or {"id": "", "label": edit.target, "all": [], "severity": None})
    card.update(
        description=edit.description,
        any=list(dict.fromkeys(terms)),
        none=list(dict.fromkeys(excluded)),
        weight=edit.weight,
        window=edit.window,
        shadow=edit.shadow,
    )
    return card


async def _rule_view(
    request: web.Request,
    card: dict[str, Any],
    *,
    edit: RuleEdit | None = None,
    error: str = "",
    result: DryRunResult | None = None,
    days: int = 7,
    status: int = 200,
) -> web.Response:
    me = viewer(request)
    since = now(request) - timedelta(days=RECENT_DAYS)
    recent: list[Any] = []
    shadow: list[Any] = []
    versions: list[Any] = []
    precision: dict[str, Any] = {}
    people: dict[str, str] = {}
    if card.get("id"):
        async with request.app[SESSION_FACTORY]() as session:
            recent = await rules_repo.rule_matches(
                session, since=since, scope=me.scope, rule_ids=[card["id"]], shadow=False, limit=10
            )
            shadow = await rules_repo.rule_matches(
                session, since=since, scope=me.scope, rule_ids=[card["id"]], shadow=True, limit=10
            )
            versions = await rules_repo.list_versions(session, rule_id=card["id"], limit=10)
            people = await _people(session)
            precision = precision_by_rule(list(await repo.reviewed_flag_rules(session))).get(card["id"], {})
    shown = _card_of(edit, card) if edit is not None else card
    return render(
        request,
        "rule_edit.html",
        status=status,
        card=shown,
        is_new=not card.get("id"),
        targets=[
            *((code, name) for code, name in labels.LABELS.items()),
            *((f"category:{code}", "类别：" + name) for code, name in labels.CATEGORIES.items()),
        ],
        target_name=target_name,
        error=error,
        result=result,
        days=days,
        recent=recent,
        shadow=shadow,
        versions=versions,
        people=people,
        precision=precision,
        editable=me.manages_rules and RULE_EDITOR in request.app,
        recent_days=RECENT_DAYS,
        saved=request.query.get("saved") == "1",
    )


async def _people(session: Any) -> dict[str, str]:
    """Who saved a version, by display name (a login name is never shown)."""
    return {u.username: u.display_name or "工作人员" for u in await users_repo.list_users(session)}


def _find_card(request: web.Request, rule_id: str) -> dict[str, Any]:
    card = next((c for c in _editor(request).cards() if c["id"] == rule_id), None)
    if card is None:
        raise web.HTTPNotFound(text="未找到该规则")
    return card


async def rule_page(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    return await _rule_view(request, _find_card(request, request.match_info["rule_id"]))


async def new_rule_page(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.manages_rules)
    _editor(request)
    target = request.query.get("target", "")
    card = {
        "id": "",
        "label": target,
        "description": "",
        "any": [],
        "all": [],
        "none": [],
        "weight": 1.0,
        "window": None,
        "shadow": True,
        "severity": None,
    }
    return await _rule_view(request, card)


def _days(form: Any) -> int:
    try:
        return max(1, min(90, int(str(form.get("days", "7")))))
    except ValueError:
        return 7


def _page(form: Any) -> int:
    try:
        return max(1, min(10_000, int(str(form.get("page", "1")))))
    except ValueError:
        return 1


async def preview(request: web.Request) -> web.StreamResponse:
    """Check an edit and show, before anything is saved, which stored messages it would flag or stop flagging."""
    me = viewer(request)
    require(request, me.manages_rules)
    editor = _editor(request)
    form = await request.post()
    edit = _edit_from(form)
    base = _find_card(request, edit.rule_id) if edit.rule_id else None
    days = _days(form)
    scope = me.scope
    try:
        result = await editor.dry_run(
            edit,
            days=days,
            county=scope.county,
            township=scope.township,
            village=scope.village,
            page=_page(form),
            per_page=PER_PAGE,
        )
    except ActionRefused as exc:
        return await _rule_view(request, base or _card_of(edit, None), edit=edit, error=str(exc), days=days, status=400)
    await audit(
        request,
        "rule_edit_dry_run",
        target=f"rule:{edit.rule_id}" if edit.rule_id else "",
        detail=f"{days}天 新增{result.gained}条 减少{result.lost}条",
    )
    return await _rule_view(request, base or _card_of(edit, None), edit=edit, result=result, days=days)


async def save(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.manages_rules)
    editor = _editor(request)
    form = await request.post()
    edit = _edit_from(form)
    base = _find_card(request, edit.rule_id) if edit.rule_id else None
    reason = str(form.get("reason", ""))[:500]
    try:
        rule_id = await editor.save(edit, actor=me.username, reason=reason)
    except ActionRefused as exc:
        return await _rule_view(
            request, base or _card_of(edit, None), edit=edit, error=str(exc), days=_days(form), status=400
        )
    await audit(request, "rule_add" if not edit.rule_id else "rule_edit", target=f"rule:{rule_id}", detail=reason)
    raise web.HTTPFound(f"/rules/rule/{rule_id}?saved=1")


async def versions_page(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    page = query_int(request, "page", default=1) or 1
    async with request.app[SESSION_FACTORY]() as session:
        total = await rules_repo.count_versions(session)
        rows = await rules_repo.list_versions(session, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
        people = await _people(session)
    names = {c["id"]: c for c in _editor(request).cards()}
    return render(
        request,
        "rule_versions.html",
        rows=rows,
        cards=names,
        people=people,
        target_name=target_name,
        page=page,
        pages=max(1, math.ceil(total / PER_PAGE)),
        editable=me.manages_rules,
        done=request.query.get("done") == "1",
        error="",
    )


async def rollback(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.manages_rules)
    editor = _editor(request)
    version_id = int(request.match_info["version_id"])
    form = await request.post()
    reason = str(form.get("reason", ""))[:500]
    try:
        await editor.rollback(version_id, actor=me.username, reason=reason)
    except ActionRefused as exc:
        async with request.app[SESSION_FACTORY]() as session:
            rows = await rules_repo.list_versions(session, limit=PER_PAGE)
            people = await _people(session)
        return render(
            request,
            "rule_versions.html",
            status=400,
            rows=rows,
            cards={c["id"]: c for c in editor.cards()},
            people=people,
            target_name=target_name,
            page=1,
            pages=1,
            editable=True,
            done=False,
            error=str(exc),
        )
    await audit(request, "rule_rollback", target=f"rule_version:{version_id}", detail=reason)
    raise web.HTTPFound("/rules/versions?done=1")


async def set_shadow(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.manages_rules)
    rule_id = request.match_info["rule_id"]
    form = await request.post()
    shadow = form.get("shadow") == "1"
    bench = request.app[RULE_BENCH]
    if rule_id not in {r["id"] for r in bench.rules()}:
        raise web.HTTPNotFound(text="未找到该规则")
    try:
        await bench.set_shadow(rule_id, shadow, actor=me.username)
    except ActionRefused as exc:
        return render(request, "error.html", status=400, code=400, message=str(exc))
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
