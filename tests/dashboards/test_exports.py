"""The Excel ledgers as Excel shows them, opened with openpyxl: Chinese headers, a frozen header row with an
autofilter, columns wide enough for Chinese text, moments as real dates in a Chinese number format, user text
always text. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import datetime

from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from dashboards import humanize
from dashboards.views_exports import FLAG_HEADERS, MAX_WIDTH, TICKET_HEADERS, text_width
from tests.dashboards.conftest import Dash


async def _sheet(dash: Dash, path: str) -> Worksheet:
    resp = await dash.client.get(path)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(await resp.read())).active
    assert isinstance(sheet, Worksheet)
    return sheet


def _column(sheet: Worksheet, header: str) -> list[object]:
    headers = [c.value for c in sheet[1]]
    index = headers.index(header) + 1
    return [sheet.cell(row=r, column=index) for r in range(2, sheet.max_row + 1)]


async def test_the_ticket_ledger_reads_well_in_excel(dash: Dash) -> None:
    await dash.login("town_a")
    sheet = await _sheet(dash, "/exports/tickets.xlsx?since=2026-09-01&until=2026-09-30")
    assert sheet.title == "工单台账"
    assert [c.value for c in sheet[1]] == TICKET_HEADERS
    assert all(c.font.bold for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:Q{sheet.max_row}" and sheet.max_row == 5
    # moments are dates, shown the Chinese way; an empty one stays empty
    opened = _column(sheet, "投诉时间")
    assert all(isinstance(c.value, datetime) for c in opened)  # type: ignore[attr-defined]
    assert all(c.number_format == humanize.EXCEL_MINUTE for c in opened)  # type: ignore[attr-defined]
    assert {c.value for c in opened} >= {datetime(2026, 9, 7, 8, 0)}  # type: ignore[attr-defined]  # local time
    resolved = [c.value for c in _column(sheet, "办结时间")]  # type: ignore[attr-defined]
    assert None in resolved and datetime(2026, 9, 9, 8, 0) in resolved
    # every column fits its Chinese header and content (two units per character), within a cap
    widths = {
        sheet.cell(row=1, column=i).value: sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width
        for i in range(1, 18)
    }
    for header, width in widths.items():
        assert width >= text_width(header) + 2, header
    text_cells = _column(sheet, "内容")
    longest = max(text_width(c.value) for c in text_cells)  # type: ignore[attr-defined]
    assert widths["内容"] == min(longest + 2, MAX_WIDTH) and widths["内容"] > widths["编号"]
    # user text is text
    assert all(c.data_type == "s" for c in text_cells)  # type: ignore[attr-defined]


async def test_the_flag_ledger_reads_well_in_excel(dash: Dash) -> None:
    await dash.login("county")
    sheet = await _sheet(dash, "/exports/flags.xlsx?since=2026-09-01&until=2026-09-30")
    assert [c.value for c in sheet[1]] == FLAG_HEADERS
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == f"A1:M{sheet.max_row}"
    at = _column(sheet, "时间")
    assert {c.value for c in at} >= {datetime(2026, 9, 7, 8, 5)}  # type: ignore[attr-defined]
    assert all(c.number_format == humanize.EXCEL_MINUTE for c in at)  # type: ignore[attr-defined]
    assert "<script>alert('xss')</script>今晚八点开饭" in {c.value for c in _column(sheet, "内容")}  # type: ignore[attr-defined]
    assert {c.value for c in _column(sheet, "核查结论")} == {"未核查"}  # type: ignore[attr-defined]


async def test_an_empty_period_is_a_header_only_ledger(dash: Dash) -> None:
    await dash.login("town_a")
    sheet = await _sheet(dash, "/exports/flags.xlsx?since=2020-01-01&until=2020-01-31")
    assert sheet.max_row == 1 and [c.value for c in sheet[1]] == FLAG_HEADERS
    assert sheet.freeze_panes == "A2"


async def test_the_roster_csv_opens_as_chinese_in_excel(dash: Dash) -> None:
    await dash.login("town_a")
    resp = await dash.client.get("/roster.csv")
    assert resp.status == 200
    body = await resp.read()
    assert body.startswith("\ufeff".encode()) and "李书记" in body.decode("utf-8-sig")


def test_text_width_counts_chinese_twice() -> None:
    assert text_width("abc") == 3 and text_width("石桥村") == 6 and text_width("１２") == 4 and text_width(None) == 0
