"""Excel ledgers (台账) of tickets and of flags for a period and the viewer's scope, numbers masked."""

from __future__ import annotations

import io
from datetime import timedelta, timezone
from typing import Any
from urllib.parse import quote

from aiohttp import web
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from classifiers.masking import mask_numbers
from dashboards import labels as L
from dashboards.context import SESSION_FACTORY, SETTINGS, audit, now, render, viewer
from dashboards.views_tickets import parse_day
from storage.repos import dashboard as repo

TICKET_HEADERS = [
    "编号",
    "投诉时间",
    "乡镇",
    "村",
    "群",
    "类型",
    "类别",
    "内容",
    "反映人",
    "办理单位",
    "责任人",
    "完成情况",
    "是否逾期",
    "办理期限",
    "办结时间",
    "办结说明",
    "群众评价",
]
FLAG_HEADERS = [
    "编号",
    "时间",
    "乡镇",
    "村",
    "群",
    "发送人",
    "身份",
    "标签",
    "严重程度",
    "规则",
    "关键词",
    "内容",
    "核查结论",
]


async def exports_page(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    today = now(request) + timedelta(hours=settings.tz_hours)
    return render(
        request,
        "exports.html",
        since=(today - timedelta(days=30)).strftime("%Y-%m-%d"),
        until=today.strftime("%Y-%m-%d"),
    )


def _period(request: web.Request) -> tuple[str, str, object, object]:
    since_s = request.query.get("since", "")
    until_s = request.query.get("until", "")
    since = parse_day(request, since_s)
    until = parse_day(request, until_s)
    if since is None or until is None or until < since:
        raise web.HTTPBadRequest(text="请填写正确的起止日期")
    return since_s, until_s, since, until + timedelta(days=1)


def _header_row(ws: Any, headers: list[str]) -> list[Any]:
    cells = []
    for h in headers:
        cell = WriteOnlyCell(ws, value=h)
        cell.font = Font(bold=True)
        cells.append(cell)
    return cells


def _row(ws: Any, values: list[Any]) -> list[Any]:
    """Cells of one row; every string is a text cell, so user text starting with = + - @ is never a formula."""
    cells = []
    for value in values:
        cell = WriteOnlyCell(ws, value=value)
        if isinstance(value, str):
            cell.data_type = "s"
        cells.append(cell)
    return cells


def _xlsx(request: web.Request, wb: Workbook, filename: str) -> web.Response:
    buf = io.BytesIO()
    wb.save(buf)
    return web.Response(
        body=buf.getvalue(),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


async def export_tickets(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    settings = request.app[SETTINGS]
    tz = timezone(timedelta(hours=settings.tz_hours))
    since_s, until_s, since, until = _period(request)
    clean = (lambda s: s or "") if me.sees_numbers else (lambda s: mask_numbers(s or ""))
    categories = {**L.CATEGORIES, **dict(settings.category_names)}
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("工单台账")
    ws.append(_header_row(ws, TICKET_HEADERS))
    count = 0

    def t(v: object) -> str:
        return v.astimezone(tz).strftime("%Y-%m-%d %H:%M") if v is not None else ""  # type: ignore[attr-defined]

    async with request.app[SESSION_FACTORY]() as session:
        async for r, names in repo.iter_export_tickets(session, scope=me.scope, since=since, until=until):  # type: ignore[arg-type]
            unit = " ".join(p for p in (r["township"], r["village"] if r["level"] == "village" else "") if p)
            ws.append(
                _row(
                    ws,
                    [
                        r["id"],
                        t(r["opened_at"]),
                        r["township"],
                        r["village"],
                        r["group_name"] or "私聊",
                        L.KINDS.get(r["kind"], r["kind"]),
                        categories.get(r["category"] or "", r["category"] or ""),
                        clean(r["text"]),
                        clean("、".join(names)),
                        f"{L.LEVELS.get(r['level'], r['level'])} {unit}".strip(),
                        clean(r["assignee_name"]),
                        L.STATUSES.get(r["status"], r["status"]),
                        "是" if r["overdue"] else "否",
                        t(r["deadline"]),
                        t(r["resolved_at"]),
                        clean(r["resolution_note"]),
                        L.RATINGS.get(r["rating"] or "", ""),
                    ],
                )
            )
            count += 1
    await audit(request, "export_tickets", detail=f"{since_s}~{until_s} {count}条")
    return _xlsx(request, wb, f"工单台账_{since_s}_{until_s}.xlsx")


async def export_flags(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    settings = request.app[SETTINGS]
    tz = timezone(timedelta(hours=settings.tz_hours))
    since_s, until_s, since, until = _period(request)
    clean = (lambda s: s or "") if me.sees_numbers else (lambda s: mask_numbers(s or ""))
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("网巡台账")
    ws.append(_header_row(ws, FLAG_HEADERS))
    count = 0
    async with request.app[SESSION_FACTORY]() as session:
        async for r in repo.iter_export_flags(session, scope=me.scope, since=since, until=until):  # type: ignore[arg-type]
            ws.append(
                _row(
                    ws,
                    [
                        r["id"],
                        r["at"].astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                        r["township"],
                        r["village"],
                        r["group_name"] or "私聊",
                        clean(r["sender_name"]),
                        L.MEMBER_ROLES.get(r["role"], r["role"]),
                        "、".join(L.LABELS.get(x, x) for x in r["labels"]),
                        L.SEVERITIES.get(r["severity"], r["severity"]),
                        "、".join(r["rules"]),
                        "、".join(r["keywords"]),
                        clean(r["text"]),
                        L.VERDICTS.get(r["verdict"] or "", "未核查"),
                    ],
                )
            )
            count += 1
    await audit(request, "export_flags", detail=f"{since_s}~{until_s} {count}条")
    return _xlsx(request, wb, f"网巡台账_{since_s}_{until_s}.xlsx")
