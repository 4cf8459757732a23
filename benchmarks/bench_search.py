"""Search at city scale on PostgreSQL: build N messages (COPY) with their search index, then time typical
queries through the same repository calls the search page makes (``storage.repos.search.search`` and the
context around each hit), and the cost the index adds to storing one message.

Texts are built from the labelled corpus in ``classifiers/data/train`` (never from real chat logs), with
Chinese place names (a township and a village per group) and person names mixed in, so that a village word,
a two-character word, a rare name and a common word each have realistic hit counts.

    .venv/bin/python -m benchmarks.bench_search --db postgresql://postgres@127.0.0.1:5432/vw_bench_search \
        --messages 1000000            # builds the database (dropped and made again), then measures
    .venv/bin/python -m benchmarks.bench_search --db … --reuse   # measures an existing one
    .venv/bin/python -m benchmarks.bench_search --compare        # bigrams vs jieba words: cost and recall

The database is left in place for further runs; drop it with ``DROP DATABASE vw_bench_search``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from storage import search as terms_of
from storage.engine import make_engine, make_session_factory, normalise_url
from storage.migrate import upgrade
from storage.repos import dashboard as dashboard_repo
from storage.repos import messages as messages_repo
from storage.repos import search as search_repo
from storage.repos.common import insert_ignore
from storage.repos.dashboard import Scope

TRAIN = Path(__file__).resolve().parent.parent / "classifiers" / "data" / "train"
SYLLABLES = "石桥河东西南北山水林田湖塘口坝湾岗岭坪冲庄店集铺寨坊堡溪沟洼营圩埠港"
SURNAMES = (
    "张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
    "余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
    ""
)
GIVEN = "秀英华玉兰桂芳明国建军平志强伟海林春梅云霞红福德生荣金宝山成正光德胜文杰丽敏静"
COLUMNS = [
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
    "unassigned",
    "county",
    "township",
    "village",
    "kept_raw",
]


def corpus() -> list[str]:
    texts = []
    for path in sorted(TRAIN.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                text = json.loads(line).get("text", "")
            except json.JSONDecodeError:
                continue
            if text and len(text) <= 200:
                texts.append(text)
    return texts


def place_names(villages: int, townships: int, counties: int, rnd: random.Random) -> list[tuple[str, str, str]]:
    """(county, township, village) with distinct Chinese names: 石桥村, 河东镇 …"""

    def names(count: int, suffix: str, length: int) -> list[str]:
        seen: set[str] = set()
        while len(seen) < count:
            seen.add("".join(rnd.choice(SYLLABLES) for _ in range(length)) + suffix)
        return sorted(seen)

    county_names = names(counties, "县", 2)
    township_names = names(townships, "镇", 2)
    village_names = names(villages, "村", 2 if villages < 900 else 3)
    out = []
    for v, village in enumerate(village_names):
        t = v * townships // villages
        out.append((county_names[t * counties // townships], township_names[t], village))
    return out


def person_names(count: int, rnd: random.Random) -> list[str]:
    seen: set[str] = set()
    while len(seen) < count:
        seen.add(rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.choice((1, 2)))))
    return sorted(seen)


class Builder:
    """Message texts and their tsvector literals, from parts whose terms are computed once."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.base = [terms_of.terms(t) for t in texts]
        self._vector_cache: dict[int, str] = {}

    def vector(self, index: int, extra: list[str], places: dict[str, str], at: datetime) -> str:
        base = self._vector_cache.get(index)
        if base is None:
            base = " ".join(f"{terms_of._pg_quote(t)}:{i}" for i, t in enumerate(self.base[index], start=1))
            self._vector_cache[index] = base
        offset = len(self.base[index])
        parts = [base] if base else []
        parts += [f"{terms_of._pg_quote(t)}:{offset + i}" for i, t in enumerate(extra, start=1)]
        parts += [terms_of._pg_quote(terms_of._PLACE_PREFIX[level] + name) for level, name in places.items()]
        parts.append(terms_of.week_term(terms_of.week_of(at)))
        return " ".join(parts)


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def generate(args: argparse.Namespace) -> Iterator[tuple[list[str], list[str]]]:
    """Batches of COPY text lines: (messages, message_search)."""
    rnd = random.Random(args.seed)
    builder = Builder(corpus())
    places = place_names(args.villages, args.townships, args.counties, rnd)
    people = person_names(args.people, rnd)
    end = datetime.now(UTC)
    span = args.days * 86400
    messages: list[str] = []
    index: list[str] = []
    for i in range(1, args.messages + 1):
        county, township, village = places[rnd.randrange(len(places))]
        k = rnd.randrange(len(builder.texts))
        text = builder.texts[k]
        extra_text = ""
        roll = rnd.random()
        if roll < 0.15:
            extra_text = f"{village}{rnd.choice(('张湾组', '新屋组', '老街', '村部'))}"
        elif roll < 0.30:
            extra_text = f"{rnd.choice(people)}家"
        if extra_text:
            text = f"{text}，{extra_text}"
        extra = terms_of.terms(extra_text) if extra_text else []
        sender = people[rnd.randrange(len(people))]
        # messages arrive in time order, so ids follow time as in a live database (a few minutes' jitter)
        at = end - timedelta(seconds=span * (1 - i / args.messages) + rnd.random() * 300)
        row = [
            i,
            "bench",
            f"b{i}",
            at,
            f"{village}监督服务群",
            False,
            sender,
            sender,
            "villager",
            "text",
            text,
            False,
            county,
            township,
            village,
            False,
        ]
        messages.append("\t".join(_copy_text(v) for v in row))
        vector = builder.vector(k, extra, {"county": county, "township": township, "village": village}, at)
        index.append(f"{i}\t{at.isoformat()}\t{_copy_text(vector)}")
        if len(messages) >= 50_000:
            yield messages, index
            messages, index = [], []
    if messages:
        yield messages, index


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def build(args: argparse.Namespace) -> None:
    import asyncpg

    url = make_url(normalise_url(args.db))
    name = url.database
    admin = await asyncpg.connect(_dsn(url.set(database="postgres").render_as_string(hide_password=False)))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    engine = make_engine(normalise_url(args.db))
    await upgrade(engine)
    await engine.dispose()
    con = await asyncpg.connect(_dsn(normalise_url(args.db)))
    t0 = time.monotonic()
    try:
        index_ddl = await con.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename IN ('messages', 'message_search') AND indexname NOT LIKE '%pkey'"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        for row in index_ddl:
            await con.execute(f'DROP INDEX "{row["indexname"]}"')
        await con.execute("ALTER TABLE message_search DROP CONSTRAINT message_search_message_id_fkey")
        total = 0
        for messages, index in generate(args):
            rows = io.BytesIO(("\n".join(messages) + "\n").encode())
            await con.copy_to_table("messages", source=rows, columns=COLUMNS)
            terms = io.BytesIO(("\n".join(index) + "\n").encode())
            await con.copy_to_table("message_search", source=terms, columns=["message_id", "at", "terms"])
            total += len(messages)
            if total % 1_000_000 == 0:
                print(f"  {total:,} messages, {time.monotonic() - t0:.0f}s", file=sys.stderr)
        copied = time.monotonic() - t0
        await con.execute("SET maintenance_work_mem = '512MB'")
        t1 = time.monotonic()
        for row in index_ddl:
            await con.execute(row["indexdef"])
        await con.execute(
            "ALTER TABLE message_search ADD CONSTRAINT message_search_message_id_fkey"
            " FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE"
        )
        await con.execute("SELECT setval(pg_get_serial_sequence('messages', 'id'), (SELECT MAX(id) FROM messages))")
        await con.execute("VACUUM ANALYZE messages")
        await con.execute("VACUUM ANALYZE message_search")
        sizes = await con.fetchrow(
            "SELECT pg_size_pretty(pg_total_relation_size('messages')) AS messages,"
            " pg_size_pretty(pg_relation_size('message_search')) AS search_heap,"
            " pg_size_pretty(pg_relation_size('ix_message_search_terms')) AS gin"
        )
        print(
            f"built {args.messages:,} messages: copied in {copied:.0f}s, indexes in {time.monotonic() - t1:.0f}s;"
            f" sizes {dict(sizes)}",
            file=sys.stderr,
        )
    finally:
        await con.close()


