"""City-scale synthetic data for the dashboard benchmark (a Quanzhou-sized city).

Defaults: 6,800 groups in 2,546 villages, 150 townships, 12 counties; 10,000,000 messages over the last
365 days; 300,000 flags; 30,000 tickets with reporters, events and linked messages; four staff logins
(bench_admin, bench_county, bench_town, bench_cadre; password ``bench-password``).

SQLite is loaded with the stdlib driver and executemany; PostgreSQL with COPY (asyncpg). Secondary
indexes of the big tables are dropped during the load and rebuilt after it, then the planner's
statistics are refreshed. The schema comes from the real migrations.

    .venv/bin/python -m benchmarks.gen_city --db sqlite:///var/bench/city.db
    .venv/bin/python -m benchmarks.gen_city --db postgresql://postgres@127.0.0.1:5432/vw_bench --messages 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url

from dashboards.security import hash_password
from storage.engine import make_engine, normalise_url
from storage.migrate import upgrade

PASSWORD = "bench-password"
TEXTS = [
    "今天几点开始停水？",
    "村口路灯坏了好几天了",
    "收到",
    "好的谢谢",
    "大家注意防火",
    "明天开会的时间是几点",
    "【通知】明天上午8点到12点停电检修",
    "垃圾好几天没人收了，臭得很",
    "医保怎么交？在哪里交",
    "辛苦了",
    "下午来电了，辛苦电工师傅",
    "桥边的护栏断了，小孩上学很危险",
    "这个月的低保什么时候发",
    "哈哈哈",
    "有没有人捡到一串钥匙",
    "今年征兵什么时候报名",
    "村里的公示在哪里看",
    "水管爆了，路上全是水",
    "老人的养老金卡丢了怎么补办",
    "👍👍",
    "天气预报说明天有大雨，注意安全",
    "好的",
    "麻烦李书记看一下",
]
FLAG_TEXTS = [
    ("家父八十大寿，略备薄酒，敬请光临", ["banquet"], "high", "banquet.birthday", ["大寿", "薄酒"]),
    ("犬子新婚，敬请光临，电话13812345678", ["banquet"], "normal", "banquet.wedding", ["新婚", "敬请光临"]),
    ("祠堂今晚开桌，来的私聊", ["gambling"], "normal", "gambling.invite", ["开桌"]),
    ("家人们帮我点一下，差一点就提现了", ["spam"], "low", "spam.kanyidao", ["帮我点一下", "提现"]),
    ("村干部都是吃干饭的", ["abuse"], "normal", "abuse.cadre", ["吃干饭"]),
    ("凭什么他家三套房还吃低保？", ["clue"], "high", "clue.subsidy", ["三套房", "低保"]),
    ("村主任儿子升学宴摆了三十桌", ["clue", "banquet"], "high", "clue.banquet", ["升学宴", "三十桌"]),
]
TICKET_TEXTS = [
    ("连续三天停水了，老人小孩怎么办", "water"),
    ("路灯都坏一个礼拜了，有人管没有", "power"),
    ("路堵了一上午没人管", "road_traffic"),
    ("垃圾堆在路边没人清", "sanitation"),
    ("桥边护栏断了很危险", "safety_hazard"),
    ("祠堂那边天天打麻将到半夜", "public_order"),
    ("宅基地审批一直没消息", "land_housing"),
    ("低保申请交了两个月了", "welfare"),
    ("今年什么时候征兵？", "village_affairs"),
    ("卫生室没有医生", "education_health"),
]
TICKET_KEYWORDS = {
    "连续三天停水了，老人小孩怎么办": ["连续", "停水", "老人", "小孩"],
    "路灯都坏一个礼拜了，有人管没有": ["路灯", "礼拜", "有人管"],
    "路堵了一上午没人管": ["路堵", "上午", "没人管"],
    "垃圾堆在路边没人清": ["垃圾", "路边", "没人"],
    "桥边护栏断了很危险": ["桥边", "护栏", "危险"],
    "祠堂那边天天打麻将到半夜": ["祠堂", "天天", "麻将", "半夜"],
    "宅基地审批一直没消息": ["宅基地", "审批", "消息"],
    "低保申请交了两个月了": ["低保", "申请", "两个月"],
    "今年什么时候征兵？": ["今年", "征兵"],
    "卫生室没有医生": ["卫生室", "医生"],
}
"""The content words the classifier stores on such tickets (what merging and the hot spots compare)."""
NAMES = [f"{s}{g}" for s in "张王李赵刘陈杨黄周吴" for g in ("某林", "大爷", "阿姨", "小明", "建国", "秀英")]


@dataclass
class Place:
    county: str
    township: str
    village: str
    group: str


def places(groups: int, villages: int, townships: int, counties: int) -> list[Place]:
    out = []
    for g in range(groups):
        v = g * villages // groups
        t = v * townships // villages
        c = t * counties // townships
        county, township, village = f"县{c + 1:02d}", f"镇{t + 1:03d}", f"村{v + 1:04d}"
        out.append(Place(county, township, village, f"{township}{village}监督服务群{g % 3 + 1}"))
    return out


def fmt(value: datetime) -> str:
    """How SQLAlchemy's SQLite DateTime stores a naive UTC instant."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def generate(args: argparse.Namespace) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """Yields (table, rows) batches with naive-UTC datetimes; ids are explicit so rows can refer to each other."""
    rnd = random.Random(args.seed)
    world = places(args.groups, args.villages, args.townships, args.counties)
    end = datetime.now(UTC).replace(tzinfo=None)
    start = end - timedelta(days=args.days)
    span = (end - start).total_seconds()
    n = args.messages
    yield (
        "groups",
        [
            (i + 1, p.group, f"gid{i}", f"bot{i // 300}", p.county, p.township, p.village, False, True)
            for i, p in enumerate(world)
        ],
    )
    special = rnd.sample(range(n), args.flags + args.tickets)
    flag_at = set(special[: args.flags])
    ticket_at = set(special[args.flags :])
    batch: list[tuple[Any, ...]] = []
    flags: list[tuple[Any, ...]] = []
    tickets: list[tuple[Any, ...]] = []
    reporters: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    links: list[tuple[Any, ...]] = []
    flag_id = ticket_id = event_id = 0
    step = span / n
    texts = TEXTS
    for i in range(n):
        at = start + timedelta(seconds=i * step)
        p = world[rnd.randrange(len(world))]
        sender = NAMES[rnd.randrange(len(NAMES))]
        role = "cadre" if rnd.random() < 0.05 else "villager"
        text = texts[rnd.randrange(len(texts))]
        mid = i + 1
        if i in flag_at:
            text, labels, sev, rule, kws = FLAG_TEXTS[rnd.randrange(len(FLAG_TEXTS))]
            if rule.startswith("banquet") and rnd.random() < 0.3:
                role, sev = "party_member", "high"
            flag_id += 1
            verdict = rnd.choice(["confirmed", "false_alarm", "follow_up"]) if at < end - timedelta(days=30) else None
            flags.append(
                (
                    flag_id,
                    mid,
                    at,
                    p.group,
                    sender,
                    role,
                    p.county,
                    p.township,
                    p.village,
                    json.dumps(labels),
                    sev,
                    json.dumps([rule]),
                    json.dumps(kws, ensure_ascii=False),
                    verdict,
                    "clue" in labels,
                )
            )
        elif i in ticket_at:
            text, category = TICKET_TEXTS[rnd.randrange(len(TICKET_TEXTS))]
            ticket_id += 1
            tickets.append(_ticket(rnd, ticket_id, at, end, p, text, category))
            reporters.append((ticket_id, ticket_id, sender, sender, mid, at))
            links.append((ticket_id, ticket_id, mid))
            for etype, offset in (("opened", 0), ("accepted", 2), ("resolved", 50)):
                event_id += 1
                events.append((event_id, ticket_id, at + timedelta(hours=offset), etype, "李书记", ""))
        batch.append(
            (
                mid,
                f"bot{(mid % 23)}",
                f"m{mid}",
                at,
                p.group,
                False,
                sender,
                sender,
                role,
                "text",
                text,
                None,
                None,
                False,
                p.county,
                p.township,
                p.village,
            )
        )
        if len(batch) >= 50_000:
            yield "messages", batch
            batch = []
    yield "messages", batch
    yield "flags", flags
    yield "tickets", tickets
    yield "ticket_reporters", reporters
    yield "ticket_events", events
    yield "ticket_messages", links
    now = datetime.now(UTC).replace(tzinfo=None)
    hashed = hash_password(PASSWORD)
    w = world[0]
    yield (
        "staff_users",
        [
            (1, "bench_admin", hashed, "admin", "admin", "", "", "", now, True, 0),
            (2, "bench_county", hashed, "county", "county_staff", w.county, "", "", now, True, 0),
            (3, "bench_town", hashed, "town", "township_staff", w.county, w.township, "", now, True, 0),
            (4, "bench_cadre", hashed, "cadre", "cadre", w.county, w.township, w.village, now, True, 0),
        ],
    )


