"""Page latency of the dashboard against a generated city (see gen_city.py), over real HTTP.

Starts the app in this process on a loopback port, logs in as each benchmark role and fetches every
page ``--repeat`` times, reporting p50/p95/max in milliseconds per page and role.

    .venv/bin/python -m benchmarks.bench_dashboard --db sqlite:///var/bench/city.db
    .venv/bin/python -m benchmarks.bench_dashboard --db postgresql://postgres@127.0.0.1:5432/vw_bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.gen_city import PASSWORD
from dashboards.app import create_app
from dashboards.settings import DashboardSettings
from storage.engine import make_engine, make_session_factory

ROLES = ["bench_admin", "bench_county", "bench_town", "bench_cadre"]
DISCIPLINE_ONLY = ("digest", "flag")
"""Pages a cadre may not open (the patrol digest and its flags answer 403): not measured for the cadre."""


class _Idle:
    """Ports that are never called by the pages measured here."""

    async def broadcast(self, **_: Any) -> int:
        return 0

    async def available(self, ticket_id: int) -> list[str]:
        return []

    def classify(self, text: str, role: str | None) -> dict[str, Any]:
        return {"labels": [], "category": None, "severity": None, "matches": []}

    async def dry_run(self, **_: Any) -> list[dict[str, Any]]:
        return []

    def rules(self) -> list[dict[str, Any]]:
        return []

    async def set_shadow(self, rule_id: str, shadow: bool, *, actor: str) -> None:
        return None


def _pages(since: str, until: str) -> list[tuple[str, str]]:
    return [
        ("digest", "/digest"),
        ("digest p2", "/digest?cursor={cursor}"),
        ("digest unreviewed", "/digest?all=1&unreviewed=1"),
        ("digest label filter", "/digest?all=1&label=gambling"),
        ("digest 4 filters", "/digest?all=1&label=banquet&severity=high&verdict=none&since=" + since),
        ("digest no match", "/digest?all=1&label=clue&tier=review"),
        ("flag", "/flags/{flag}"),
        ("board", "/tickets"),
        ("board p20", "/tickets?page=20"),
        ("board filtered", "/tickets?status=accepted&category=water"),
        ("board text search", "/tickets?q=停水"),
        ("ticket", "/tickets/{ticket}"),
        ("stats 365d by township", f"/stats?since={since}&until={until}&dim=township&gran=month"),
        ("stats 365d by village", f"/stats?since={since}&until={until}&dim=village&gran=week"),
        ("stats 365d by category", f"/stats?since={since}&until={until}&dim=category&gran=month"),
        ("stats hot spots 12 weeks", f"/stats?since={since}&until={until}&weeks=12"),
    ]


async def _login(session: aiohttp.ClientSession, base: str, username: str) -> None:
    page = await (await session.get(f"{base}/login")).text()
    token = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert token
    resp = await session.post(
        f"{base}/login", data={"_csrf": token.group(1), "username": username, "password": PASSWORD, "next": "/tickets"}
    )
    assert resp.status == 200 and "/tickets" in str(resp.url), f"login failed for {username}"


async def _fill(session: aiohttp.ClientSession, base: str) -> dict[str, str]:
    """Ids to put in the page URLs: a flag and a ticket this role can see, a digest cursor."""
    digest = await (await session.get(f"{base}/digest?all=1")).text()
    flag = re.search(r'id="flag-(\d+)"', digest)
    cursor = re.search(r"cursor=(\d+\.\d+)", digest)
    board = await (await session.get(f"{base}/tickets")).text()
    ticket = re.search(r'href="/tickets/(\d+)"', board)
    return {
        "flag": flag.group(1) if flag else "1",
        "cursor": cursor.group(1) if cursor else "0.1",
        "ticket": ticket.group(1) if ticket else "1",
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    engine = make_engine(args.db)
    factory = make_session_factory(engine)
    idle = _Idle()
    app = create_app(
        session_factory=factory,
        settings=DashboardSettings(session_minutes=600),
        ticket_actions=idle,
        broadcaster=idle,
        rule_bench=idle,
        pipeline=idle,
        model_teacher=idle,
    )  # type: ignore[arg-type]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    today = datetime.now(UTC) + timedelta(hours=8)
    until, since = today.strftime("%Y-%m-%d"), (today - timedelta(days=365)).strftime("%Y-%m-%d")
    results = []
    try:
        for role in args.roles:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                await _login(session, base, role)
                ids = await _fill(session, base)
                for name, path in _pages(since, until):
                    if role == "bench_cadre" and name.split()[0] in DISCIPLINE_ONLY:
                        continue
                    url = base + path.format(**ids)
                    timings = []
                    for i in range(args.warmup + args.repeat):
                        t0 = time.perf_counter()
                        resp = await session.get(url)
                        body = await resp.read()
                        elapsed = (time.perf_counter() - t0) * 1000
                        assert resp.status == 200, (url, resp.status, body[:300])
                        if i >= args.warmup:
                            timings.append(elapsed)
                    timings.sort()
                    row = {
                        "role": role,
                        "page": name,
                        "n": len(timings),
                        "p50": statistics.median(timings),
                        "p95": timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))],
                        "max": timings[-1],
                        "bytes": len(body),
                    }
                    results.append(row)
                    print(
                        f"{role:13} {name:26} p50 {row['p50']:7.1f}  p95 {row['p95']:7.1f}  max {row['max']:7.1f} ms"
                        f"  {row['bytes'] // 1024} KiB",
                        file=sys.stderr,
                    )
    finally:
        await runner.cleanup()
        await engine.dispose()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--roles", nargs="+", default=ROLES)
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    worst = max(results, key=lambda r: r["p95"])
    print(f"worst p95: {worst['p95']:.1f} ms ({worst['role']}, {worst['page']})", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
