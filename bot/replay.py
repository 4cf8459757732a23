"""`villagewatch replay`: a scripted conversation through the real pipeline on a simulated clock.

The whole script is parsed and validated before anything runs, so a bad line stops the replay with its
file and line and nothing half-applied. The clock is stored in the database, so a second script replayed
on the same `--db` continues where the first left off (tickets, scheduled jobs, clock).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from bot.adapters.base import AdapterHealth, AdapterState, MessageHandler
from bot.batch import BatchRunner
from bot.clock import CHINA, SimulatedClock
from bot.config import Config
from bot.directory import RosterEntry
from bot.errors import InputError
from bot.messages import IncomingMessage, LinkCard, MessageKind, OutgoingMessage, RoomMember
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


class LinkLine(_Line):
    """A shared article, link or mini-program card."""

    title: str = ""
    description: str = ""
    url: str = ""
    mini_program: bool = False


class MessageLine(_Line):
    kind: Literal["message"]
    at: datetime
    sender: str = Field(min_length=1)
    group: str | None = None
    private: bool = False
    text: str | None = None
    image: str | None = None
    voice: str | None = None
    """A voice message: a SILK file, relative to the script's folder."""
    file: str | None = None
    link: LinkLine | None = None

    @model_validator(mode="after")
    def _check(self) -> MessageLine:
        if self.at.tzinfo is None:
            raise ValueError("at needs a time zone, e.g. 2026-09-07T06:48:00+08:00")
        if self.group is None and not self.private:
            raise ValueError('a message needs a group, or "private": true')
        if self.group is not None and self.private:
            raise ValueError('a message has either a group or "private": true, not both')
        attachments = [name for name in ("image", "voice", "file", "link") if getattr(self, name) is not None]
        if self.text is None and not attachments:
            raise ValueError("a message needs text or image (or voice, file, link)")
        if len(attachments) > 1:
            raise ValueError(f"a message carries one of image, voice, file and link, not {' and '.join(attachments)}")
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


@dataclass(frozen=True, slots=True)
class Script:
    """A script validated from end to end; iterating reads it again, a line at a time.

    Validating first means a bad line stops the run before anything is applied; reading again instead of
    keeping the parsed lines keeps a replay or import of a year of history in constant memory.
    """

    path: Path
    first_at: datetime | None
    """The time of the first message or tick, where a new replay's clock starts."""
    lines: int

    def __iter__(self) -> Iterator[ParsedLine]:
        return _read_script(self.path)


def parse_script(path: Path) -> Script:
    """Every line validated up front; the error names the file and line."""
    first: datetime | None = None
    count = 0
    for line in _read_script(path):
        count += 1
        if first is None and isinstance(line.item, MessageLine | TickLine):
            first = line.item.at
    return Script(path, first, count)


def _read_script(path: Path) -> Iterator[ParsedLine]:
    previous: datetime | None = None
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    with handle:
        for number, raw_bytes in enumerate(handle, start=1):
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
            yield ParsedLine(number, raw, item)


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


def _platform_id(script: Path, line: ParsedLine) -> str:
    digest = hashlib.sha1(f"{script.name}\0{line.number}\0{line.raw}".encode()).hexdigest()[:20]
    return f"replay:{digest}"


def _incoming(script: Path, line: ParsedLine, item: MessageLine, account: str) -> IncomingMessage:
    media: bytes | None = None
    ref: str | None = None
    name: str | None = None
    kind = MessageKind.TEXT
    text = item.text or ""
    card: LinkCard | None = None
    attachments = ((item.image, MessageKind.IMAGE), (item.voice, MessageKind.VOICE), (item.file, MessageKind.FILE))
    for attached, attached_kind in attachments:
        if attached is None:
            continue
        kind = attached_kind
        file_path = (script.parent / attached).resolve()
        ref, name = str(file_path), file_path.name
        # A missing file stands for one that failed to download: the pipeline must cope.
        media = file_path.read_bytes() if file_path.is_file() else None
        if kind == MessageKind.FILE and not text:
            text = name  # a file is classified by its name
    if item.link is not None:
        kind = MessageKind.LINK
        card = LinkCard(item.link.title, item.link.description, item.link.url, item.link.mini_program)
        text = card.text or text
    return IncomingMessage(
        platform_id=_platform_id(script, line),
        account=account,
        at=item.at,
        kind=kind,
        card=card,
        text=text,
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
    clock = await _start_clock(db_url, lines.first_at)
    services = await build_services(
        config, clock=clock, db_url=db_url, media_root=media_root, migrate=False, batch=True
    )
    adapters = {account.name: TranscriptAdapter(account.name, services, transcript) for account in config.accounts}
    # Replies are sent once their run is committed and transcribed at the time they were queued, so the
    # transcript reads as if each was sent at once.
    runner = BatchRunner(
        ingest=services.ingest,
        sessions=services.sessions,
        clock=clock,
        downloader=lambda account: adapters[account].download if account in adapters else None,
        after_commit=lambda: services.outbox.send_due(adapters, pace=False),
    )
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
                previous_fire: datetime | None = None
                while (fire := await services.scheduler.next_due(item.at)) is not None:
                    if fire == previous_fire:  # held by another live process (its lease): not ours to run
                        break
                    previous_fire = fire
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
