"""How long the rule editor's dry run takes over the most it reads (the newest 20,000 stored messages).

Messages are the project's labelled texts (classifiers/data), repeated, spread over the last 7 days in one
SQLite database (or ``--db`` PostgreSQL). Three edits: a keyword added to a gambling rule, a broad demand rule's
weight and exclusions changed, a new shadow rule; each is timed end to end (check, candidate rules, query,
classification), and with the term pre-filter switched off for comparison.

    .venv/bin/python benchmarks/bench_rule_dry_run.py [--messages 20000] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from bot import rule_editor
from bot.clock import CHINA, SimulatedClock
from bot.rule_editor import RuleEditor
from classifiers import ClassifierHolder
from dashboards.ports import RuleEdit
from storage.engine import make_engine, make_session_factory
from storage.migrate import upgrade
from storage.models import Message

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 9, 20, 12, 0, tzinfo=CHINA)


def _texts() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "classifiers/data").glob("*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out.append((row["text"], row.get("role") or "villager"))
    return out


async def _fill(url: str, count: int) -> None:
    engine = make_engine(url)
    await upgrade(engine)
    sessions = make_session_factory(engine)
    texts = _texts()
    async with sessions() as session:
        for n in range(count):
            text, role = texts[n % len(texts)]
            session.add(
                Message(
                    account="bench",
                    platform_id=f"dry-{n}",
                    at=NOW - timedelta(seconds=n * 7 * 86400 // count),
                    group_name="石桥村监督服务群",
                    sender_name="村民",
                    role=role,
                    text=text,
                    county="舒城县",
                    township="城关镇",
                    village="石桥村",
                )
            )
            if n % 5000 == 4999:
                await session.commit()
        await session.commit()
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules"
        shutil.copytree(ROOT / "rules", rules)
        url = args.db or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await _fill(url, args.messages)
        engine = make_engine(url)
        editor = RuleEditor(
            sessions=make_session_factory(engine), holder=ClassifierHolder(rules), clock=SimulatedClock(NOW)
        )
        cards = {c["id"]: c for c in editor.cards()}
        games, outage = cards["gambling.games"], cards["demand.outage"]
        edits = {
            "keyword added (gambling.games)": RuleEdit(
                rule_id="gambling.games", any=(*games["any"], "骰子"), none=tuple(games["none"]), weight="0.7"
            ),
            "weight + exclusion (demand.outage)": RuleEdit(
                rule_id="demand.outage", any=tuple(outage["any"]), none=("昨天",), weight="0.9"
            ),
            "new shadow rule (spam)": RuleEdit(target="spam", any=("扫码领", "免费领"), shadow=True),
        }
        for name, edit in edits.items():
            for prefilter in (True, False):
                original = rule_editor._terms_of
                if not prefilter:
                    rule_editor._terms_of = lambda *_: None  # type: ignore[assignment]
                started = time.perf_counter()
                result = await editor.dry_run(
                    edit, days=7, county=None, township=None, village=None, page=1, per_page=20
                )
                took = time.perf_counter() - started
                rule_editor._terms_of = original
                print(
                    f"{name:38} {'filtered' if prefilter else 'all     '} {took * 1000:8.0f} ms  "
                    f"scanned {result.scanned}  gained {result.gained}  lost {result.lost}"
                )
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
