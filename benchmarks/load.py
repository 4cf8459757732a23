"""Load: concurrent dashboard users and group traffic against one running service on PostgreSQL.

A real `villagewatch run` in a child process (bot, scheduler, dashboard and the simulator as its WeChat,
one process, as `make run` starts it) on a database made by ``gen_city.py``. For ``--seconds``:

* ``--rate`` messages per second (default 200) posted open-loop to the simulator's API
  (``POST /api/send``, which answers once the message is committed: the time to its answer is the
  message's handling time: stored, classified, flagged, ticket workflow, replies queued), spread over the
  configured groups, a quarter of them demands;
* ``--users`` logged-in dashboard users (default 50), each fetching a random page of the patrol digest,
  ticket board, a ticket, a flag or the statistics, then pausing ``--think`` seconds (±50 %).

Reports p50/p95/p99/max of message handling and of pages (overall and per page), and every HTTP status
other than 200 (the aims: message p99 < 50 ms, page p95 < 300 ms, no HTTP 500).

    createdb -h 127.0.0.1 -U postgres vw_load
    .venv/bin/python -m benchmarks.gen_city --db postgresql://postgres@127.0.0.1:5432/vw_load --messages 3000000
    .venv/bin/python -m benchmarks.load --db postgresql://postgres@127.0.0.1:5432/vw_load --seconds 120
    .venv/bin/python -m benchmarks.load --db … --dashboards 2   # the bot alone, 2 `villagewatch dashboard`

Besides the latencies it reports the CPU time the bot process and the dashboard processes used during the
traffic, per message and per page: on a machine shared with other work the latencies say how long things
waited for a core, the CPU time what they would cost on cores of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_dashboard import _fill, _login  # noqa: E402
from benchmarks.soak import CHATS, CHATTER, DEMANDS, SENDERS, percentile, rss_kb  # noqa: E402
from tests.service.crash import VILLAGEWATCH, Service, free_port, write_config  # noqa: E402

ROLES = ("bench_admin", "bench_county", "bench_town", "bench_cadre")


def pages(since: str, until: str) -> list[tuple[str, str]]:
    return [
        ("digest", "/digest"),
        ("digest p2", "/digest?cursor={cursor}"),
        ("digest unreviewed", "/digest?all=1&unreviewed=1"),
        ("flag", "/flags/{flag}"),
        ("board", "/tickets"),
        ("board p20", "/tickets?page=20"),
        ("board filtered", "/tickets?status=accepted&category=water"),
        ("board text search", "/tickets?q=停水"),
        ("ticket", "/tickets/{ticket}"),
        ("stats 30d by township", "/stats?dim=township"),
        ("stats 365d by village", f"/stats?since={since}&until={until}&dim=village&gran=week"),
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50) * 1000, 1),
        "p95": round(percentile(values, 95) * 1000, 1),
        "p99": round(percentile(values, 99) * 1000, 1),
        "max": round(max(values, default=float("nan")) * 1000, 1),
    }


class Load:
    def __init__(self, base: str, sim: str, args: argparse.Namespace, *, chats: list[str]) -> None:
        self.chats = chats
        self.base = base
        self.sim = sim
        self.args = args
        self.stop_at = 0.0
        self.message_times: list[float] = []
        self.message_status: Counter[str] = Counter()
        self.page_times: dict[str, list[float]] = defaultdict(list)
        self.page_status: Counter[str] = Counter()
        self.page_errors: Counter[str] = Counter()
        self.logged_in = 0
        self.late_starts = 0
        """Messages whose send began more than 100 ms after their slot (the client fell behind)."""

    async def traffic(self) -> None:
        rng = random.Random(self.args.seed)
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=60)
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
            start = time.monotonic()
            n = 0
            while True:
                slot = start + n / self.args.rate
                if slot >= self.stop_at:
                    break
                delay = slot - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.1:
                    self.late_starts += 1
                chat = rng.choice(self.chats)
                body = f"{rng.choice(DEMANDS)}({n})" if rng.random() < 0.25 else rng.choice(CHATTER)
                data = {"id": f"load-{n:07d}", "sender": rng.choice(SENDERS), "chat": chat, "text": body}
                task = asyncio.create_task(self._post(client, data))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            await asyncio.gather(*tasks)

    async def _post(self, client: aiohttp.ClientSession, data: dict[str, str]) -> None:
        began = time.monotonic()
        try:
            async with client.post(self.sim + "api/send", data=data) as response:
                await response.read()
                status = str(response.status)
        except (TimeoutError, aiohttp.ClientError) as exc:
            status = type(exc).__name__
        self.message_status[status] += 1
        if status == "200":
            self.message_times.append(time.monotonic() - began)

    async def user(self, number: int, ready: asyncio.Event) -> None:
        rng = random.Random(self.args.seed * 1000 + number)
        role = ROLES[number % len(ROLES)]
        today = datetime.now(UTC) + timedelta(hours=8)
        until, since = today.strftime("%Y-%m-%d"), (today - timedelta(days=365)).strftime("%Y-%m-%d")
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=60)) as session:
            for attempt in range(20):  # login throttling may ask a burst of logins to wait
                try:
                    await _login(session, self.base, role)
                    break
                except AssertionError:
                    await asyncio.sleep(0.5 + attempt * 0.5)
            else:
                raise AssertionError(f"user {number} ({role}) could not log in")
            ids = await _fill(session, self.base)
            self.logged_in += 1
            await ready.wait()
            choices = pages(since, until)
            if role == "bench_cadre":  # a cadre has no patrol digest (403 by design): the board and stats
                choices = [(name, path) for name, path in choices if not name.startswith(("digest", "flag"))]
            while time.monotonic() < self.stop_at:
                name, path = rng.choice(choices)
                began = time.monotonic()
                try:
                    async with session.get(self.base + path.format(**ids)) as response:
                        await response.read()
                        status = str(response.status)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status = type(exc).__name__
                self.page_status[status] += 1
                if status != "200":
                    self.page_errors[f"{role} {name} {status}"] += 1
                if status == "200":
                    self.page_times[name].append(time.monotonic() - began)
                await asyncio.sleep(self.args.think * rng.uniform(0.5, 1.5))


async def city_groups(db_url: str, villages: int) -> dict[str, dict[str, dict[str, list[str]]]]:
    """county → township → village → groups, for the first ``villages`` villages of the generated city."""
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        rows = await conn.fetch(
            "SELECT county, township, village, name FROM groups WHERE village IN ("
            "SELECT DISTINCT village FROM groups WHERE village LIKE '村%' ORDER BY village LIMIT $1) "
            "ORDER BY county, township, village, name",
            villages,
        )
    finally:
        await conn.close()
    tree: dict[str, dict[str, dict[str, list[str]]]] = {}
    for county, township, village, name in rows:
        tree.setdefault(county, {}).setdefault(township, {}).setdefault(village, []).append(name)
    return tree


def counties_toml(tree: dict[str, dict[str, dict[str, list[str]]]]) -> str:
    out = []
    for county, townships in tree.items():
        out.append(f'\n[[counties]]\nname = "{county}"\n')
        for township, villages in townships.items():
            out.append(f'  [[counties.townships]]\n  name = "{township}"\n')
            for village, groups in villages.items():
                names = ", ".join(f'"{g}"' for g in groups)
                out.append(f'    [[counties.townships.villages]]\n    name = "{village}"\n    groups = [{names}]\n')
    return "".join(out)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    work = Path(args.work or tempfile.mkdtemp(prefix="vw-load-"))
    data_dir = work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    db_url = args.db.replace("postgresql://", "postgresql+asyncpg://", 1)
    config = work / "load.toml"
    sim_port, dash_port = free_port(), free_port()
    write_config(config, data_dir=data_dir, db_url=db_url, port=sim_port)
    tree = await city_groups(db_url, args.villages)
    chats = [
        g for townships in tree.values() for villages in townships.values() for gs in villages.values() for g in gs
    ]
    text = config.read_text(encoding="utf-8")
    # the generated city's groups belong to account bot0; the example county stays (the roster is on it)
    text = text.replace('name = "demo"', 'name = "bot0"', 1) + counties_toml(tree)
    with_dashboard = text.replace(
        "[dashboard]\nenabled = false",
        f'[dashboard]\nenabled = true\nport = {dash_port}\npublic_url = "http://127.0.0.1:{dash_port}"',
    )
    config.write_text(text if args.dashboards else with_dashboard, encoding="utf-8")
    dash_config = work / "dashboard.toml"
    dash_config.write_text(with_dashboard, encoding="utf-8")
    os.environ.setdefault("VILLAGEWATCH_SECRET", "load-benchmark-shared-session-secret-0123456789")
    service = Service(config, sim_port, work / "service.log")
    await service.start()
    dashboards: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(args.dashboards):
            dashboards.append(await start_dashboard(dash_config, dash_port, work / f"dashboard{n}.log"))
    except BaseException:
        service.stop()
        for proc in dashboards:
            proc.terminate()
        raise
    base = f"http://127.0.0.1:{dash_port}"
    load = Load(base, service.url, args, chats=chats or list(CHATS))
    rss: list[int] = []
    try:
        ready = asyncio.Event()
        load.stop_at = float("inf")
        users = [asyncio.create_task(load.user(n, ready)) for n in range(args.users)]
        while load.logged_in < args.users:  # every user logged in, its page ids found
            failed = [task for task in users if task.done()]
            if failed:
                await failed[0]  # raises why it ended
            await asyncio.sleep(0.2)
        began = time.monotonic()
        assert service.proc is not None
        cpu_before = cpu_seconds(service.proc.pid), sum(cpu_seconds(p.pid) for p in dashboards)
        load.stop_at = began + args.seconds
        ready.set()
        traffic = asyncio.create_task(load.traffic())
        while time.monotonic() < load.stop_at:
            if service.proc is not None:
                kb = rss_kb(service.proc.pid)
                if kb:
                    rss.append(kb)
            await asyncio.sleep(2)
        await traffic
        await asyncio.gather(*users)
        elapsed = time.monotonic() - began
        bot_cpu = cpu_seconds(service.proc.pid) - cpu_before[0]
        dash_cpu = sum(cpu_seconds(p.pid) for p in dashboards) - cpu_before[1]
    finally:
        service.stop()
        for proc in dashboards:
            proc.terminate()
            proc.wait()
    all_pages = [t for times in load.page_times.values() for t in times]
    result: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "seconds": round(elapsed, 1),
        "users": args.users,
        "dashboard": f"{args.dashboards} process(es) of its own" if args.dashboards else "in the bot's process",
        "load_average_before": load_before,
        "load_average_after": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "think_seconds": args.think,
        "rate_target_per_s": args.rate,
        "groups_with_traffic": len(chats),
        "messages_acknowledged": len(load.message_times),
        "rate_achieved_per_s": round(len(load.message_times) / elapsed, 1),
        "client_late_starts": load.late_starts,
        "message_ms": summary(load.message_times),
        "message_status": dict(load.message_status),
        "pages_ms": summary(all_pages),
        "pages_per_s": round(len(all_pages) / elapsed, 1),
        "page_status": dict(load.page_status),
        "http_500": load.page_status.get("500", 0) + load.message_status.get("500", 0),
        "page_errors": dict(load.page_errors),
        "per_page_ms": {name: summary(times) for name, times in sorted(load.page_times.items())},
        "service_rss_mb_max": round(max(rss, default=0) / 1024, 1),
        "bot_process_cpu_seconds": round(bot_cpu, 1),
        "bot_cpu_ms_per_message": round(1000 * bot_cpu / max(1, len(load.message_times)), 2),
        "dashboard_processes_cpu_seconds": round(dash_cpu, 1),
        "dashboard_cpu_ms_per_page": round(1000 * dash_cpu / max(1, len(all_pages)), 1) if args.dashboards else None,
        "work_dir": str(work),
    }
    return result


async def start_dashboard(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`villagewatch dashboard`: the dashboard in a process of its own; several share the port."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(VILLAGEWATCH), "dashboard", "--config", str(config)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 120
    while b"dashboard is running" not in log.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        await asyncio.sleep(0.2)
    return proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="postgresql://… of a database made by gen_city.py")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second (default 200)")
    parser.add_argument("--users", type=int, default=50, help="dashboard users (default 50)")
    parser.add_argument("--think", type=float, default=1.0, help="seconds between a user's pages (default 1)")
    parser.add_argument("--villages", type=int, default=100, help="city villages the traffic goes to (their groups)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--work", help="working folder (default: a new temporary one)")
    parser.add_argument("--out", help="write the result as JSON here too")
    parser.add_argument("--split", action="store_true", help="the dashboard in a process of its own (--dashboards 1)")
    parser.add_argument(
        "--dashboards",
        type=int,
        default=0,
        help="`villagewatch dashboard` processes sharing the dashboard's port (default 0: in the bot's process)",
    )
    args = parser.parse_args(argv)
    if args.split and not args.dashboards:
        args.dashboards = 1
    result = asyncio.run(run(args))
    out = json.dumps(result, ensure_ascii=False, indent=2)
    print(out)
    if args.out:
        Path(args.out).write_text(out + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