def _ticket(rnd: random.Random, tid: int, at: datetime, end: datetime, p: Place, text: str, category: str) -> tuple:
    deadline = at + timedelta(days=14)
    roll = rnd.random()
    status = "closed" if roll < 0.6 else "resolved" if roll < 0.8 else "accepted" if roll < 0.9 else "open"
    first = at + timedelta(minutes=rnd.randint(5, 600))
    resolved = at + timedelta(hours=rnd.expovariate(1 / 72)) if status in ("closed", "resolved") else None
    if resolved is not None and resolved > end:
        resolved = end
    rating = (
        rnd.choice(["satisfied", "satisfied", "basically_satisfied", "unsatisfied"]) if status == "closed" else None
    )
    kind = "clue" if rnd.random() < 0.02 else "consult" if category == "village_affairs" else "demand"
    overdue = status in ("open", "accepted") and deadline < end
    return (
        tid,
        kind,
        category,
        f"bot{tid % 23}",
        p.group,
        p.county,
        p.township,
        p.village,
        "李书记",
        "village",
        status,
        overdue,
        kind == "clue",
        0,
        deadline,
        at,
        first if status != "open" else None,
        resolved,
        resolved if status == "closed" else None,
        rating,
        text,
        text,
        json.dumps(TICKET_KEYWORDS.get(text, []), ensure_ascii=False),
        0,
        False,
        _STAGE[status],
    )


