"""Ticket workflow benchmarks (issue 4).

1. The workflow's share of the end-to-end replay time: a replay-style run of N messages (default 5,000;
   6% demands that open or merge tickets, cadres' progress and 办结 replies, ratings, chat) through the real
   pipeline, timing the time spent inside ``TicketWorkflow.handle`` and in the scheduled ticket jobs.
2. The daily check (reminders + overdue escalation) at city scale: 30,000 open tickets over 2,500 villages
   in 100 townships, deadlines spread over the coming weeks (about 1 in 12 overdue, the next two working
   days' due for a reminder); the run is timed, then run again to show it acts once.

Usage: .venv/bin/python benchmarks/bench_tickets.py [--messages 5000] [--tickets 30000] [--pg URL]
(--pg postgresql://postgres@127.0.0.1:5432/DBNAME runs both parts on PostgreSQL as well; the database must exist)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402
from sqlmodel import SQLModel, func, select  # noqa: E402

from bot.clock import CHINA, SimulatedClock  # noqa: E402
from bot.config import Config  # noqa: E402
from bot.directory import RosterEntry  # noqa: E402
from bot.ingest import Inbound  # noqa: E402
from bot.messages import IncomingMessage, MessageKind  # noqa: E402
from bot.services import build_services  # noqa: E402
from bot.tickets import calendar  # noqa: E402
from storage.engine import make_engine, make_session_factory  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Member, Outbox, Ticket, TicketEvent  # noqa: E402

START = datetime(2026, 9, 7, 7, 0, tzinfo=CHINA)
CHAT = ["大家早上好", "收到", "好的谢谢", "今天天气不错", "明天赶集吗", "辛苦了", "今年稻谷收成还行", "👍👍"]
DEMANDS = [
    "{g}组停水三天了,什么时候来水?",
    "{g}组路灯坏了一个多星期了有人管没有",
    "{g}组村口那段路全是坑,电动车都摔了",
    "{g}组垃圾堆在桥头好几天没人清理,臭得很",
]
PLACES = ["张湾", "李庄", "王岗", "三里", "河口", "东山"]


def city_config(data_dir: Path, villages: int, per_township: int) -> Config:
    townships = []
    for t in range(max(1, villages // per_township)):
        names = [f"镇{t}村{v}" for v in range(per_township)]
        townships.append({"name": f"镇{t}", "villages": [{"name": n, "groups": [f"{n}群"]} for n in names]})
    return Config.model_validate(
        {
            "data_dir": data_dir,
            "rules_dir": ROOT / "rules",
            "accounts": [{"name": "demo"}],
            "counties": [{"name": "县", "townships": townships}],
        }
    )


async def workflow_share(db_url: str, messages: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    config = city_config(tmp / "data", villages=20, per_township=10)
    clock = SimulatedClock(START)
    services = await build_services(config, clock=clock, db_url=db_url, media_root=tmp / "media")
    villages = [(v.name, t.name, v.groups[0]) for c in config.counties for t in c.townships for v in t.villages]
    async with services.sessions() as session:
        for name, township, group in villages:
            await services.directory.add_member(
                session, RosterEntry(f"{name}书记", "cadre", name, township, "县", group, is_head=True)
            )
        for t in config.counties[0].townships:
            await services.directory.add_member(session, RosterEntry(f"{t.name}干事", "staff", "", t.name, "县"))
        await session.commit()
    workflow = services.workflow
    spent = [0.0]

    class Timed:
        async def handle(self, session: Any, inbound: Inbound) -> None:
            started = time.perf_counter()
            try:
                await workflow.handle(session, inbound)
            finally:
                spent[0] += time.perf_counter() - started

    services.ingest._workflow = Timed()  # the benchmark's only reach inside: time the workflow's share
    jobs_spent = 0.0
    rng = random.Random(4)
    opened: list[tuple[int, str]] = []
    started = time.perf_counter()
    for index in range(messages):
        at = START + timedelta(seconds=index * 40)
        clock.advance_to(at)
        tick = time.perf_counter()
        await services.scheduler.run_due(at)
        jobs_spent += time.perf_counter() - tick
        name, _township, group = rng.choice(villages)
        roll = rng.random()
        sender = f"{name}村民{rng.randrange(50)}"
        if roll < 0.06:
            text = rng.choice(DEMANDS).format(g=rng.choice(PLACES))
        elif roll < 0.09 and opened:
            ticket_id, group = rng.choice(opened)
            sender = f"{group[:-1]}书记"
            text = f"#{ticket_id} " + rng.choice(["受理", "已联系师傅,正在处理", "办结 已处理好"])
        else:
            text = rng.choice(CHAT)
        await services.ingest.handle(
            IncomingMessage(
                platform_id=f"b{index}",
                account="demo",
                at=at,
                kind=MessageKind.TEXT,
                text=text,
                sender_id=sender,
                sender_name=sender,
                group_id=group,
                group_topic=group,
            )
        )
        if roll < 0.06 and index % 3 == 0:
            async with services.sessions() as session:
                newest = (await session.exec(select(func.max(Ticket.id)))).one()
            if newest:
                opened.append((int(newest), group))
    total = time.perf_counter() - started
    async with services.sessions() as session:
        tickets = int((await session.exec(select(func.count()).select_from(Ticket))).one())
    await services.close()
    return {
        "messages": messages,
        "tickets": tickets,
        "total_s": round(total, 2),
        "workflow_s": round(spent[0], 2),
        "jobs_s": round(jobs_spent, 2),
        "workflow_share": f"{100 * spent[0] / total:.1f}%",
        "jobs_share": f"{100 * jobs_spent / total:.1f}%",
        "simulated_days": round(messages * 40 / 86400, 1),
    }


async def seed_city(db_url: str, tickets: int, config: Config, now: datetime) -> None:
    engine = make_engine(db_url)
    await upgrade(engine)
    if engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    villages = [(v.name, t.name) for c in config.counties for t in c.townships for v in t.villages]
    members = [
        {
            "platform_id": f"{v}书记",
            "name": f"{v}书记",
            "role": "cadre",
            "village": v,
            "township": t,
            "county": "县",
            "group_name": f"{v}群",
            "categories": [],
            "is_head": True,
            "on_roster": True,
        }
        for v, t in villages
    ]
    members += [
        {
            "platform_id": f"{t.name}干事",
            "name": f"{t.name}干事",
            "role": "staff",
            "village": "",
            "township": t.name,
            "county": "县",
            "group_name": "",
            "categories": [],
            "is_head": False,
            "on_roster": True,
        }
        for t in config.counties[0].townships
    ]
    rng = random.Random(9)
    today = now.date()
    rows = []
    for index in range(tickets):
        village, township = villages[index % len(villages)]
        offset = rng.randrange(-2, 22)  # working days from today: negative = overdue
        day = (
            calendar.OFFICIAL.add_working_days(today, offset)
            if offset >= 0
            else calendar.OFFICIAL.subtract_working_days(today, -offset)
        )
        rows.append(
            {
                "kind": "demand",
                "category": "water",
                "account": "demo",
                "group_name": f"{village}群",
                "county": "县",
                "township": township,
                "village": village,
                "assignee_name": f"{village}书记",
                "assignee_platform_id": f"{village}书记",
                "level": "village",
                "status": rng.choice(["open", "accepted"]),
                "overdue": False,
                "confidential": False,
                "priority": 0,
                "deadline": calendar.end_of_day(day, config.deadlines.end_of_day, CHINA),
                "opened_at": now - timedelta(days=10),
                "text": "停水",
                "norm_text": "停水",
                "keywords": ["停水"],
                "photo_missing": False,
                "version": 0,
            }
        )
    async with make_session_factory(engine)() as session:
        await session.exec(insert(Member), params=members)  # type: ignore[call-overload]
        for start in range(0, len(rows), 5000):
            await session.exec(insert(Ticket), params=rows[start : start + 5000])  # type: ignore[call-overload]
        await session.commit()
    await engine.dispose()


async def daily_check_at_scale(db_url: str, tickets: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    config = city_config(tmp / "data", villages=2500, per_township=25)
    now = datetime(2026, 11, 18, 8, 30, tzinfo=CHINA)  # a Wednesday
    await seed_city(db_url, tickets, config, now)
    services = await build_services(config, clock=SimulatedClock(now), db_url=db_url, media_root=tmp / "media")
    jobs = services.workflow.scheduled
    started = time.perf_counter()
    await jobs.daily_check(now)
    first = time.perf_counter() - started
    async with services.sessions() as session:
        outbox = int((await session.exec(select(func.count()).select_from(Outbox))).one())
        events = int((await session.exec(select(func.count()).select_from(TicketEvent))).one())
        escalated = int(
            (await session.exec(select(func.count()).select_from(Ticket).where(Ticket.level == "township"))).one()
        )
    started = time.perf_counter()
    await jobs.daily_check(now)
    second = time.perf_counter() - started
    async with services.sessions() as session:
        events_after = int((await session.exec(select(func.count()).select_from(TicketEvent))).one())
    started = time.perf_counter()
    await jobs.daily_digest(now + timedelta(minutes=30))
    digest = time.perf_counter() - started
    await services.close()
    return {
        "open_tickets": tickets,
        "daily_check_s": round(first, 2),
        "reminded_plus_escalated_events": events,
        "escalated": escalated,
        "private_messages": outbox,
        "second_run_s": round(second, 2),
        "second_run_new_events": events_after - events,
        "daily_digest_s": round(digest, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--tickets", type=int, default=30000)
    parser.add_argument("--pg", default="")
    args = parser.parse_args()
    backends = [("sqlite", lambda: f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db")]
    if args.pg:
        backends.append(("postgresql", lambda: args.pg))
    for name, url in backends:
        print(
            json.dumps(
                {"backend": name, "workflow_share": await workflow_share(url(), args.messages)}, ensure_ascii=False
            )
        )
        print(
            json.dumps(
                {"backend": name, "daily_check": await daily_check_at_scale(url(), args.tickets)}, ensure_ascii=False
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
