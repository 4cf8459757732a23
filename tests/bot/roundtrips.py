"""Counting database round trips per handled message, deterministically (a test and a benchmark share it).

SQLAlchemy's event hooks on the engine count what goes to the server: every statement a cursor executes
(``before_cursor_execute``; an ``executemany`` counts once), every transaction begun, committed or rolled
back, and every pool checkout, which with ``pool_pre_ping`` costs a ping of its own. The script is fixed:
the same messages of the example county, handled one by one as the live bot does (``Ingest.handle``), and
after each the outbox sender drains what it queued (``send_due``), so the replies count too.

    .venv/bin/python -m tests.bot.roundtrips [postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import CHINA, SimulatedClock
from bot.config import load_config
from bot.messages import IncomingMessage, MessageKind
from bot.services import Services, build_services
from tests.bot.fakes import RecordingAdapter

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 9, 7, 9, 0, tzinfo=CHINA)
GROUP = "石桥村监督服务群"
SQL: Counter[str] = Counter()
"""Every statement counted by the last ``measure``, by its first words."""

# (kind of message, sender, text): a day of one group, as the live bot meets it.
SCRIPT: tuple[tuple[str, str, str], ...] = (
    ("chat", "高某林", "大家早上好"),
    ("chat", "张大妈", "今天天气不错"),
    ("demand", "高某林", "村东头自来水停了三天了,请尽快处理"),
    ("chat", "刘建国", "收到"),
    ("demand", "张大妈", "村东头自来水停了三天了,没水做饭,请尽快处理"),
    ("command", "李书记", "#1 受理,今天下午派人去看"),
    ("chat", "村民甲", "晚上有广场舞,大家来跳"),
    ("demand", "村民乙", "路灯坏了一个多月,晚上走路很危险"),
    ("command", "李书记", "#1 已修好"),
    ("rating", "高某林", "满意"),
    ("chat", "村民丙", "好的,谢谢书记"),
    ("chat", "村民丁", "明天几点开会?"),
)


@dataclass
class Counts:
    statements: int = 0
    begins: int = 0
    ends: int = 0
    """Commits and rollbacks."""
    checkouts: int = 0

    @property
    def round_trips(self) -> int:
        return self.statements + self.begins + self.ends + self.checkouts

    def as_dict(self) -> dict[str, int]:
        return {
            "round_trips": self.round_trips,
            "statements": self.statements,
            "begins": self.begins,
            "commits_rollbacks": self.ends,
            "checkouts": self.checkouts,
        }


@dataclass
class Counter_:
    current: Counts = field(default_factory=Counts)
    sql: Counter[str] = field(default_factory=Counter)

    def reset(self) -> Counts:
        done, self.current = self.current, Counts()
        return done


@contextmanager
def counting(engine: AsyncEngine, *, pinging: bool) -> Iterator[Counter_]:
    """Count round trips on ``engine`` while inside; ``pinging``: the pool pings each checkout."""
    counter = Counter_()
    sync = engine.sync_engine

    def on_execute(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        counter.current.statements += 1
        counter.sql[" ".join(statement.split())[:90]] += 1

    def on_begin(conn: Any) -> None:
        if not _autocommit(conn):
            counter.current.begins += 1

    def on_end(conn: Any) -> None:
        if not _autocommit(conn):
            counter.current.ends += 1

    def on_checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        if pinging:
            counter.current.checkouts += 1

    hooks: list[tuple[Any, str, Any]] = [
        (sync, "before_cursor_execute", on_execute),
        (sync, "begin", on_begin),
        (sync, "commit", on_end),
        (sync, "rollback", on_end),
        (sync.pool, "checkout", on_checkout),
    ]
    for target, name, hook in hooks:
        event.listen(target, name, hook)
    try:
        yield counter
    finally:
        for target, name, hook in hooks:
            event.remove(target, name, hook)


def _autocommit(conn: Any) -> bool:
    """An AUTOCOMMIT connection's begin and commit send nothing (the driver skips BEGIN and COMMIT)."""
    return bool(conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT")


@dataclass(frozen=True)
class Measured:
    kind: str
    handle: Counts
    """Storing and handling the message (its one transaction)."""
    send: Counts
    """Sending what it queued and marking it sent."""
    replies: int


async def measure(services: Services, adapter: RecordingAdapter) -> list[Measured]:
    """Handle SCRIPT one message at a time; the round trips of each, and of sending its replies."""
    clock = services.clock
    assert isinstance(clock, SimulatedClock)
    pinging = bool(services.engine.sync_engine.pool._pre_ping)  # type: ignore[attr-defined]
    adapters = {adapter.account: adapter}
    # warm up: the directory's caches and the prepared statements of a first message and reply
    await services.ingest.handle(_incoming(0, "高某林", "大家好", clock.now()))
    await services.outbox.send_due(adapters, pace=False)
    measured: list[Measured] = []
    seen = {"高某林"}
    with counting(services.engine, pinging=pinging) as counter:
        for n, (kind, sender, text) in enumerate(SCRIPT, 1):
            if sender not in seen:  # its sender is looked up (or stored) first
                seen.add(sender)
                kind = f"{kind}, new sender"
            clock.advance_to(clock.now() + timedelta(minutes=3))
            counter.reset()
            stored = await services.ingest.handle(_incoming(n, sender, text, clock.now()))
            assert stored is not None, f"message {n} not stored"
            handled = counter.reset()
            before = len(adapter.sent)
            await services.outbox.send_due(adapters, pace=False)
            measured.append(Measured(kind, handled, counter.reset(), len(adapter.sent) - before))
        SQL.update(counter.sql)
    return measured


def _incoming(n: int, sender: str, text: str, at: datetime) -> IncomingMessage:
    return IncomingMessage(
        platform_id=f"rt-{n}",
        account="demo",
        at=at,
        kind=MessageKind.TEXT,
        text=text,
        sender_id=sender,
        sender_name=sender,
        group_id=GROUP,
        group_topic=GROUP,
    )


async def build(db_url: str, data: Path) -> Services:
    config = load_config(ROOT / "config.example.toml").model_copy(update={"data_dir": data / "data"})
    return await build_services(config, clock=SimulatedClock(T0), db_url=db_url, media_root=data / "media")


def summary(measured: list[Measured]) -> dict[str, Any]:
    per_kind: dict[str, list[Measured]] = {}
    for m in measured:
        per_kind.setdefault(m.kind, []).append(m)
    total_handle = sum(m.handle.round_trips for m in measured)
    total_send = sum(m.send.round_trips for m in measured)
    return {
        "messages": len(measured),
        "replies": sum(m.replies for m in measured),
        "round_trips_per_message": round((total_handle + total_send) / len(measured), 2),
        "handle_per_message": round(total_handle / len(measured), 2),
        "send_per_message": round(total_send / len(measured), 2),
        "by_kind": {
            kind: {
                "handle": round(sum(m.handle.round_trips for m in ms) / len(ms), 2),
                "send": round(sum(m.send.round_trips for m in ms) / len(ms), 2),
                "replies": round(sum(m.replies for m in ms) / len(ms), 2),
            }
            for kind, ms in per_kind.items()
        },
    }


async def main(pg_admin: str | None) -> None:
    """On a new SQLite file, or a new database made (and dropped) on the PostgreSQL of ``pg_admin``."""
    import asyncpg

    name = f"vw_rt_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/rt.db"
        if pg_admin:
            admin = await asyncpg.connect(pg_admin)
            await admin.execute(f'CREATE DATABASE "{name}"')
            url = pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
        try:
            services = await build(url, Path(tmp))
            try:
                measured = await measure(services, RecordingAdapter())
            finally:
                await services.close()
        finally:
            if pg_admin:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()
    import json

    print(json.dumps(summary(measured), ensure_ascii=False, indent=2))
    for sql, n in sorted(SQL.items(), key=lambda kv: -kv[1]):
        print(f"{n:4}  {sql}")
    for m in measured:
        print(f"{m.kind:8} handle {m.handle.as_dict()}  send {m.send.as_dict()} replies {m.replies}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