# the state machine's stage for each generated status (bot/tickets/states.py)
_STAGE = {"open": "new", "accepted": "in_progress", "resolved": "awaiting_rating", "closed": "rated"}


COLUMNS = {
    "groups": ["id", "name", "platform_id", "account", "county", "township", "village", "quiet", "configured"],
    "messages": [
        "id",
        "account",
        "platform_id",
        "at",
        "group_name",
        "private",
        "sender_platform_id",
        "sender_name",
        "role",
        "kind",
        "text",
        "media_path",
        "raw",
        "unassigned",
        "county",
        "township",
        "village",
    ],
    "flags": [
        "id",
        "message_id",
        "at",
        "group_name",
        "sender_name",
        "role",
        "county",
        "township",
        "village",
        "labels",
        "severity",
        "rules",
        "keywords",
        "verdict",
        "confidential",
    ],
    "tickets": [
        "id",
        "kind",
        "category",
        "account",
        "group_name",
        "county",
        "township",
        "village",
        "assignee_name",
        "level",
        "status",
        "overdue",
        "confidential",
        "priority",
        "deadline",
        "opened_at",
        "first_response_at",
        "resolved_at",
        "closed_at",
        "rating",
        "text",
        "norm_text",
        "keywords",
        "version",
        "photo_missing",
        "stage",
    ],
    "ticket_reporters": ["id", "ticket_id", "platform_id", "name", "message_id", "at"],
    "ticket_events": ["id", "ticket_id", "at", "type", "actor", "text"],
    "ticket_messages": ["id", "ticket_id", "message_id"],
    "staff_users": [
        "id",
        "username",
        "password_hash",
        "display_name",
        "role",
        "county",
        "township",
        "village",
        "created_at",
        "active",
        "patrolled_to_flag_id",
    ],
}
BIG = ("messages", "flags", "tickets", "ticket_reporters", "ticket_events", "ticket_messages")


