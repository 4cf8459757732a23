"""`villagewatch replay`: a scripted conversation through the real pipeline on a simulated clock.

The whole script is parsed and validated before anything runs, so a bad line stops the replay with its
file and line and nothing half-applied. The clock is stored in the database, so a second script replayed
on the same `--db` continues where the first left off (tickets, scheduled jobs, clock).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.adapters.base import AdapterHealth, AdapterState, MessageHandler
from bot.clock import CHINA, SimulatedClock
from bot.config import Config
from bot.directory import RosterEntry
from bot.errors import InputError
from bot.ingest import Batch
from bot.messages import IncomingMessage, MessageKind, OutgoingMessage, RoomMember
from bot.services import Services, build_services
from storage.repos import state

log = logging.getLogger(__name__)

CLOCK_KEY = "replay:clock"


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberLine(_Line):
    kind: Literal["member"]
    name: str = Field(min_length=1)
    role: Literal["villager", "party_member", "cadre", "staff"]
    group: str = ""
    village: str = ""
    township: str = ""
    county: str = ""
    categories: list[str] = Field(default_factory=list)
    head: bool = False


class MessageLine(_Line):
    kind: Literal["message"]
    at: datetime
    sender: str = Field(min_length=1)
    group: str | None = None
    private: bool = False
    text: str | None = None
    image: str | None = None

    @model_validator(mode="after")
    def _check(self) -> MessageLine:
        if self.at.tzinfo is None:
            raise ValueError("at needs a time zone, e.g. 2026-09-07T06:48:00+08:00")
        if self.group is None and not self.private:
            raise ValueError('a message needs a group, or "private": true')
        if self.group is not None and self.private:
            raise ValueError('a message has either a group or "private": true, not both')
        if self.text is None and self.image is None:
            raise ValueError("a message needs text or image")
        return self


class TickLine(_Line):
    kind: Literal["tick"]
    at: datetime

    @model_validator(mode="after")
    def _aware(self) -> TickLine:
        if self.at.tzinfo is None:
            raise ValueError("at needs a time zone")
        return self


ScriptLine = Annotated[MemberLine | MessageLine | TickLine, Field(discriminator="kind")]
_LINE = TypeAdapter(ScriptLine)


@dataclass(frozen=True, slots=True)
class ParsedLine:
    number: int
    raw: str
    item: MemberLine | MessageLine | TickLine


def parse_script(path: Path) -> list[ParsedLine]:
    """Every line validated up front; the error names the file and line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    lines: list[ParsedLine] = []
    previous: datetime | None = None
    for number, raw_bytes in enumerate(data.splitlines(), start=1):
        try:
            raw = raw_bytes.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}:{number}: not UTF-8 (byte {exc.start})") from exc
        if not raw or raw.startswith("//"):
            continue
        try:
            item = _LINE.validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(
                (".".join(str(p) for p in err["loc"][1:]) + ": " if len(err["loc"]) > 1 else "") + err["msg"]
                for err in exc.errors()
            )
            raise InputError(f"{path}:{number}: {problems}") from exc
        if isinstance(item, MessageLine | TickLine):
            if previous is not None and item.at < previous:
                raise InputError(f"{path}:{number}: time {item.at.isoformat()} is before the line above")
            previous = item.at
        lines.append(ParsedLine(number, raw, item))
    return lines


@dataclass
class TranscriptAdapter:
    """Stands in for WeChat during a replay: whatever the bot sends becomes a transcript line."""

    account: str
    services: Services
    out: TextIO
    lines: list[dict[str, object]] = field(default_factory=list)

    async def start(self, on_message: MessageHandler) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: OutgoingMessage) -> str | None:
        image = None
        if message.image_path:
            image = str(self.services.media.path(message.image_path))
        line: dict[str, object] = {
            "at": (message.queued_at or self.services.clock.now()).astimezone(CHINA).isoformat(),
            "to": message.chat_name or message.chat_id,
            "text": message.text,
            "image": image,
            "mentions": list(message.mention_names),
        }
        self.lines.append(line)
        self.out.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.out.flush()
        return f"transcript:{len(self.lines)}"

    async def download(self, message: IncomingMessage) -> bytes:
        raise FileNotFoundError(message.attachment_ref or "no attachment")

    async def room_members(self, group_id: str) -> list[RoomMember]:
        return []

    def health(self) -> AdapterHealth:
        return AdapterHealth(self.account, "replay", AdapterState.CONNECTED, self.services.clock.now())


