"""Excel ledgers (台账) of tickets and of flags for a period and the viewer's scope, numbers masked; Chinese
headers, frozen with an autofilter, columns fitted to Chinese text, dates as real dates (see :class:`Ledger`)."""

from __future__ import annotations

import io
import unicodedata
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import quote

from aiohttp import web
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from classifiers.masking import mask_numbers
from dashboards import humanize
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


WIDTH_SAMPLE = 500
"""Rows read before the columns' widths are set (a streamed sheet fixes them before its first row)."""
MAX_WIDTH = 60
"""The widest a column grows (long message texts), in Excel's character units."""
MIN_WIDTH = 6
HEADER_FILL = PatternFill("solid", fgColor="DDE6F0")


def text_width(value: object) -> int:
    """How many Excel character units a value needs: a Chinese (full-width) character takes two."""
    if isinstance(value, datetime):
        return 18  # 2026年12月1日 15:30
    text = str(value) if value is not None else ""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


class Ledger:
    """One sheet of a ledger, streamed: Chinese headers in bold, frozen with an autofilter, columns as wide as
    their content (the first :data:`WIDTH_SAMPLE` rows), moments as real dates shown the Chinese way, every
    string a text cell (user text starting with = + - @ is never a formula)."""

    def __init__(self, wb: Workbook, title: str, headers: list[str]) -> None:
        self.ws = wb.create_sheet(title)
        self.headers = headers
        self.widths = [text_width(h) for h in headers]
        self.pending: list[list[Any]] = []
        self.rows = 0
        self.started = False

    def append(self, values: list[Any]) -> None:
        self.rows += 1
        if self.started:
            self.ws.append(self._cells(values))
            return
        for i, value in enumerate(values):
            self.widths[i] = max(self.widths[i], text_width(value))
        self.pending.append(values)
        if len(self.pending) >= WIDTH_SAMPLE:
            self._start()

    def close(self) -> None:
        self._start()
        last = get_column_letter(len(self.headers))
        self.ws.auto_filter.ref = f"A1:{last}{self.rows + 1}"

    def _start(self) -> None:
        if self.started:
            return
        self.started = True
        for i, width in enumerate(self.widths, start=1):
            self.ws.column_dimensions[get_column_letter(i)].width = min(max(width + 2, MIN_WIDTH), MAX_WIDTH)
        self.ws.freeze_panes = "A2"
        header = []
        for h in self.headers:
            cell = WriteOnlyCell(self.ws, value=h)
            cell.font = Font(bold=True)
            cell.fill = HEADER_FILL
            header.append(cell)
        self.ws.append(header)
        for values in self.pending:
            self.ws.append(self._cells(values))
        self.pending = []

    def _cells(self, values: list[Any]) -> list[Any]:
        cells = []
        for value in values:
            cell = WriteOnlyCell(self.ws, value=value)
            if isinstance(value, str):
                cell.data_type = "s"
            elif isinstance(value, datetime):
                cell.number_format = humanize.EXCEL_MINUTE
            cells.append(cell)
        return cells


def _moment(value: datetime | None, tz: tzinfo) -> datetime | None:
    """A stored moment as the local wall-clock time Excel shows (Excel dates carry no time zone)."""
    return humanize.local(value, tz).replace(tzinfo=None) if value is not None else None


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
    sheet = Ledger(wb, "工单台账", TICKET_HEADERS)

    async with request.app[SESSION_FACTORY]() as session:
        async for r, names in repo.iter_export_tickets(session, scope=me.scope, since=since, until=until):  # type: ignore[arg-type]
            unit = " ".join(p for p in (r["township"], r["village"] if r["level"] == "village" else "") if p)
            sheet.append(
                [
                    r["id"],
                    _moment(r["opened_at"], tz),
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
                    _moment(r["deadline"], tz),
                    _moment(r["resolved_at"], tz),
                    clean(r["resolution_note"]),
                    L.RATINGS.get(r["rating"] or "", ""),
                ]
            )
    sheet.close()
    await audit(request, "export_tickets", detail=f"{since_s}~{until_s} {sheet.rows}条")
    return _xlsx(request, wb, f"工单台账_{since_s}_{until_s}.xlsx")


async def export_flags(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    settings = request.app[SETTINGS]
    tz = timezone(timedelta(hours=settings.tz_hours))
    since_s, until_s, since, until = _period(request)
    clean = (lambda s: s or "") if me.sees_numbers else (lambda s: mask_numbers(s or ""))
    wb = Workbook(write_only=True)
    sheet = Ledger(wb, "网巡台账", FLAG_HEADERS)
    async with request.app[SESSION_FACTORY]() as session:
        async for r in repo.iter_export_flags(session, scope=me.scope, since=since, until=until):  # type: ignore[arg-type]
            sheet.append(
                [
                    r["id"],
                    _moment(r["at"], tz),
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
                ]
            )
    sheet.close()
    await audit(request, "export_flags", detail=f"{since_s}~{until_s} {sheet.rows}条")
    return _xlsx(request, wb, f"网巡台账_{since_s}_{until_s}.xlsx")
