"""`villagewatch import` and `reclassify` build banquet details as the live pipeline does (date, place,
scale), for typed invitations and for the text read from an invitation card, on SQLite and PostgreSQL; a
flag the rules no longer raise takes its details with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.config import load_config
from bot.history import import_history, reclassify
from storage.engine import make_session_factory
from storage.models import Banquet, Flag
from tests.ocr import images

ROOT = Path(__file__).resolve().parents[2]
GROUP = "石桥村监督服务群"


async def test_import_and_reclassify_build_banquet_details(engine: AsyncEngine, db_url: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    config = load_config(ROOT / "config.example.toml").model_copy(
        update={"rules_dir": rules, "data_dir": tmp_path / "data"}
    )
    (tmp_path / "card.jpg").write_bytes(images.invitation_card())
    history = tmp_path / "history.jsonl"
    lines = [
        {"kind": "message", "at": "2026-11-02T09:05:00+08:00", "group": GROUP, "sender": "刘建国",
         "text": "犬子新婚，定于本周六中午在石桥村文化礼堂略备薄酒十桌，敬请光临"},
        {"kind": "message", "at": "2026-11-10T09:00:00+08:00", "group": GROUP, "sender": "刘建国",
         "image": "card.jpg"},
        {"kind": "message", "at": "2026-11-10T09:06:00+08:00", "group": GROUP, "sender": "张大妈",
         "text": "大家早上好"},
    ]  # fmt: skip
    history.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    sessions = make_session_factory(engine)

    async def details() -> list[tuple[str | None, str | None, int | None, bool]]:
        async with sessions() as session:
            flags = {f.message_id: f for f in (await session.exec(select(Flag))).all()}
            rows = (await session.exec(select(Banquet).order_by(Banquet.message_id))).all()
        return [
            (row.date.isoformat() if row.date else None, row.place, row.tables, flags[row.message_id].from_image)
            for row in rows
        ]

    expected = [("2026-11-07", "石桥村文化礼堂", 10, False), ("2026-11-16", "石桥村文化礼堂", 20, True)]
    assert await import_history(history, config=config, db_url=db_url) == (3, 0)
    assert await details() == expected

    # Flags stored by a version that read no details: reclassify reads them.
    async with sessions() as session:
        await session.exec(delete(Banquet))  # type: ignore[call-overload]
        await session.commit()
    assert await details() == []
    changed, total = await reclassify(config=config, db_url=db_url)
    assert (changed, total) == (0, 3)
    assert await details() == expected

    # A rule change that drops the banquets drops their details too.
    (rules / "labels" / "veto_test.toml").write_text(
        '[[rule]]\nid = "veto.feast"\nlabel = "banquet"\ndecide = "veto"\nany = ["薄酒"]\n', encoding="utf-8"
    )
    changed, _ = await reclassify(config=config, db_url=db_url)
    assert changed == 2
    assert await details() == []
    async with sessions() as session:
        assert (await session.exec(select(Flag))).all() == []