class _BatchRunner:
    """Handles a run of replayed messages in one transaction, then sends what the bot said in it.

    A run ends after ``MAX_RUN`` messages, before a member line, a tick or a due job, and at the end of
    the script. Chat waits in the ingest's batch and is stored many rows to a statement; replies are
    sent once the run is committed and transcribed at the time they were queued, so the transcript
    reads as if each was sent at once. If anything in a run fails, the run is rolled back and its
    messages are handled again one by one, each with the live bot's error boundary, so one bad message
    never takes its neighbours with it.
    """

    MAX_RUN = 500

    def __init__(self, services: Services, adapters: dict[str, TranscriptAdapter]) -> None:
        self._services = services
        self._adapters = adapters
        self._session: AsyncSession | None = None
        self._run: list[tuple[IncomingMessage, str | None]] = []
        self._batch = Batch()

    async def add(self, incoming: IncomingMessage) -> None:
        services = self._services
        adapter = self._adapters.get(incoming.account)
        media_path = await services.ingest.prepare(incoming, download=adapter.download if adapter else None)
        if self._session is None:
            self._session = services.sessions()
        self._run.append((incoming, media_path))
        try:
            await services.ingest.process(self._session, incoming, media_path, batch=self._batch)
        except Exception:
            log.exception("replayed message %s failed; handling its run one by one", incoming.platform_id)
            await self._retry_one_by_one()
            return
        if len(self._run) >= self.MAX_RUN:
            await self.flush()

    async def flush(self) -> None:
        if self._session is None:
            return
        session, self._session = self._session, None
        try:
            await self._services.ingest.store_batch(session, self._batch)
            await session.commit()
        except Exception:
            log.exception("committing a replayed run failed; handling it one by one")
            self._session = session
            await self._retry_one_by_one()
            return
        await session.close()
        self._run.clear()
        await self._services.outbox.send_due(self._adapters, pace=False)

    async def _retry_one_by_one(self) -> None:
        services = self._services
        if self._session is not None:
            await self._session.rollback()
            await self._session.close()
            self._session = None
        services.ingest.forget_uncommitted()
        self._batch.clear()
        clock = services.clock
        now = clock.now()
        for incoming, _ in self._run:
            if isinstance(clock, SimulatedClock):
                clock.rewind_to(incoming.at)
            adapter = self._adapters.get(incoming.account)
            await services.ingest.handle(incoming, download=adapter.download if adapter else None)
            await services.outbox.send_due(self._adapters, pace=False)
        if isinstance(clock, SimulatedClock):
            clock.rewind_to(now)
        self._run.clear()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.rollback()
            await self._session.close()
            self._session = None
        self._batch.clear()


def _platform_id(script: Path, line: ParsedLine) -> str:
    digest = hashlib.sha1(f"{script.name}\0{line.number}\0{line.raw}".encode()).hexdigest()[:20]
    return f"replay:{digest}"


def _incoming(script: Path, line: ParsedLine, item: MessageLine, account: str) -> IncomingMessage:
    media: bytes | None = None
    ref: str | None = None
    name: str | None = None
    if item.image is not None:
        image_path = (script.parent / item.image).resolve()
        ref, name = str(image_path), image_path.name
        # A missing file stands for a photo that failed to download: the pipeline must cope.
        media = image_path.read_bytes() if image_path.is_file() else None
    return IncomingMessage(
        platform_id=_platform_id(script, line),
        account=account,
        at=item.at,
        kind=MessageKind.IMAGE if item.image is not None else MessageKind.TEXT,
        text=item.text or "",
        sender_id=item.sender,
        sender_name=item.sender,
        group_id=item.group,
        group_topic=item.group,
        attachment_ref=ref,
        attachment_name=name,
        media=media,
    )


async def _start_clock(db_url: str, first: datetime | None) -> SimulatedClock:
    """The stored clock of an earlier replay on this database, else the script's first time."""
    from storage.engine import make_engine, make_session_factory
    from storage.migrate import upgrade

    engine = make_engine(db_url)
    try:
        await upgrade(engine)
        async with make_session_factory(engine)() as session:
            stored = await state.get_setting(session, CLOCK_KEY)
    finally:
        await engine.dispose()
    if stored is not None:
        return SimulatedClock(datetime.fromisoformat(stored))
    return SimulatedClock(first or datetime.now(CHINA))


async def run_replay(
    script: Path,
    *,
    config: Config,
    db_url: str,
    transcript: TextIO,
    media_root: Path | None = None,
) -> list[dict[str, object]]:
    """Replay ``script`` on the database at ``db_url``; returns the transcript lines it wrote."""
    lines = parse_script(script)
    first = next((ln.item.at for ln in lines if isinstance(ln.item, MessageLine | TickLine)), None)
    clock = await _start_clock(db_url, first)
    services = await build_services(config, clock=clock, db_url=db_url, media_root=media_root, migrate=False)
    adapters = {account.name: TranscriptAdapter(account.name, services, transcript) for account in config.accounts}
    runner = _BatchRunner(services, adapters)
    default_account = config.accounts[0].name
    try:
        for line in lines:
            item = line.item
            if isinstance(item, MemberLine):
                await runner.flush()
                async with services.sessions() as session:
                    await services.directory.add_member(
                        session,
                        RosterEntry(
                            name=item.name,
                            role=item.role,
                            village=item.village,
                            township=item.township,
                            county=item.county,
                            group=item.group,
                            categories=tuple(item.categories),
                            is_head=item.head,
                        ),
                    )
                    await session.commit()
                continue
            # Jobs run at their own times, so a reminder due at 08:30 is sent (and transcribed) at 08:30.
            if await services.scheduler.next_due(item.at) is not None:
                await runner.flush()
                while (fire := await services.scheduler.next_due(item.at)) is not None:
                    clock.advance_to(fire)
                    await services.scheduler.run_due(fire)
                    await services.outbox.send_due(adapters, pace=False)
            clock.advance_to(item.at)
            if isinstance(item, MessageLine):
                account = config.account_for_group(item.group) if item.group else default_account
                await runner.add(_incoming(script, line, item, account))
            else:
                await runner.flush()
        await runner.flush()
        async with services.sessions() as session:
            await state.set_setting(session, CLOCK_KEY, clock.now().isoformat())
            await session.commit()
    finally:
        await runner.close()
        await services.close()
    return [line for adapter in adapters.values() for line in adapter.lines]
