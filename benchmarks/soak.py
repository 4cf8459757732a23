"""Soak: live traffic through the running service for a long time, kill -9 every few minutes, restart.

A real `villagewatch run` (the simulator as its WeChat, no pacing) in a child process; client workers post
messages to the simulator's API (``POST /api/send`` with an id, sent again with the same id until answered
200, as the crash tests do) at a steady total rate; every ``--kill-every`` seconds (±50 %, random) the
service is killed -9 and started again at once. RSS of the service is sampled every few seconds.

At the end (posting stopped, the service running until every reply went out), it checks:
- 0 lost: every message the simulator acknowledged is stored, and classified (none kept raw);
- 0 doubled: every message stored once, every outbox key queued once and shown by the simulator once,
  no message opened or joined two tickets;
- memory flat: RSS at the same age of each process lifetime, first lifetimes against last ones.

    nice -n 10 .venv/bin/python -m benchmarks.soak --minutes 60 --out var/soak.json
    nice -n 10 .venv/bin/python -m benchmarks.soak --minutes 20 --pg postgresql://postgres@127.0.0.1:5432/postgres

``--sweep`` first runs the crash tests with ``VILLAGEWATCH_CRASH_SWEEP=1``: the many kill points (live,
replay, import; SQLite and PostgreSQL) that `make test` leaves out to stay fast.

Exit status 1 when anything was lost or doubled (or the sweep failed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.engine import make_engine  # noqa: E402
from tests.service.crash import GROUPS, Service, free_port, settled, write_config  # noqa: E402

CHATS = (*GROUPS, "新河村监督服务群")
SENDERS = ("高某林", "村民甲", "村民乙", "村民丙", "村民丁", "王大妈")
DEMANDS = (
    "村东头自来水停了三天了,请尽快处理",
    "路灯坏了一个多月,晚上走路很危险",
    "垃圾好几天没人清运了,臭得很",
    "村口的桥栏杆断了,孩子上学不安全",
)
CHATTER = (
    "大家早上好",
    "今天天气不错",
    "收到",
    "本周六家父七十大寿,摆几桌,欢迎大家来",
    "明天几点开会?",
    "好的,谢谢书记",
    "晚上有广场舞,大家来跳",
)
RSS_EVERY = 5.0
"""Seconds between RSS samples."""


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Lifetime:
    start: int
    started_at: float
    startup_seconds: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since this process started, RSS kB)."""
    ended_by: str = ""


