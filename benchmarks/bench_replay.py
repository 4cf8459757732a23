"""End-to-end throughput, latency and memory of the real pipeline (issue 2).

Measures, each phase in a fresh child process so that its peak resident memory (VmHWM) is its own:
1. `replay` throughput on N messages (default 100,000) on SQLite and on PostgreSQL, against a baseline
   in the same process: the same messages stored with one INSERT and commit each and no classification or
   workflow (what any logger costs), so the pipeline's own cost is visible;
2. `import` throughput of the same script on SQLite (history: stored, classified, flagged, no tickets);
3. per-message latency p50/p99 at a steady rate (default 200 messages/s for 20 s) through the live bot's
   Ingest on SQLite, wall clock, messages paced by the benchmark, and that process's peak memory: the bot's.

Usage: .venv/bin/python benchmarks/bench_replay.py [--messages 100000] [--rate 200] [--seconds 20] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import resource
import statistics
import subprocess
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
from bot.history import import_history  # noqa: E402
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
    started = time.perf_counter()
    count = 0
    for index, raw in enumerate(script.open(encoding="utf-8")):
        item = json.loads(raw)
        count += 1
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
    return count / elapsed


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


async def import_throughput(db_url: str, script: Path, config_path: Path) -> float:
    config = load_config(config_path)
    started = time.perf_counter()
    stored, duplicates = await import_history(script, config=config, db_url=db_url)
    elapsed = time.perf_counter() - started
    return (stored + duplicates) / elapsed


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_phase(args: argparse.Namespace) -> dict[str, object]:
    work, config_path = Path(args.work), ROOT / "config.example.toml"
    script = work / "script.jsonl"
    if args.phase == "sqlite":
        base = await baseline_inserts(f"sqlite+aiosqlite:///{work / 'base.db'}", script)
        rate, sent = await replay_throughput(
            f"sqlite+aiosqlite:///{work / 'replay.db'}", script, config_path, work / "media"
        )
        return {"replay_per_s": rate, "baseline_insert_per_s": base, "bot_messages": sent, "peak_rss_mb": peak_rss_mb()}
    if args.phase == "import":
        rate = await import_throughput(f"sqlite+aiosqlite:///{work / 'import.db'}", script, config_path)
        return {"import_per_s": rate, "peak_rss_mb": peak_rss_mb()}
    if args.phase == "postgres":
        import asyncpg

        admin = await asyncpg.connect(args.pg)
        names = [f"vw_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        base_url = args.pg.rsplit("/", 1)[0]
        try:
            base = await baseline_inserts(f"{base_url}/{names[0]}", script)
            rate, sent = await replay_throughput(f"{base_url}/{names[1]}", script, config_path, work / "media")
        finally:
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        return {"replay_per_s": rate, "baseline_insert_per_s": base, "peak_rss_mb": peak_rss_mb()}
    p50, p99, n = await steady_latency(
        f"sqlite+aiosqlite:///{work / 'latency.db'}", config_path, args.rate, args.seconds, work / "media"
    )
    return {"p50": p50, "p99": p99, "messages": n, "peak_rss_mb": peak_rss_mb()}


def in_child(args: argparse.Namespace, phase: str, work: Path) -> dict[str, object]:
    command = [sys.executable, __file__, "--phase", phase, "--work", str(work), "--pg", args.pg]
    command += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stderr[-4000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--phase", choices=["sqlite", "import", "postgres", "steady"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(asyncio.run(run_phase(args))))
        return
    config = load_config(ROOT / "config.example.toml")
    groups = [g for c in config.counties for t in c.townships for v in t.villages for g in v.groups]
    work = Path(tempfile.mkdtemp(prefix="vw-bench-"))
    make_script(work / "script.jsonl", args.messages, groups, datetime(2026, 9, 7, 8, 0, tzinfo=CHINA))
    print(f"messages: {args.messages}, machine: {os.cpu_count()} cores; work dir {work}")
    results: dict[str, object] = {}
    sqlite = results["sqlite"] = in_child(args, "sqlite", work)
    print(
        f"SQLite: replay {sqlite['replay_per_s']:,.0f} msg/s ({sqlite['bot_messages']} bot messages sent); "
        f"baseline bare INSERT {sqlite['baseline_insert_per_s']:,.0f} msg/s; "
        f"peak memory of that process {sqlite['peak_rss_mb']:.0f} MB"
    )
    imported = results["import"] = in_child(args, "import", work)
    print(f"SQLite: import {imported['import_per_s']:,.0f} msg/s; peak memory {imported['peak_rss_mb']:.0f} MB")
    if not args.skip_pg:
        pg = results["postgres"] = in_child(args, "postgres", work)
        print(
            f"PostgreSQL: replay {pg['replay_per_s']:,.0f} msg/s; baseline bare INSERT "
            f"{pg['baseline_insert_per_s']:,.0f} msg/s; peak memory {pg['peak_rss_mb']:.0f} MB"
        )
    steady = results["steady"] = in_child(args, "steady", work)
    print(
        f"steady {args.rate:.0f} msg/s on SQLite for {steady['messages']} messages: "
        f"p50 {steady['p50']:.2f} ms, p99 {steady['p99']:.2f} ms; "
        f"the live bot's peak memory {steady['peak_rss_mb']:.0f} MB"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
