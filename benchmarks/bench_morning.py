"""A township's morning at city scale, in a real browser: open the digest, judge 50 flags, review the overdue
tickets, answer one — counting clicks per verdict and timing every page (server and browser).

The city comes from gen_city.py (on PostgreSQL); the township staff login is ``bench_town`` (the first
township). The dashboard runs in this process with the bot's real staff services (ticket actions through
the workflow and the one notifier); a middleware measures each request's server time. Debian's headless
Chromium (playwright) is the staff member's phone-less desk: 1280 × 900.

    createdb -h 127.0.0.1 -U postgres vw_morning
    .venv/bin/python -m benchmarks.gen_city --db postgresql://postgres@127.0.0.1:5432/vw_morning --messages 3000000
    .venv/bin/python -m benchmarks.bench_morning --db postgresql://postgres@127.0.0.1:5432/vw_morning --json out.json

Aims (issue 13): at most one click per verdict, no page over 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.gen_city import PASSWORD
from benchmarks.load import city_groups

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
USER = "bench_town"
VERDICTS = ("confirmed", "false_alarm", "follow_up")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NAVIGATION = """() => { const n = performance.getEntriesByType('navigation').pop();
  return {load: n.loadEventEnd - n.startTime, ttfb: n.responseStart - n.startTime}; }"""


@dataclass
class Step:
    name: str
    clicks: int
    server_ms: float
    """Every request the step made (a verdict: the POST and the page it redirects to), summed."""
    browser_ms: float
    """Navigation start to the load event, as Chromium measured it (includes the redirect)."""
    requests: list[tuple[str, str, float]] = field(default_factory=list)


@dataclass
class Morning:
    steps: list[Step] = field(default_factory=list)
    requests: list[tuple[str, str, float]] = field(default_factory=list)
    slow_sql: list[tuple[float, str]] = field(default_factory=list)
    sql_ms: float = 0.0
    sql_count: int = 0
    per_request_sql: list[tuple[int, float]] = field(default_factory=list)
    """Statements slower than --slow-sql ms: (ms, SQL), to EXPLAIN ANALYZE."""

    def watch_sql(self, engine: Any, threshold_ms: float) -> None:
        from sqlalchemy import event

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            conn.info.setdefault("began", []).append(time.perf_counter())

        @event.listens_for(engine.sync_engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            ms = (time.perf_counter() - conn.info["began"].pop()) * 1000
            self.sql_ms += ms
            self.sql_count += 1
            if ms >= threshold_ms:
                self.slow_sql.append((ms, f"{statement} -- {params!r}"[:1500]))

    @web.middleware
    async def timing(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        began, sql_ms, sql_count = time.perf_counter(), self.sql_ms, self.sql_count
        try:
            return await handler(request)
        finally:
            self.requests.append((request.method, request.path_qs, (time.perf_counter() - began) * 1000))
            self.per_request_sql.append((self.sql_count - sql_count, self.sql_ms - sql_ms))


async def _config(db_url: str, work: Path) -> Any:
    from bot.config import Config

    tree = await city_groups(db_url, 40)
    counties = [
        {
            "name": county,
            "townships": [
                {"name": township, "villages": [{"name": v, "groups": gs} for v, gs in villages.items()]}
                for township, villages in townships.items()
            ],
        }
        for county, townships in tree.items()
    ]
    return Config.model_validate(
        {
            "data_dir": work / "data",
            "rules_dir": ROOT / "rules",
            "accounts": [{"name": "bot0"}],
            "dashboard": {"public_url": "http://127.0.0.1:8080"},
            "counties": counties,
        }
    )


async def _serve(db_url: str, morning: Morning, work: Path, slow_sql_ms: float) -> tuple[str, Any, web.AppRunner]:
    from bot.clock import SystemClock
    from bot.services import build_services
    from bot.staff import StaffBroadcaster, StaffPipeline, StaffRuleBench, StaffTicketActions
    from bot.teaching import StaffModelTeacher
    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings

    services = await build_services(
        await _config(db_url, work), clock=SystemClock(), db_url=db_url, media_root=work / "media", migrate=False
    )
    app = create_app(
        session_factory=services.sessions,
        settings=DashboardSettings(session_minutes=600, media_dir=services.media.root),
        ticket_actions=StaffTicketActions(services.workflow.actions),
        broadcaster=StaffBroadcaster(services),
        rule_bench=StaffRuleBench(services),
        pipeline=StaffPipeline(services),
        model_teacher=StaffModelTeacher(services),
    )
    app.middlewares.insert(0, morning.timing)
    if slow_sql_ms:
        morning.watch_sql(services.engine, slow_sql_ms)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}", services, runner


async def _step(morning: Morning, page: Any, name: str, actions: list[Callable[[], Awaitable[Any]]]) -> Step:
    """Run the clicks of one step (each a navigation), then read Chromium's timing of the page it ended on."""
    first = len(morning.requests)
    for action in actions:
        async with page.expect_navigation():
            await action()
    await page.wait_for_load_state("load")
    nav = await page.evaluate(NAVIGATION)
    requests = [r for r in morning.requests[first:] if not r[1].startswith("/static/")]
    step = Step(name, len(actions), sum(ms for _, _, ms in requests), nav["load"], requests)
    morning.steps.append(step)
    print(
        f"{name:34} clicks {step.clicks}  server {step.server_ms:7.1f} ms  browser {step.browser_ms:7.1f} ms",
        file=sys.stderr,
    )
    return step


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    db_url = args.db.replace("postgresql://", "postgresql+asyncpg://", 1)
    morning = Morning()
    work = Path(tempfile.mkdtemp(prefix="vw-morning-"))
    base, services, runner = await _serve(db_url, morning, work, args.slow_sql)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
            await page.goto(base + "/login")
            await page.fill("input[name=username]", USER)
            await page.fill("input[name=password]", PASSWORD)
            await _step(morning, page, "login → home", [lambda: page.click("button[type=submit]")])
            await _step(morning, page, "digest (网巡)", [lambda: page.click("header .nav a[href='/digest']")])
            await _step(morning, page, "digest, unreviewed only", [lambda: page.click("main a:has-text('只看未核查')")])
            for n in range(args.flags):
                verdict = VERDICTS[n % len(VERDICTS)]
                button = page.locator("form.verdict").first.locator(f"button[value={verdict}]")
                if not await button.count():
                    print(f"only {n} flags to judge in scope", file=sys.stderr)
                    break
                await _step(morning, page, f"verdict {n + 1} ({verdict})", [button.click])
            await _step(morning, page, "ticket board (工单)", [lambda: page.click("header .nav a[href='/tickets']")])
            await _step(morning, page, "待我处理 (overdue first)", [lambda: page.click("#view-todo")])
            overdue = page.locator("tr.ticket.overdue a[href^='/tickets/']").first
            await _step(morning, page, "an overdue ticket", [overdue.click])
            await page.fill("form[action$='/progress'] textarea[name=text]", "已督促村里今天内处理，明天复查。")
            await _step(
                morning,
                page,
                "answer it (办理进展)",
                [lambda: page.click("form[action$='/progress'] button[type=submit]")],
            )
            await browser.close()
    finally:
        await runner.cleanup()
        await services.close()
    verdicts = [s for s in morning.steps if s.name.startswith("verdict")]
    pages = [max(s.server_ms, s.browser_ms) for s in morning.steps]
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "db": args.db.rsplit("@", 1)[-1],
        "verdicts": len(verdicts),
        "clicks_per_verdict": max((s.clicks for s in verdicts), default=0),
        "verdict_server_ms": _summary([s.server_ms for s in verdicts]),
        "verdict_browser_ms": _summary([s.browser_ms for s in verdicts]),
        "steps": [
            {"name": s.name, "clicks": s.clicks, "server_ms": round(s.server_ms, 1), "browser_ms": round(s.browser_ms)}
            for s in morning.steps
        ],
        "pages_over_300ms": [s.name for s in morning.steps if max(s.server_ms, s.browser_ms) > 300],
        "slowest_ms": round(max(pages, default=0), 1),
        "total_clicks": sum(s.clicks for s in morning.steps),
        "requests": [
            {"method": m, "path": p, "ms": round(ms, 1), "statements": n, "sql_ms": round(sql, 1)}
            for (m, p, ms), (n, sql) in zip(morning.requests, morning.per_request_sql, strict=True)
            if not p.startswith("/static/")
        ],
        "slow_sql": [{"ms": round(ms, 1), "sql": sql} for ms, sql in sorted(morning.slow_sql, reverse=True)[:40]],
    }
    return result


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
        "max": round(ordered[-1], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="postgresql://…/dbname generated by benchmarks.gen_city")
    parser.add_argument("--flags", type=int, default=50, help="verdicts to give")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--slow-sql", type=float, default=0, help="record statements slower than this (ms)")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if not result["pages_over_300ms"] and result["clicks_per_verdict"] <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