@dataclass
class Soak:
    service: Service
    rate: float
    demand_share: float
    accepted: list[str] = field(default_factory=list)
    attempts: int = 0
    latencies: list[float] = field(default_factory=list)
    lifetimes: list[Lifetime] = field(default_factory=list)
    stopping: bool = False
    _next_slot: float = 0.0

    async def _slot(self) -> None:
        """A global pace: one message every 1/rate seconds across all workers."""
        now = time.monotonic()
        self._next_slot = max(self._next_slot + 1.0 / self.rate, now)
        await asyncio.sleep(self._next_slot - now)

    async def worker(self, chat: str, seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            while not self.stopping:
                n += 1
                message_id = f"{chat[:3]}-{n:06d}"
                if rng.random() < self.demand_share:
                    body = f"{rng.choice(DEMANDS)}({message_id})"
                else:
                    body = rng.choice(CHATTER)
                data = {"id": message_id, "sender": rng.choice(SENDERS), "chat": chat, "text": body}
                await self._slot()
                while True:  # the same message until acknowledged: the client side of exactly once
                    self.attempts += 1
                    began = time.monotonic()
                    try:
                        async with client.post(self.service.url + "api/send", data=data) as response:
                            ok = response.status == 200
                    except (TimeoutError, aiohttp.ClientError):
                        ok = False
                    if ok:
                        self.latencies.append(time.monotonic() - began)
                        self.accepted.append(message_id)
                        break
                    await asyncio.sleep(0.2)  # down (killed, restarting): try again

    async def sampler(self) -> None:
        while not self.stopping:
            proc, life = self.service.proc, self.lifetimes[-1] if self.lifetimes else None
            if proc is not None and life is not None:
                kb = rss_kb(proc.pid)
                if kb is not None:
                    life.samples.append((time.monotonic() - life.started_at, kb))
            await asyncio.sleep(RSS_EVERY)

    async def start(self) -> None:
        began = time.monotonic()
        await self.service.start()
        self.lifetimes.append(Lifetime(self.service.starts, began, time.monotonic() - began))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def checks(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    queries = {
        "messages": "SELECT count(*) FROM messages",
        "unclassified": (
            "SELECT count(*) FROM messages m LEFT JOIN classifications c ON c.message_id = m.id "
            "WHERE c.message_id IS NULL"
        ),
        "kept_raw": "SELECT count(*) FROM messages WHERE kept_raw",
        "tickets": "SELECT count(*) FROM tickets",
        "messages_in_two_tickets": (
            "SELECT count(*) FROM (SELECT message_id FROM ticket_messages GROUP BY message_id "
            "HAVING count(DISTINCT ticket_id) > 1) AS t"
        ),
        "reporter_rows_doubled": (
            "SELECT count(*) FROM (SELECT message_id FROM ticket_reporters WHERE message_id IS NOT NULL "
            "GROUP BY message_id HAVING count(*) > 1) AS t"
        ),
    }
    try:
        async with engine.connect() as conn:
            return {name: int((await conn.execute(text(sql))).scalar_one()) for name, sql in queries.items()}
    finally:
        await engine.dispose()


def memory_summary(lifetimes: list[Lifetime], age: float) -> dict[str, Any]:
    """RSS (MB) of each lifetime at about ``age`` seconds, and at its end; first third against last third."""
    at_age: list[float] = []
    at_end: list[float] = []
    for life in lifetimes:
        near = [kb for t, kb in life.samples if t >= age]
        if near:
            at_age.append(near[0] / 1024)
        if life.samples:
            at_end.append(life.samples[-1][1] / 1024)
    third = max(1, len(at_age) // 3)
    first, last = at_age[:third], at_age[-third:]
    return {
        "age_seconds": age,
        "rss_mb_at_age": [round(x, 1) for x in at_age],
        "rss_mb_at_end_of_lifetime": [round(x, 1) for x in at_end],
        "first_third_mean_mb": round(statistics.mean(first), 1) if first else None,
        "last_third_mean_mb": round(statistics.mean(last), 1) if last else None,
        "max_mb": round(max((kb for life in lifetimes for _, kb in life.samples), default=0) / 1024, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work or tempfile.mkdtemp(prefix="vw-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    data_dir.mkdir(exist_ok=True)
    pg_db: str | None = None
    if args.pg:
        import asyncpg

        pg_db = f"vw_soak_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(args.pg.replace("postgresql+asyncpg://", "postgresql://", 1))
        await admin.execute(f'CREATE DATABASE "{pg_db}"')
        await admin.close()
        db_url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{pg_db}"
    else:
        db_url = f"sqlite+aiosqlite:///{work / 'soak.db'}"
    config = work / "soak.toml"
    port = free_port()
    write_config(config, data_dir=data_dir, db_url=db_url, port=port)
    service = Service(config, port, work / "service.log", start_timeout=args.start_timeout)
    soak = Soak(service, rate=args.rate, demand_share=args.demand_share)
    rng = random.Random(args.seed)
    kills = 0
    began = time.monotonic()
    deadline = began + args.minutes * 60
    await soak.start()
    tasks = [asyncio.create_task(soak.worker(chat, args.seed + i)) for i, chat in enumerate(CHATS)]
    tasks.append(asyncio.create_task(soak.sampler()))
    try:
        while True:
            wait = args.kill_every * rng.uniform(0.5, 1.5)
            remaining = deadline - time.monotonic()
            if remaining <= wait:
                await asyncio.sleep(max(0.0, remaining))
                break
            await asyncio.sleep(wait)
            service.kill()
            kills += 1
            soak.lifetimes[-1].ended_by = "kill -9"
            print(
                f"[{(time.monotonic() - began) / 60:5.1f} min] kill -9 #{kills}; accepted {len(soak.accepted)}",
                flush=True,
            )
            await soak.start()
        soak.stopping = True
        await asyncio.gather(*tasks)
        result = await settled(db_url, data_dir, timeout=300)
        counts = await checks(db_url)
        soak.lifetimes[-1].ended_by = "end"
    finally:
        soak.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        service.stop()
    elapsed = time.monotonic() - began
    accepted = set(soak.accepted)
    lost = accepted - set(result.stored)
    doubled_messages = sum(1 for n in result.stored.values() if n > 1)
    doubled_outbox = sum(1 for n in result.outbox.values() if n > 1)
    doubled_delivered = sum(1 for n in result.delivered.values() if n > 1)
    never_delivered = sum(1 for key in result.outbox if key not in result.delivered)
    summary: dict[str, Any] = {
        "database": "postgresql" if args.pg else "sqlite",
        "minutes": round(elapsed / 60, 1),
        "rate_target_per_s": args.rate,
        "rate_achieved_per_s": round(len(soak.accepted) / elapsed, 2),
        "kills": kills,
        "starts": service.starts,
        "startup_seconds": [round(life.startup_seconds, 2) for life in soak.lifetimes],
        "accepted": len(accepted),
        "post_attempts": soak.attempts,
        "ack_latency_ms_p50": round(percentile(soak.latencies, 50) * 1000, 1),
        "ack_latency_ms_p99": round(percentile(soak.latencies, 99) * 1000, 1),
        "lost": len(lost),
        "stored_not_acknowledged": len(set(result.stored) - accepted),
        "doubled_messages": doubled_messages,
        "outbox_rows": sum(result.outbox.values()),
        "outbox_unsent": result.outbox_unsent,
        "doubled_outbox_keys": doubled_outbox,
        "doubled_deliveries": doubled_delivered,
        "replies_never_shown": never_delivered,
        "jobs_unfinished": result.jobs_unfinished,
        **counts,
        "memory": memory_summary(soak.lifetimes, age=min(60.0, args.kill_every / 2)),
        "work_dir": str(work),
    }
    if pg_db is not None and not args.keep:
        import asyncpg

        admin = await asyncpg.connect(args.pg.replace("postgresql+asyncpg://", "postgresql://", 1))
        await admin.execute(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)')
        await admin.close()
    return summary


SWEEP_TESTS = (
    "tests/service/test_crash.py",
    "tests/service/test_replay_crash.py",
    "tests/service/test_import_crash.py",
)


def sweep() -> dict[str, Any]:
    """The crash tests at every kill point; returns whether they passed and how long they took."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *SWEEP_TESTS],
        cwd=ROOT,
        env={**os.environ, "VILLAGEWATCH_CRASH_SWEEP": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    last = (done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode != 0:
        print(done.stdout[-5000:], done.stderr[-2000:], file=sys.stderr)
    return {"passed": done.returncode == 0, "summary": last, "seconds": round(time.monotonic() - began, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="how long traffic flows (default 60)")
    parser.add_argument("--kill-every", type=float, default=180.0, help="mean seconds between kills (default 180)")
    parser.add_argument("--rate", type=float, default=5.0, help="messages per second in total (default 5)")
    parser.add_argument("--demand-share", type=float, default=0.25, help="share of messages that are demands")
    parser.add_argument("--pg", help="PostgreSQL admin DSN: a fresh database is made there (else SQLite)")
    parser.add_argument("--work", help="working folder (default: a new temporary one)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument(
        "--start-timeout", type=float, default=300.0, help="seconds a restart may take before the soak gives up"
    )
    parser.add_argument("--out", help="write the summary as JSON here too")
    parser.add_argument("--sweep", action="store_true", help="first run the crash tests at every kill point")
    args = parser.parse_args(argv)
    swept = sweep() if args.sweep else None
    summary = asyncio.run(run(args)) if args.minutes > 0 else {}
    if swept is not None:
        summary["crash_sweep"] = swept
    text_out = json.dumps(summary, ensure_ascii=False, indent=2)
    print(text_out)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text_out + "\n", encoding="utf-8")
    bad = [
        "lost",
        "doubled_messages",
        "doubled_outbox_keys",
        "doubled_deliveries",
        "replies_never_shown",
        "outbox_unsent",
        "unclassified",
        "kept_raw",
        "messages_in_two_tickets",
        "reporter_rows_doubled",
        "jobs_unfinished",
    ]
    failed = swept is not None and not swept["passed"]
    return 1 if failed or any(summary.get(name) for name in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