def load_sqlite(path: str, args: argparse.Namespace) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1000000")
    con.execute("PRAGMA foreign_keys=OFF")
    saved = con.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name IN "
        f"({','.join('?' * len(BIG))})",
        BIG,
    ).fetchall()
    if con.execute("SELECT 1 FROM messages LIMIT 1").fetchone():
        raise SystemExit(f"{path} already has messages: generate into a new file")
    for name, _ in saved:
        con.execute(f'DROP INDEX "{name}"')
    total = 0
    t0 = time.monotonic()
    try:
        for table, rows in generate(args):
            if not rows:
                continue
            cols = COLUMNS[table]
            conv = [[fmt(v) if isinstance(v, datetime) else v for v in r] for r in rows]
            con.executemany(f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", conv)
            total += len(rows)
            if table == "messages" and total % 1_000_000 < 50_000:
                print(f"  {total:,} rows, {time.monotonic() - t0:.0f}s", file=sys.stderr)
        con.commit()
    finally:
        print(f"  inserted in {time.monotonic() - t0:.0f}s; rebuilding {len(saved)} indexes", file=sys.stderr)
        for _, sql in saved:
            con.execute(sql)
        con.commit()
    con.execute("ANALYZE")
    con.commit()
    con.close()


async def load_postgres(url: str, args: argparse.Namespace) -> None:
    import asyncpg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    con = await asyncpg.connect(dsn)
    try:
        await con.execute(f"TRUNCATE {', '.join(BIG)}, groups, staff_users RESTART IDENTITY CASCADE")
        idx = await con.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' AND i.tablename = ANY($1) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            list(BIG),
        )
        cons = await con.fetch(
            "SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def "
            "FROM pg_constraint c WHERE c.conrelid::regclass::text = ANY($1) AND c.contype IN ('u', 'f')",
            list(BIG),
        )
        for c in cons:
            await con.execute(f'ALTER TABLE {c["tbl"]} DROP CONSTRAINT "{c["conname"]}"')
        for i in idx:
            await con.execute(f'DROP INDEX "{i["indexname"]}"')
        t0 = time.monotonic()
        total = 0
        try:
            for table, rows in generate(args):
                if rows:
                    await con.copy_records_to_table(table, records=rows, columns=COLUMNS[table])
                    total += len(rows)
                    if table == "messages" and total % 1_000_000 < 50_000:
                        print(f"  {total:,} rows, {time.monotonic() - t0:.0f}s", file=sys.stderr)
        finally:
            print(f"  copied in {time.monotonic() - t0:.0f}s; rebuilding indexes and constraints", file=sys.stderr)
            await con.execute("SET maintenance_work_mem = '1GB'")
            for i in idx:
                await con.execute(i["indexdef"])
            for c in cons:
                await con.execute(f'ALTER TABLE {c["tbl"]} ADD CONSTRAINT "{c["conname"]}" {c["def"]}')
        for table in (*BIG, "groups", "staff_users"):
            await con.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"
            )
        await con.execute("VACUUM ANALYZE")
    finally:
        await con.close()


async def main_async(args: argparse.Namespace) -> None:
    url = normalise_url(args.db)
    engine = make_engine(url)
    await upgrade(engine)
    await engine.dispose()
    t0 = time.monotonic()
    if url.startswith("sqlite"):
        await asyncio.to_thread(load_sqlite, make_url(url).database or "", args)
    else:
        await load_postgres(url, args)
    print(
        f"generated {args.messages:,} messages, {args.flags:,} flags, {args.tickets:,} tickets, "
        f"{args.groups:,} groups in {time.monotonic() - t0:.0f}s",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="sqlite:///path.db or postgresql://…/dbname (created beforehand)")
    parser.add_argument("--groups", type=int, default=6_800)
    parser.add_argument("--villages", type=int, default=2_546)
    parser.add_argument("--townships", type=int, default=150)
    parser.add_argument("--counties", type=int, default=12)
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--flags", type=int, default=300_000)
    parser.add_argument("--tickets", type=int, default=30_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.flags + args.tickets > args.messages:
        parser.error("--flags + --tickets must not exceed --messages")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
