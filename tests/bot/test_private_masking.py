"""Private WeChat messages to staff and cadres carry villagers' text with phone and ID numbers masked."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.scenarios.harness import replay

MEMBERS = [
    {
        "kind": "member",
        "group": "石桥村监督服务群",
        "name": "李书记",
        "role": "cadre",
        "village": "石桥村",
        "township": "城关镇",
        "county": "舒城县",
        "head": True,
    },
    {
        "kind": "member",
        "group": "石桥村监督服务群",
        "name": "高某林",
        "role": "villager",
        "village": "石桥村",
        "township": "城关镇",
        "county": "舒城县",
    },
    {"kind": "member", "name": "刘干事", "role": "staff", "township": "城关镇", "county": "舒城县"},
]


async def test_staff_get_reports_with_numbers_masked(engine: AsyncEngine, db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "private.jsonl"
    lines = [
        *MEMBERS,
        {
            "kind": "message",
            "at": "2026-09-07T21:00:00+08:00",
            "private": True,
            "sender": "高某林",
            "text": "村主任王某把低保名额给了亲戚,收了红包。我电话139-1234-5678,身份证11010119900307123X",
        },
    ]
    script.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
    outcome = await replay(db_url, tmp_path, str(script))
    to_staff = outcome.texts("private:刘干事")
    assert to_staff and any("低保" in text for text in to_staff)
    every = "\n".join(outcome.texts())
    assert "139-****-5678" in every and "110101********123X" in every
    assert "1234-5678" not in every and "19900307" not in every
    # the ticket itself keeps the full text (the dashboard's admin may see it)
    assert "139-1234-5678" in outcome.ticket(1)["events"][0]["text"] or "139-1234-5678" in json.dumps(
        outcome.tickets, ensure_ascii=False
    )
