"""Bulk transfer, escalate and close from the ticket board: each ticket through the one state machine.

Every ticket is checked on its own (in the viewer's scope, the action allowed in its state now) and each
outcome audited; the ones refused are listed back in Chinese with their number and the workflow's reason.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit

from aiohttp import web

from dashboards.context import SESSION_FACTORY, TICKET_ACTIONS, audit, require, viewer
from dashboards.labels import TICKET_FORM_NAMES
from dashboards.ports import ActionRefused
from dashboards.views_tickets import actor_name
from storage.repos import dashboard as repo

BULK_OPS = ("transfer", "escalate", "close")
MAX_BULK = 200


def _back(value: str) -> str:
    """The board page the form came from (its filters), never another site or page."""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path != "/tickets" or not value.isprintable():
        return "/tickets"
    keep = [(k, v) for k, v in _pairs(parts.query) if k not in ("bulk_done", "bulk_error", "page")]
    return "/tickets" + ("?" + urlencode(keep) if keep else "")


def _pairs(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query, keep_blank_values=False)


async def bulk(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    form = await request.post()

    def field(name: str, limit: int = 1000) -> str:
        value = form.get(name, "")
        return value.strip()[:limit] if isinstance(value, str) else ""

    back = _back(field("back", 3000))
    op = field("op", 20)
    ids: list[int] = []
    for raw in form.getall("ids", []):
        if isinstance(raw, str) and raw.isdigit() and len(raw) <= 9 and int(raw) not in ids:
            ids.append(int(raw))
    problems: list[str] = []
    if op not in BULK_OPS:
        problems.append("请选择批量操作")
    elif not ids:
        problems.append("请先勾选工单")
    elif len(ids) > MAX_BULK:
        problems.append(f"一次最多处理 {MAX_BULK} 件")
    to_member, reason = field("to_member", 64), field("reason")
    if not problems and op == "transfer" and not to_member:
        problems.append("请填写转办对象")
    done = 0
    if not problems:
        actions = request.app[TICKET_ACTIONS]
        actor = actor_name(me)
        for ticket_id in ids:
            async with request.app[SESSION_FACTORY]() as session:
                visible = await repo.get_ticket(session, ticket_id=ticket_id, scope=me.scope)
            if visible is None:
                problems.append(f"#{ticket_id}：未找到")
                continue
            try:  # the state machine decides: its refusal (in Chinese) is what the list shows
                if op == "transfer":
                    await actions.transfer(ticket_id, to_member=to_member, actor=actor)
                elif op == "escalate":
                    await actions.escalate(ticket_id, actor=actor, reason=reason or "纪检监察干部提级督办")
                else:
                    await actions.close(ticket_id, actor=actor, text=reason)
            except ActionRefused as exc:
                problems.append(f"#{ticket_id}：{exc}")
                await audit(request, f"ticket_{op}_refused", target=f"ticket:{ticket_id}", detail=f"批量 {exc}")
                continue
            done += 1
            detail = to_member if op == "transfer" else reason
            await audit(request, f"ticket_{op}", target=f"ticket:{ticket_id}", detail=f"批量 {detail}".strip())
        await audit(
            request, "ticket_bulk", target=op, detail=f"{TICKET_FORM_NAMES[op]} {done}件成功 {len(ids) - done}件未办"
        )
    sep = "&" if "?" in back else "?"
    target = f"{back}{sep}bulk_done={done}"
    if problems:
        target += "&bulk_error=" + quote("；".join(problems[:20]) + ("……" if len(problems) > 20 else ""), safe="")
    raise web.HTTPFound(target)
