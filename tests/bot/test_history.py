"""`villagewatch import` and `reclassify`: history is stored and flagged without tickets; new rules re-judge it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.config import Config, load_config
from bot.history import import_history, reclassify
from storage.engine import make_engine, make_session_factory
from storage.models import Classification, Flag, Message, Outbox, Ticket

ROOT = Path(__file__).resolve().parents[2]
GROUP = "石桥村监督服务群"


async def test_import_then_reclassify_with_changed_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    config = load_config(ROOT / "config.example.toml").model_copy(
        update={"rules_dir": rules, "data_dir": tmp_path / "data"}
    )
    history = tmp_path / "history.jsonl"
    lines = [
        {
            "kind": "message",
            "at": "2026-05-01T09:00:00+08:00",
            "group": GROUP,
            "sender": "高某林",
            "text": "路灯坏了一个礼拜了有人管没有",
        },
        {
            "kind": "message",
            "at": "2026-05-01T09:05:00+08:00",
            "group": GROUP,
            "sender": "刘建国",
            "text": "犬子新婚,略备薄酒,敬请光临",
        },
        {
            "kind": "message",
            "at": "2026-05-01T09:06:00+08:00",
            "group": GROUP,
            "sender": "张大妈",
            "text": "大家早上好",
        },
    ]
    history.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    db = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"

    assert await import_history(history, config=config, db_url=db) == (3, 0)
    assert await import_history(history, config=config, db_url=db) == (0, 3)
    engine = make_engine(db)
    try:
        await _check(engine, config, rules, db)
    finally:
        await engine.dispose()


async def _check(engine: AsyncEngine, config: Config, rules: Path, db: str) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        assert len((await session.exec(select(Message))).all()) == 3
        assert (await session.exec(select(Ticket))).all() == []
        assert (await session.exec(select(Outbox))).all() == []
        flags = (await session.exec(select(Flag))).all()
        assert len(flags) == 1 and "banquet" in flags[0].labels
        assert flags[0].role == "party_member" and flags[0].severity == "high"

    # Staff keep the last word over the model: a veto rule cancels the banquet on every stored message.
    (rules / "labels" / "veto_test.toml").write_text(
        '[[rule]]\nid = "veto.feast"\nlabel = "banquet"\ndecide = "veto"\nany = ["薄酒"]\n', encoding="utf-8"
    )
    changed, total = await reclassify(config=config, db_url=db)
    assert total == 3 and changed == 1
    async with sessions() as session:
        assert (await session.exec(select(Flag))).all() == []
        classifications = (await session.exec(select(Classification))).all()
        assert len(classifications) == 3 and all("banquet" not in c.labels for c in classifications)
