"""End-to-end throughput, latency and memory of the real pipeline (issue 2).

Measures, in one process:
1. `replay` throughput on N messages (default 100,000) on SQLite and on PostgreSQL, against a baseline
   in the same run: the same messages stored with one INSERT each and no classification or workflow
   (what any logger costs), so the pipeline's own cost is visible;
2. per-message latency p50/p99 at a steady rate (default 200 messages/s for 20 s) through Ingest on SQLite,
   wall clock, messages paced by the benchmark;
3. resident memory (RSS) after the runs.

Usage: .venv/bin/python benchmarks/bench_replay.py [--messages 100000] [--rate 200] [--seconds 20] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.clock import CHINA, SystemClock  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.messages import IncomingMessage, MessageKind  # noqa: E402
from bot.replay import run_replay  # noqa: E402
from bot.services import build_services  # noqa: E402
from storage.engine import make_engine, make_session_factory  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.repos import messages as messages_repo  # noqa: E402

CHAT = [
    "大家早上好",
    "收到",
    "好的谢谢",
    "今天天气不错",
    "[图片]",
    "哈哈哈",
    "明天赶集吗",
    "孩子放学了没",
    "晚上一起吃饭",
    "这个视频挺有意思",
    "谁家的狗跑出来了",
    "今年稻谷收成还行",
    "👍👍👍",
    "辛苦了",
]
DEMANDS = [
    "{v}张湾组又停水了,什么时候能来水",
    "路灯坏了一个多星期了有人管没有",
    "村口那段路全是坑,电动车都摔了",
    "垃圾堆在桥头好几天没人清理,臭得很",
    "我家低保的事情问了好几次都没答复",
    "河里有人偷偷排污水,鱼都死了",
]
FLAGS = ["下周六犬子结婚,略备薄酒,敬请光临", "家人们帮我砍一刀,差一点就提现了", "祠堂晚上有局,三缺一速来"]


def make_script(path: Path, count: int, groups: list[str], start: datetime) -> None:
    rng = random.Random(7)
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            at = start + timedelta(seconds=index * 3)
            group = rng.choice(groups)
            roll = rng.random()
            if roll < 0.90:
                text = rng.choice(CHAT)
            elif roll < 0.97:
                text = rng.choice(DEMANDS).format(v=group[:3]) + f" ({index})"
            else:
                text = rng.choice(FLAGS)
            line = {
                "kind": "message",
                "at": at.isoformat(),
                "group": group,
                "sender": f"村民{rng.randrange(400)}",
                "text": text,
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


async def baseline_inserts(db_url: str, script: Path) -> float:
    """Store the same lines with one INSERT each, no classification, no workflow."""
    engine = make_engine(db_url)
    await upgrade(engine)
    sessions = make_session_factory(engine)
    lines = [json.loads(raw) for raw in script.read_text(encoding="utf-8").splitlines()]
    started = time.perf_counter()
    for index, item in enumerate(lines):
        async with sessions() as session:
            await messages_repo.insert_message(
                session,
                values={
                    "account": "demo",
                    "platform_id": f"base-{index}",
                    "at": datetime.fromisoformat(item["at"]),
                    "group_name": item["group"],
                    "sender_platform_id": item["sender"],
                    "sender_name": item["sender"],
                    "text": item["text"],
                },
            )
            await session.commit()
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return len(lines) / elapsed


async def replay_throughput(db_url: str, script: Path, config_path: Path, media: Path) -> tuple[float, int]:
    config = load_config(config_path)
    sink = io.StringIO()
    started = time.perf_counter()
    lines = await run_replay(script, config=config, db_url=db_url, transcript=sink, media_root=media)
    elapsed = time.perf_counter() - started
    count = sum(1 for _ in script.open(encoding="utf-8"))
    return count / elapsed, len(lines)


async def steady_latency(
    db_url: str, config_path: Path, rate: float, seconds: float, media: Path
) -> tuple[float, float, int]:
    config = load_config(config_path)
    services = await build_services(config, clock=SystemClock(), db_url=db_url, media_root=media)
    rng = random.Random(11)
    groups = [g for c in config.counties for t in c.townships for v in t.villages for g in v.groups]
    latencies: list[float] = []
    total = int(rate * seconds)
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for index in range(total):
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        next_at += interval
        roll = rng.random()
        text = (
            rng.choice(CHAT)
            if roll < 0.9
            else (rng.choice(DEMANDS).format(v="石桥村") if roll < 0.97 else rng.choice(FLAGS))
        )
        group = rng.choice(groups)
        message = IncomingMessage(
            platform_id=f"lat-{uuid.uuid4().hex}",
            account=config.accounts[0].name,
            at=datetime.now(CHINA),
            kind=MessageKind.TEXT,
            text=text + f" {index}",
            sender_id=f"村民{rng.randrange(300)}",
            sender_name=f"村民{rng.randrange(300)}",
            group_id=group,
            group_topic=group,
        )
        started = time.perf_counter()
        await services.ingest.handle(message)
        latencies.append((time.perf_counter() - started) * 1000)
    await services.close()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return p50, p99, len(latencies)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    config_path = ROOT / "config.example.toml"
    config = load_config(config_path)
    groups = [g for c in config.counties for t in c.townships for v in t.villages for g in v.groups]
    work = Path(tempfile.mkdtemp(prefix="vw-bench-"))
    script = work / "script.jsonl"
    make_script(script, args.messages, groups, datetime(2026, 9, 7, 8, 0, tzinfo=CHINA))
    print(f"messages: {args.messages}, machine: 2 cores; work dir {work}")

    results: dict[str, object] = {}
    sqlite_base = await baseline_inserts(f"sqlite+aiosqlite:///{work / 'base.db'}", script)
    sqlite_rate, sent = await replay_throughput(
        f"sqlite+aiosqlite:///{work / 'replay.db'}", script, config_path, work / "media"
    )
    print(
        f"SQLite: replay {sqlite_rate:,.0f} msg/s ({sent} bot messages sent); "
        f"baseline bare INSERT {sqlite_base:,.0f} msg/s"
    )
    results["sqlite"] = {"replay_per_s": sqlite_rate, "baseline_insert_per_s": sqlite_base, "bot_messages": sent}

    if not args.skip_pg:
        import asyncpg

        admin = await asyncpg.connect(args.pg)
        names = [f"vw_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        base = args.pg.rsplit("/", 1)[0]
        try:
            pg_base = await baseline_inserts(f"{base}/{names[0]}", script)
            pg_rate, sent = await replay_throughput(f"{base}/{names[1]}", script, config_path, work / "media")
            print(f"PostgreSQL: replay {pg_rate:,.0f} msg/s; baseline bare INSERT {pg_base:,.0f} msg/s")
            results["postgres"] = {"replay_per_s": pg_rate, "baseline_insert_per_s": pg_base}
        finally:
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()

    p50, p99, n = await steady_latency(
        f"sqlite+aiosqlite:///{work / 'latency.db'}", config_path, args.rate, args.seconds, work / "media"
    )
    print(f"steady {args.rate:.0f} msg/s on SQLite for {n} messages: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(f"peak resident memory: {rss_mb():.0f} MB")
    results["latency_ms"] = {"p50": p50, "p99": p99, "messages": n}
    results["rss_mb"] = rss_mb()
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