async def _sample_queries(sessions: Any, rnd: random.Random) -> dict[str, list[tuple[str, Scope, str]]]:
    """Query words by kind with a scope each: (query, scope, scope name)."""
    async with sessions() as session:
        conn = await session.connection()
        from sqlalchemy import text

        rows = (
            await conn.execute(text("SELECT county, township, village, text FROM messages ORDER BY random() LIMIT 400"))
        ).all()
    city = Scope()
    out: dict[str, list[tuple[str, Scope, str]]] = {"village word": [], "rare name": []}
    for county, township, village, _body in rows[:40]:
        out["village word"].append((village, Scope(county=county, township=township), "township"))
    names = [body.rsplit("，", 1)[1][:-1] for *_, body in rows if body.endswith("家") and "，" in body]
    for name in names[:40]:
        out["rare name"].append((name, city, "city"))
    county, township, village, _ = rows[0]
    town = Scope(county=county, township=township)
    cadre = Scope(county=county, township=township, village=village, confidential=False)
    out["two-character word"] = [(w, town, "township") for w in ("停水", "低保", "路灯", "垃圾", "补贴", "医保")]
    out["two-character word"] += [(w, city, "city") for w in ("停水", "低保", "路灯", "垃圾", "补贴", "医保")]
    out["common word"] = [(w, city, "city") for w in ("我们", "什么", "村里", "大家", "没有", "一下")]
    out["common word"] += [(w, town, "township") for w in ("我们", "什么", "村里", "大家")]
    out["common word"] += [(w, cadre, "village (cadre)") for w in ("我们", "什么")]
    out["single character"] = [(w, city, "city") for w in ("水", "的", "村")]
    return out


