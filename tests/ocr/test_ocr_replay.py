"""Text in images through `villagewatch replay`, on SQLite and PostgreSQL: a party member's invitation card
becomes a high-severity banquet flag with its date, place and scale read from the picture; a photo of a
停水通知 is a notice, not a ticket; a cadre's picture is read but raises no flag; corrupt, non-image, huge and
bomb files are kept, marked and logged while the replay goes on; a second run classifies nothing twice."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.replay import run_replay
from bot.reports import flags_as_json
from bot.tickets import tickets_as_json
from storage.engine import make_session_factory
from storage.models import ImageText
from tests.ocr import images
from tests.scenarios.harness import scenario_config

GROUP = "石桥村监督服务群"


def _member(name: str, role: str) -> dict[str, str]:
    return {"kind": "member", "group": GROUP, "name": name, "role": role, "village": "石桥村"}


def _image(at: str, sender: str, image: str) -> dict[str, str]:
    return {"kind": "message", "at": f"2026-11-10T{at}:00+08:00", "group": GROUP, "sender": sender, "image": image}


def write_script(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "card.jpg": images.invitation_card(images.PARTY_CARD, ink=images.GOLD),
        "notice.jpg": images.notice(),
        "cadre_card.jpg": images.invitation_card(images.WEDDING_CARD, ink=images.BLACK),
        "corrupt.jpg": images.corrupt_jpeg(),
        "page.jpg": images.not_an_image(),
        "huge.jpg": images.huge_file(),
        "bomb.png": images.png_bomb(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    lines = [
        _member("刘建国", "party_member"),
        _member("高某林", "villager"),
        _member("王主任", "cadre"),
        _image("09:00", "刘建国", "card.jpg"),
        _image("09:05", "高某林", "notice.jpg"),
        _image("09:10", "王主任", "cadre_card.jpg"),
        _image("09:15", "高某林", "corrupt.jpg"),
        _image("09:16", "高某林", "page.jpg"),
        _image("09:17", "高某林", "huge.jpg"),
        _image("09:18", "高某林", "bomb.png"),
        {
            "kind": "message",
            "at": "2026-11-10T09:30:00+08:00",
            "group": GROUP,
            "sender": "高某林",
            "text": "村口的路灯坏了好几天了，晚上走路看不见，请村里尽快派人来修一下",
        },
    ]
    script = folder / "images.jsonl"
    script.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
    return script


async def test_cards_notices_and_bad_files_through_replay(
    engine: AsyncEngine, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = write_script(tmp_path / "script")
    config = scenario_config(tmp_path / "data")
    caplog.set_level(logging.WARNING, logger="bot.ocr.service")
    for _ in range(2):  # the second run on the same database stores, reads and classifies nothing again
        out = io.StringIO()
        await run_replay(script, config=config, db_url=db_url, transcript=out, media_root=tmp_path / "media")
    async with make_session_factory(engine)() as session:  # the fixture emptied PostgreSQL before the test
        flags = await flags_as_json(session)
        tickets = await tickets_as_json(session)
        rows = (await session.exec(select(ImageText))).all()
    read = {row.message_id: row.model_dump() for row in rows}

    [flag] = flags  # the cadre's card raises nothing: a cadre is never flagged by a picture alone
    assert flag["sender"] == "刘建国" and flag["role"] == "party_member"
    assert "banquet" in flag["labels"] and flag["severity"] == "high"
    assert flag["from_image"] is True and flag["image_text"]["status"] == "done"
    assert images.accuracy("".join(images.PARTY_CARD), flag["image_text"]["text"]) >= 0.90
    banquet = flag["banquet"]
    assert (banquet["date"], banquet["calendar"], banquet["place"], banquet["scale"], banquet["tables"]) == (
        "2026-11-16",
        "lunar",
        "石桥村文化礼堂",
        "二十桌",
        20,
    )
    # The notice photo is a notice, not a ticket; the typed report after the bad files is one.
    [ticket] = tickets
    assert "路灯" in ticket["events"][0]["text"] or ticket["category"] == "power"
    by_status = sorted((row["status"], row["error"] or "", "banquet" in row["labels"]) for row in read.values())
    assert by_status == [
        ("done", "", False),  # the notice
        ("done", "", True),
        ("done", "", True),  # the cadre's card: read and classified, but no flag
        ("failed", "corrupt", False),
        ("failed", "not_image", False),
        ("failed", "too_large", False),
        ("failed", "too_many_pixels", False),
    ]
    notice = [row for row in read.values() if row["status"] == "done" and "banquet" not in row["labels"]]
    assert [tuple(row["labels"]) for row in notice] == [("notice",)]
    failures = [r for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(failures) == 4, [r.getMessage() for r in failures]  # once each: the second run read nothing
