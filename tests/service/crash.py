"""A real `villagewatch run` in a child process that tests post to, kill -9 and start again.

The simulator's journal (data_dir/sim/<account>.jsonl) records what it accepted and what it delivered;
the database is read directly, so what was stored and sent is counted after the process is gone.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from storage.engine import make_engine

ROOT = Path(__file__).resolve().parents[2]
VILLAGEWATCH = ROOT / ".venv" / "bin" / "villagewatch"
START_TIMEOUT = 60.0
GROUPS = ("石桥村监督服务群", "河东村监督服务群", "七门堰村监督服务群")
TEXTS = (
    "村东头自来水停了三天了,请尽快处理",
    "大家早上好",
    "路灯坏了一个多月,晚上走路很危险",
    "今天天气不错",
    "垃圾好几天没人清运了,臭得很",
    "收到",
    "村口的桥栏杆断了,孩子上学不安全",
    "本周六家父七十大寿,摆几桌,欢迎大家来",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(
    path: Path, *, data_dir: Path, db_url: str, port: int, check: time | None = None, digest: time | None = None
) -> None:
    """The example config on ``db_url`` with the simulator on ``port``, no dashboard or metrics, no pacing,
    the scheduler looking every 0.1 s; ``check``/``digest`` move the daily jobs (else at night)."""
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    head, _, counties = example.partition("[[counties]]")
    config = f"""
data_dir = "{data_dir}"
rules_dir = "{ROOT / "rules"}"
roster = "{ROOT / "roster.example.csv"}"
log_level = "WARNING"

[storage]
url = "{db_url}"

[[accounts]]
name = "demo"
adapter = "sim"
[accounts.pacing]
per_group_seconds = 0.0
per_account_seconds = 0.0

[schedule]
daily_check = {(check or time(3, 33)).isoformat()}
daily_digest = {(digest or time(3, 34)).isoformat()}
poll_seconds = 0.1

[dashboard]
enabled = false

[metrics]
enabled = false

[retention]
run_at = 03:35:00

[sim]
port = {port}

[[counties]]{counties}"""
    assert head  # the example's own settings are replaced above, its hierarchy kept
    path.write_text(config, encoding="utf-8")


@dataclass
class Service:
    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    start_timeout: float = START_TIMEOUT
    """Seconds a start may take (the soak allows more: a busy machine once took over a minute)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        assert self.proc is None
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [str(VILLAGEWATCH), "run", "--config", str(self.config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        out.close()
        self.starts += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        async with aiohttp.ClientSession() as client:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"villagewatch exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    async with client.get(self.url + "api/state") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if loop.time() > deadline:
                    raise AssertionError(f"villagewatch did not start in {self.start_timeout} s:\n{self.tail()}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        """SIGTERM and wait: the clean stop."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:] if self.log.exists() else ""


@dataclass
class Poster:
    """Sends each chat's messages in order, one at a time, each with an id; a message counts as accepted
    only when the simulator answered 200, and is sent again (same id) until it is."""

    service: Service
    messages: dict[str, list[tuple[str, str, str]]]
    """chat → [(id, sender, text)] in order."""
    accepted: list[str] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)

    async def run(self, *, stop_after: int | None = None) -> None:
        """Post until every message is accepted, or until ``stop_after`` more were (then return)."""
        goal = None if stop_after is None else len(self.accepted) + stop_after
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:
            await asyncio.gather(*(self._chat(client, chat, goal) for chat in self.messages))

    async def _chat(self, client: aiohttp.ClientSession, chat: str, goal: int | None) -> None:
        for message_id, sender, body in self.messages[chat]:
            if message_id in self.accepted:
                continue
            if goal is not None and len(self.accepted) >= goal:
                return
            self.attempts[message_id] += 1
            data = {"id": message_id, "sender": sender, "chat": chat, "text": body}
            try:
                async with client.post(self.service.url + "api/send", data=data) as response:
                    if response.status != 200:
                        return  # stopping: this chat waits for the restart
            except (TimeoutError, aiohttp.ClientError):
                return  # killed mid-request: unknown whether it was stored; sent again after the restart
            self.accepted.append(message_id)


def script(count: int) -> dict[str, list[tuple[str, str, str]]]:
    senders = ("高某林", "村民甲", "村民乙", "村民丙")
    chats: dict[str, list[tuple[str, str, str]]] = {group: [] for group in GROUPS}
    for n in range(count):
        group = GROUPS[n % len(GROUPS)]
        chats[group].append((f"m{n:04d}", senders[n % len(senders)], f"{TEXTS[n % len(TEXTS)]}({n})"))
    return chats


def journal(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "sim" / "demo.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class Outcome:
    """What a run left behind, to compare with another run of the same messages."""

    stored: Counter[str]
    """the id the client gave → how many message rows."""
    tickets: int
    outbox: Counter[str]
    """dedupe key → rows."""
    outbox_unsent: int
    delivered: Counter[str]
    """dedupe key → how many times the simulator showed the reply."""
    accepted: set[str]
    job_runs: Counter[tuple[str, str]]
    jobs_unfinished: int

    @property
    def reply_kinds(self) -> Counter[str]:
        return Counter(key.split(":", 1)[0] for key in self.outbox.elements())


async def outcome(db_url: str, data_dir: Path) -> Outcome:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            stored = Counter(
                str(row[0]).removeprefix("sim-id-")
                for row in await conn.execute(text("SELECT platform_id FROM messages"))
            )
            tickets = (await conn.execute(text("SELECT count(*) FROM tickets"))).scalar_one()
            outbox = Counter(row[0] for row in await conn.execute(text("SELECT dedupe_key FROM outbox")))
            unsent = (await conn.execute(text("SELECT count(*) FROM outbox WHERE status <> 'sent'"))).scalar_one()
            runs = Counter((row[0], row[1]) for row in await conn.execute(text("SELECT job, run_key FROM job_runs")))
            unfinished = (await conn.execute(text("SELECT count(*) FROM job_runs WHERE done_at IS NULL"))).scalar_one()
    finally:
        await engine.dispose()
    records = journal(data_dir)
    delivered = Counter(r["key"] for r in records if r.get("from_bot") and r.get("key"))
    accepted = {str(r["accepted"]) for r in records if "accepted" in r}
    return Outcome(
        stored=stored,
        tickets=int(tickets),
        outbox=outbox,
        outbox_unsent=int(unsent),
        delivered=delivered,
        accepted=accepted,
        job_runs=runs,
        jobs_unfinished=int(unfinished),
    )


async def settled(db_url: str, data_dir: Path, *, timeout: float = 60.0) -> Outcome:
    """Wait until every queued reply was sent and every claimed job finished, then return the outcome."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await outcome(db_url, data_dir)
        if result.outbox_unsent == 0 and result.jobs_unfinished == 0:
            return result
        if loop.time() > deadline:
            return result
        await asyncio.sleep(0.1)


def at_seconds_from_now(seconds: float, tz: Any) -> time:
    moment = datetime.now(tz).timestamp() + seconds
    return datetime.fromtimestamp(moment, tz).time().replace(microsecond=0)
