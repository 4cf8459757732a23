"""Nothing a villager, cadre or staff member reads shows a raw identifier: every bot template rendered with
sample values, and the ticket page rendered with a fixture ticket in every stage with every event type,
are checked for status/stage/event/rating keys, file paths, login names and 系统 as the one who acted."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.templates import Templates
from bot.tickets import states
from dashboards import labels
from dashboards.context import Viewer
from dashboards.settings import DashboardSettings
from dashboards.templating import make_env
from dashboards.views_tickets import FORMS

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 9, 7, 1, 0, tzinfo=UTC)
LOGIN = "liuganshi"
RAW = re.compile(r"[A-Za-z_]{3,}|/[\w.-]+/|\.(?:png|jpe?g|gif|webp)\b")
ALLOWED_WORDS = {"http", "https"}  # the dashboard's address in the daily digest

SAMPLE: dict[str, Any] = {
    "ticket_id": 12,
    "category": "water",
    "kind": "demand",
    "assignee": "王主任",
    "deadline": "9月21日17:30",
    "reporter": "高某林",
    "count": 2,
    "parent_id": 3,
    "source_id": 4,
    "level": "township",
    "text": "张湾组停水三天了",
    "village": "石桥村",
    "actor": "刘干事",
    "note": "管道已修好",
    "reporters": ["高某林", "张大妈"],
    "photo_missing": True,
    "rating": "basically_satisfied",
    "closed": True,
    "ids": [12, 13],
    "tickets": [
        {
            "id": 12,
            "category": "water",
            "village": "石桥村",
            "deadline": "9月21日17:30",
            "level": "county",
            "overdue": True,
        }
    ],
    "days": 5,
    "reason": "需要更换主管道",
    "minutes": 10,
    "date": "9月8日",
    "scope": "城关镇",
    "new": 1,
    "active": 2,
    "overdue": 1,
    "escalated": 1,
    "resolved": 1,
    "awaiting_rating": 1,
    "flags": 3,
    "high_flags": 1,
    "url": "",
    "group": "石桥村监督服务群",
    "sender": "刘建国",
    "role": "party_member",
    "labels": ["banquet", "clue", "abuse"],
    "severity": "high",
    "at": "9月7日19:30",
    "until": "9月7日19:40",
    "weekday": "周三",
    "lunar": "农历十月初十",
    "approximate": True,
    "time": "中午",
    "place": "村委会旁",
    "event": "寿宴",
    "relation": "父亲",
    "scale": "二十桌",
    "host": "刘建国",
}


def _raw(text: str) -> list[str]:
    return [m for m in RAW.findall(text) if m not in ALLOWED_WORDS]


@pytest.mark.parametrize("name", Templates().names())
def test_every_bot_template_reads_without_raw_keys(name: str) -> None:
    templates = Templates()
    for kind in ("demand", "consult", "clue"):
        for rating in states.Rating:
            text = templates.render(name, **{**SAMPLE, "kind": kind, "rating": str(rating)})
            assert not _raw(text), (name, text)
            assert "系统" not in text, (name, text)


def _written_event_types() -> set[str]:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "bot" / "tickets").glob("*.py"))
    found = set(re.findall(r"type=\"([a-z_]+)\"", source)) | set(re.findall(r"\"type\": \"([a-z_]+)\"", source))
    found |= set(re.findall(r": \"([a-z_]+)\",\n", source.split("_EVENT_OF = {", 1)[1].split("}", 1)[0]))
    return found


def test_every_event_the_workflow_writes_has_a_name() -> None:
    written = _written_event_types()
    assert {"opened", "assigned", "resolved", "photo", "extension_requested", "photo_waived"} <= written
    assert written <= set(labels.EVENTS), written - set(labels.EVENTS)


def _viewer(role: str) -> Viewer:
    return Viewer(LOGIN, "刘干事", role, "舒城县", "城关镇", "", 0, "csrf")


@pytest.mark.parametrize("stage", list(states.Stage))
@pytest.mark.parametrize("role", ["township_staff", "cadre"])
def test_ticket_page_in_every_stage_shows_no_raw_identifier(stage: states.Stage, role: str) -> None:
    state = states.State(stage, reporters=("a", "b"))
    offered = {str(op) for op in states.available(state, states.Role.STAFF)}
    actions = {form for form, op in FORMS.items() if op in offered}
    rating = "unsatisfied" if stage == states.Stage.RATED else None
    ticket = {
        "id": 12,
        "status": str(state.status),
        "stage": str(stage),
        "overdue": stage in states.ACTIVE,
        "confidential": role != "cadre",
        "photo_missing": stage == states.Stage.AWAITING_RATING,
        "text": "张湾组停水三天了",
        "kind": "clue" if role != "cadre" else "demand",
        "category": "water",
        "group_name": None if role != "cadre" else "石桥村监督服务群",
        "county": "舒城县",
        "township": "城关镇",
        "village": "石桥村",
        "level": "township",
        "assignee_name": "刘干事",
        "opened_at": AT,
        "deadline": AT + timedelta(days=14),
        "first_response_at": AT,
        "resolved_at": AT if state.status in (states.Status.RESOLVED, states.Status.CLOSED) else None,
        "resolution_note": "管道已修好",
        "rating": rating,
    }
    events = [
        {"at": AT, "type": t, "actor": "王主任", "text": "说明"}
        for t in sorted(_written_event_types() | set(labels.EVENTS))
    ]
    reporters = [
        {"name": "高某林", "at": AT, "rating": "satisfied"},
        {"name": "张大妈", "at": AT, "rating": rating},
    ]
    photos = [{"id": 3, "at": AT, "uploaded_by": "王主任", "path": "2026/09/abc.png"}]
    settings = DashboardSettings()
    html = (
        make_env(settings)
        .get_template("ticket.html")
        .render(
            t=ticket,
            actions=actions if role != "cadre" else actions & {"note", "photo"},
            error="",
            done="",
            reporters=reporters,
            events=events,
            messages=[],
            photos=photos,
            viewer=_viewer(role),
            csrf="csrf",
            settings=settings,
            path="/tickets/12",
        )
    )
    visible = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    visible = re.sub(r"<[^>]+>", " ", visible)
    assert not _raw(visible), (stage, _raw(visible))
    assert LOGIN not in visible
    if state.status == states.Status.CLOSED:
        assert "/12/escalate" not in html and "/12/extend" not in html and "/12/resolve" not in html
    if stage == states.Stage.AWAITING_PHOTO:
        assert "待补照片" in visible