async def measure(args: argparse.Namespace) -> None:
    engine = make_engine(normalise_url(args.db))
    sessions = make_session_factory(engine)
    rnd = random.Random(args.seed)
    samples = await _sample_queries(sessions, rnd)
    print("| query kind | scope | examples | p50 ms | p95 ms | max ms | hits on page 1 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    all_times: list[float] = []
    for kind, queries in samples.items():
        by_scope: dict[str, list[tuple[float, int]]] = {}
        for repeat in range(args.repeat):
            for query, scope, scope_name in queries:
                t0 = time.perf_counter()
                async with sessions() as session:
                    rows, cursor = await search_repo.search(
                        session, scope=scope, filt=search_repo.SearchFilter(text=query), cursor=None, limit=50
                    )
                    await dashboard_repo.message_context(
                        session,
                        anchors=[(r["id"], r["group_name"], r["at"]) for r in rows],
                        before=2,
                        after=2,
                        scope=scope,
                    )
                    if cursor is not None and repeat == 0:  # the second page too, once
                        await search_repo.search(
                            session, scope=scope, filt=search_repo.SearchFilter(text=query), cursor=cursor, limit=50
                        )
                elapsed = (time.perf_counter() - t0) * 1000
                by_scope.setdefault(scope_name, []).append((elapsed, len(rows)))
        for scope_name, timings in by_scope.items():
            times = sorted(t for t, _ in timings)
            all_times += times
            examples = next(q for q, _, s in queries if s == scope_name)
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            hits = statistics.median(h for _, h in timings)
            print(
                f"| {kind} | {scope_name} | {examples} … ({len({q for q, _, s in queries if s == scope_name})}) |"
                f" {statistics.median(times):.1f} | {p95:.1f} | {times[-1]:.1f} | {hits:.0f} |"
            )
    all_times.sort()
    p95 = all_times[int(len(all_times) * 0.95)]
    print(f"\nall queries: p50 {statistics.median(all_times):.1f} ms, p95 {p95:.1f} ms")
    await measure_insert(sessions, args)
    await engine.dispose()


async def measure_insert(sessions: Any, args: argparse.Namespace) -> None:
    """Storing a message with and without indexing it, one transaction each, as the live bot does."""
    from storage.models import Message

    rnd = random.Random(7)
    texts = corpus()
    timings: dict[str, list[float]] = {"without index": [], "with index": []}
    for i in range(args.inserts):
        mode = "with index" if i % 2 else "without index"
        values = {
            "account": "bench-insert",
            "platform_id": f"ins-{time.time_ns()}-{i}",
            "at": datetime.now(UTC),
            "group_name": "石桥村监督服务群",
            "sender_platform_id": "x",
            "sender_name": "x",
            "text": rnd.choice(texts),
            "county": "舒城县",
            "township": "城关镇",
            "village": "石桥村",
        }
        t0 = time.perf_counter()
        async with sessions() as session, session.begin():
            if mode == "with index":
                await messages_repo.insert_message(session, values=values)
            else:
                await insert_ignore(session, Message, ("account", "platform_id"), values)
        timings[mode].append((time.perf_counter() - t0) * 1000)
    print("\n| storing one message (own transaction) | p50 ms | p99 ms |")
    print("| --- | --- | --- |")
    for mode, times in timings.items():
        times.sort()
        print(f"| {mode} | {statistics.median(times):.2f} | {times[int(len(times) * 0.99)]:.2f} |")
    t0 = time.perf_counter()
    for text in texts[:5000]:
        terms_of.pg_vector(text, {"county": "舒城县", "township": "城关镇", "village": "石桥村"})
    print(f"\nterms of one message (Python): {(time.perf_counter() - t0) / 5000 * 1e6:.1f} µs")


def compare() -> None:
    """Character pairs against jieba words on the corpus: the cost per message and how many messages that
    contain a query's text each finds (a query: a word of 2–4 characters cut from the corpus)."""
    import jieba

    texts = corpus()
    rnd = random.Random(3)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    t0 = time.perf_counter()
    word_sets = [set(tokenizer.cut_for_search(terms_of.normalise(t))) for t in texts]
    jieba_us = (time.perf_counter() - t0) / len(texts) * 1e6
    t0 = time.perf_counter()
    for t in texts:
        terms_of.terms(t)
    pairs_us = (time.perf_counter() - t0) / len(texts) * 1e6
    queries: list[str] = []
    while len(queries) < 300:
        runs = [r for r in terms_of.runs(rnd.choice(texts)) if len(r) >= 4 and "\u4e00" <= r[0] <= "\u9fff"]
        if runs:
            run = rnd.choice(runs)
            size = rnd.choice((2, 3, 4))
            start = rnd.randrange(len(run) - size + 1)
            queries.append(run[start : start + size])
    normalised = [terms_of.normalise(t) for t in texts]
    found_jieba = found_all = 0
    for q in queries:
        words = list(tokenizer.cut_for_search(q))
        for body, wordset in zip(normalised, word_sets, strict=True):
            if q in body:
                found_all += 1
                found_jieba += all(w in wordset for w in words)
    print(f"terms per message: pairs {pairs_us:.1f} µs, jieba cut_for_search {jieba_us:.1f} µs")
    print(
        f"recall over {len(queries)} queries ({found_all:,} containing messages): pairs 100%,"
        f" jieba words {100 * found_jieba / found_all:.1f}%"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/vw_bench_search")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--villages", type=int, default=2_546)
    parser.add_argument("--townships", type=int, default=150)
    parser.add_argument("--counties", type=int, default=12)
    parser.add_argument("--people", type=int, default=40_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--inserts", type=int, default=2_000)
    parser.add_argument("--reuse", action="store_true", help="measure the database as it is")
    parser.add_argument("--compare", action="store_true", help="only compare pairs with jieba words")
    args = parser.parse_args(argv)
    if args.compare:
        compare()
        return
    if not args.reuse:
        asyncio.run(build(args))
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
