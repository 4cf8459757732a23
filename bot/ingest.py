"""The inbound pipeline: store → classify → flag → hand to the workflow, in one transaction per message.

One transaction means a crash leaves a message either fully handled (stored, classified, ticket and reply
rows committed) or not at all, and the unique (account, platform_id) makes a redelivered message a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import CHINA, Clock
from bot.directory import Directory
from bot.errors import InputError
from bot.media import MediaStore
from bot.messages import IncomingMessage, MessageKind
from bot.stats import Stats
from bot.voice import VoiceStore
from classifiers import Classification as Result
from classifiers import ClassifierHolder, Match
from classifiers.banquet import extract as extract_banquet
from classifiers.model import RED_FLAGS
from storage.engine import SessionFactory, single_statement_sessions
from storage.models import Classification, Flag, Group, Member, Message
from storage.repos import banquets as banquets_repo
from storage.repos import history as history_repo
from storage.repos import image_texts as images_repo
from storage.repos import media_notes as notes_repo
from storage.repos import messages as messages_repo

log = logging.getLogger(__name__)

UNKNOWN_SENDER = "unknown-sender"
ATTEMPTS = 3
"""How many times a message is tried before it is kept raw."""
RETRY_PAUSE = 0.05
"""Seconds before the second try (twice that before the third): lets a conflicting transaction finish."""
_IDENTITY = ("account", "platform_id", "at", "raw", "media_path", "text", "kind", "private")
"""Columns of a kept-raw row a re-run leaves as they were stored."""

Downloader = Callable[[IncomingMessage], Awaitable[bytes]]
WITH_NOTES = frozenset({MessageKind.VOICE, MessageKind.LINK, MessageKind.FILE})
"""Kinds stored with a row of their own beside the message (a voice note, a card): never batched."""

OFFICIAL_ROLES = ("cadre", "staff")
"""Senders whose images are read but never raise a flag or move a ticket by what they show (resolution
photos, notices): a cadre is never flagged by a picture alone."""
NO_FILE = "no_file"


class ImageInbox:
    """Where the ingest tells the image reader (bot.ocr) that images wait to be read.

    The queue itself is the ``image_texts`` table (rows ``pending``), so nothing waits only in memory:
    this is the doorbell. ``enabled`` is ``[ocr] enabled``: when False, images are stored and never read.
    """

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.ring = asyncio.Event()

    def wake(self) -> None:
        self.ring.set()


@dataclass(slots=True)
class Inbound:
    """A stored, classified message as the workflow sees it."""

    message: Message
    incoming: IncomingMessage
    group: Group | None
    sender: Member
    result: Result
    now: datetime

    @property
    def message_id(self) -> int:
        assert self.message.id is not None
        return self.message.id


class Workflow(Protocol):
    async def handle(self, session: AsyncSession, inbound: Inbound) -> None: ...

    def wants(self, inbound: Inbound) -> bool:
        """Whether ``handle`` could do anything with the message; decided without the database."""
        ...


class NoWorkflow:
    async def handle(self, session: AsyncSession, inbound: Inbound) -> None:
        return None

    def wants(self, inbound: Inbound) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class RerunResult:
    handled: int
    """Messages now classified, flagged and handed to the workflow."""
    failed: int
    """Messages that failed again (logged) and stay kept raw."""
    remaining: int
    """Messages kept raw after the run (these and any kept raw meanwhile)."""


@dataclass(slots=True)
class Batch:
    """Rows a replay or an import stores many to a statement, before it commits.

    Only messages nothing else refers to wait here: chat that raises no flag and that the workflow has
    no step for. They leave nothing behind but their own two rows, so storing them at the end of the run,
    with ON CONFLICT DO NOTHING deciding which are new, ends as storing each at once would; only their
    ids come after those of the run's other messages (everything orders messages by time, not id).
    """

    messages: list[tuple[dict[str, Any], Result]] = field(default_factory=list)
    classifications: list[dict[str, Any]] = field(default_factory=list)

    def clear(self) -> None:
        self.messages.clear()
        self.classifications.clear()


def _matches(matches: tuple[Match, ...]) -> list[dict[str, Any]]:
    return [{"rule": m.rule, "keywords": list(m.keywords), "label": m.label} for m in matches]


def classification_row(message_id: int | None, result: Result) -> dict[str, Any]:
    """The stored form of a classifier result, as the row's values (also used by `reclassify`); without
    ``message_id`` when the message is not stored yet.

    Values, not a model: building a validated model cost more than classifying a chat message.
    """
    row: dict[str, Any] = {} if message_id is None else {"message_id": message_id}
    return row | {
        "labels": list(result.labels),
        "category": result.category,
        "severity": result.severity,
        "matches": _matches(result.matches),
        "shadow_matches": _matches(result.shadow_matches),
        "ruleset_version": result.ruleset_version,
        "review": list(result.review),
        "model_version": result.model_version,
    }


def build_flag(message: Message, result: Result, *, from_image: bool = False) -> Flag | None:
    """The patrol-digest entry for a message with a red-flag label, else None (also used by `reclassify`).

    Clues and private reports are confidential: staff only, never a cadre.
    """
    confirmed = [label for label in result.labels if label in RED_FLAGS]
    red = confirmed + [label for label in result.review if label not in confirmed]
    if not red:
        return None
    assert message.id is not None
    return Flag(
        message_id=message.id,
        at=message.at,
        group_name=message.group_name,
        sender_name=message.sender_name,
        role=message.role,
        county=message.county,
        township=message.township,
        village=message.village,
        labels=list(result.labels) + [label for label in result.review if label not in result.labels],
        severity=result.severity or "normal",
        rules=[m.rule for m in result.matches],
        keywords=sorted({k for m in result.matches for k in m.keywords} | {w for r in result.reasons for w in r.words}),
        confidential="clue" in red or message.private,
        # 请核查 only when no red flag reached its precise threshold: the digest shows the tier on the card.
        tier="confirmed" if confirmed else "review",
        reasons={r.label: list(r.words) for r in result.reasons},
        from_image=from_image,
    )


async def store_banquet(session: AsyncSession, message: Message) -> None:
    """The date, place, host, event and scale of a banquet-flagged message, stored with its flag.

    Relative dates (明天, 本周六) and years are taken from the message's own time in China."""
    assert message.id is not None
    await banquets_repo.add(session, message_id=message.id, values=banquet_values(message.text or "", message.at))


def banquet_values(text: str, at: datetime) -> dict[str, Any]:
    """The banquet details of a text sent at ``at``, as the columns of its ``banquets`` row."""
    details = extract_banquet(text, at.astimezone(CHINA))
    values = details.as_json()
    values["date"] = details.date
    return values


def url_host(url: str) -> str:
    """The host of a shared link's address, for its card ('' for anything but http(s): never a live link)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https"):
        return ""
    return (parts.hostname or "")[:200]


MAX_TRANSCRIPT = 2000


@dataclass(frozen=True, slots=True)
class Transcribed:
    message_id: int
    changed: bool
    """False when a machine transcript was not taken (staff had typed one)."""
    handled: bool
    """The workflow saw the message (its first transcript): a demand's ticket was opened then."""
    labels: tuple[str, ...] = ()


class Ingest:
    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        classifiers: ClassifierHolder,
        directory: Directory,
        workflow: Workflow,
        media: MediaStore,
        clock: Clock,
        stats: Stats | None = None,
        voice: VoiceStore | None = None,
        images: ImageInbox | None = None,
    ) -> None:
        self._sessions = session_factory
        self.voice = voice or VoiceStore(media)
        self.after_voice: Callable[[int, str | None], Coroutine[Any, Any, None]] | None = None
        """Called beside handling for each new voice message (the speech-recognition hook), if set."""
        self._background: set[asyncio.Task[None]] = set()
        self._images = images or ImageInbox(enabled=False)
        self._statements = single_statement_sessions(session_factory)
        self._classifiers = classifiers
        self._directory = directory
        self._workflow = workflow
        self._media = media
        self._clock = clock
        self.stats = stats or Stats()

    async def handle(self, incoming: IncomingMessage, *, download: Downloader | None = None) -> int | None:
        """Handle one message; never raises, so one bad message never stops the bot. Returns the stored id.

        A failure rolls the message's transaction back and the message is tried again (a deadlock, a lost
        connection or a constraint met by a message handled beside it pass); one that fails every time is
        kept raw, marked for staff to see and re-run (``rerun_kept_raw``).
        """
        media_path: str | None = None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if attempt == 1:
                    media_path = await self._fetch_media(incoming, download)
                stored = await self._store_and_handle(incoming, media_path)
                if stored is not None and incoming.kind == MessageKind.VOICE and self.after_voice is not None:
                    task = asyncio.create_task(self.after_voice(stored, media_path))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
                return stored
            except Exception as exc:
                if attempt < ATTEMPTS:
                    log.warning(
                        "message %s from %s failed (%s: %s); trying again (%d/%d)",
                        incoming.platform_id,
                        incoming.sender_name,
                        type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "",
                        attempt + 1,
                        ATTEMPTS,
                    )
                    self.stats.count("retried")
                    await asyncio.sleep(RETRY_PAUSE * attempt)
                    continue
                log.exception(
                    "failed to handle message %s from %s %d times; kept raw for staff to re-run",
                    incoming.platform_id,
                    incoming.sender_name,
                    ATTEMPTS,
                )
        self.stats.count("failed")
        return await self._store_raw(incoming, media_path)

    async def _fetch_media(self, incoming: IncomingMessage, download: Downloader | None) -> str | None:
        if incoming.kind not in (MessageKind.IMAGE, MessageKind.FILE, MessageKind.VOICE):
            return None
        data = incoming.media
        if data is None and download is not None and incoming.attachment_ref:
            try:
                data = await download(incoming)
            except Exception as exc:
                log.warning("could not download %s of message %s: %s", incoming.kind, incoming.platform_id, exc)
                self.stats.count("download_failed")
                return None
        if not data:
            return None
        relative = self._media.save(data, name=incoming.attachment_name)
        if incoming.kind == MessageKind.VOICE:
            await asyncio.to_thread(self.voice.decode, relative)  # decoded once, before the transaction
        return relative

    async def _store_and_handle(self, incoming: IncomingMessage, media_path: str | None) -> int | None:
        async with self._sessions() as session:
            try:
                message_id = await self.process(session, incoming, media_path)
                if message_id is None:
                    # Stored before. Closing the session rolls back; an explicit rollback would also expire
                    # the cached groups and people it loaded, which handlers of other chats may be using.
                    self.forget_uncommitted()
                    return None
                await session.commit()
            except BaseException:
                self.forget_uncommitted()
                raise
            if self._images.enabled and incoming.kind == MessageKind.IMAGE:
                self._images.wake()
            return message_id

    async def drain(self) -> None:
        """Wait for the background work started for stored messages (speech recognition)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def forget_uncommitted(self) -> None:
        """After a rollback, cached groups or people created in it may not exist: drop the cache."""
        self._directory.forget()

    async def prepare(self, incoming: IncomingMessage, *, download: Downloader | None = None) -> str | None:
        """Fetch and store the message's file, outside any transaction (a download can be slow)."""
        return await self._fetch_media(incoming, download)

    async def process(
        self,
        session: AsyncSession,
        incoming: IncomingMessage,
        media_path: str | None,
        *,
        batch: Batch | None = None,
    ) -> int | None:
        """Store, classify, flag and hand on one message inside the caller's transaction; raises on failure.

        Returns the stored id, or None when the message was stored before. The live bot commits each
        message on its own (``handle``). A replay or an import commits a run of messages at once, which
        is safe there because the script can be run again, and passes ``batch``: chat that needs nothing
        more waits in it (None is returned) until ``store_batch`` writes it many rows to a statement.
        """
        values, inbound = await self._resolve(session, incoming, media_path)
        result, sender, message = inbound.result, inbound.sender, inbound.message
        red = any(label in RED_FLAGS for label in result.labels + result.review)
        to_read = self._images.enabled and incoming.kind == MessageKind.IMAGE
        # plain chat: no flag, no image to read, no voice note or card, nothing for the ticket workflow
        plain = not red and not to_read and incoming.kind not in WITH_NOTES and not self._workflow.wants(inbound)
        if batch is not None and plain:
            batch.messages.append((values, result))
            self._log(incoming.platform_id, message, sender, result)
            return None
        if batch is None:  # the live bot: the message and its classification in one statement
            row = classification_row(None, result)
            if plain and not session.in_transaction():
                return await self._store_alone(values, row, inbound)
            message_id = await messages_repo.insert_classified(session, values=values, classification=row)
        else:
            message_id = await messages_repo.insert_message(session, values=values)
        if message_id is None:
            self.stats.count("duplicate")
            return None
        return await self._finish(session, message_id, values, inbound, batch, classified=batch is None)

    async def _store_alone(self, values: dict[str, Any], row: dict[str, Any], inbound: Inbound) -> int | None:
        """Chat that needs nothing more, whose group and sender came from the cache (nothing written yet):
        its one statement commits by itself (PostgreSQL: no BEGIN and COMMIT round trips). Atomic as the
        whole transaction would be: the message is stored with its classification and its search entry, or
        not at all."""
        async with self._statements() as alone:
            message_id = await messages_repo.insert_classified(alone, values=values, classification=row)
            await alone.commit()
        if message_id is None:
            self.stats.count("duplicate")
            return None
        self.stats.count("handled")
        self._log(message_id, inbound.message, inbound.sender, inbound.result)
        return message_id

    async def _resolve(
        self, session: AsyncSession, incoming: IncomingMessage, media_path: str | None
    ) -> tuple[dict[str, Any], Inbound]:
        """The message's group and sender (created when new), its row's values and its classification."""
        group: Group | None = None
        if incoming.group_id is not None:
            group = await self._directory.group_for(
                session, platform_id=incoming.group_id, topic=incoming.group_topic, account=incoming.account
            )
        # A payload that failed to load may come without a sender: keep the message, under "unknown".
        sender = await self._directory.member_for(
            session,
            platform_id=incoming.sender_id or UNKNOWN_SENDER,
            name=incoming.sender_name or "未知发送者",
            group=group,
        )
        values = self._row(incoming, group, sender, media_path)
        result = self._classifiers.current.classify(incoming.text, role=sender.role)
        message = Message.model_construct(**values)  # the row being stored: no validation
        return values, Inbound(message, incoming, group, sender, result, self._clock.now())

    async def _finish(
        self,
        session: AsyncSession,
        message_id: int,
        values: dict[str, Any],
        inbound: Inbound,
        batch: Batch | None = None,
        *,
        classified: bool = False,
    ) -> int:
        """Classification (unless stored with the message: ``classified``), flag and workflow for a message
        stored as ``message_id``."""
        result, sender = inbound.result, inbound.sender
        message = Message.model_construct(id=message_id, **values)
        inbound = replace(inbound, message=message)
        row = classification_row(message_id, result)
        if batch is not None:
            batch.classifications.append(row)
        elif not classified:
            await messages_repo.add_classifications(session, [row])
        await self._store_notes(session, message_id, inbound.incoming, values.get("media_path"))
        flag = build_flag(message, result)
        if flag is not None:
            await messages_repo.add_flag(session, flag)
            self.stats.count("flagged")
            if "banquet" in flag.labels:
                await store_banquet(session, message)
        if self._images.enabled and message.kind == MessageKind.IMAGE:
            await self._queue_image(session, message)
        await self._workflow.handle(session, inbound)
        self.stats.count("handled")
        self._log(message_id, message, sender, result)
        return message_id

    async def _store_notes(
        self, session: AsyncSession, message_id: int, incoming: IncomingMessage, media_path: str | None
    ) -> None:
        """A voice message's note (its decoded audio, or why there is none) and a link's or a file's card."""
        if incoming.kind == MessageKind.VOICE:
            audio = await asyncio.to_thread(self.voice.decode, media_path)  # a cache hit: decoded on fetch
            if audio.status != "ok":
                self.stats.count("voice_undecodable")
            await notes_repo.add_voice(
                session,
                message_id=message_id,
                status=audio.status,
                duration_ms=audio.duration_ms,
                audio_path=audio.audio_path,
                error=audio.error,
            )
        elif incoming.kind == MessageKind.LINK and incoming.card is not None:
            card = incoming.card
            await notes_repo.add_card(
                session,
                message_id=message_id,
                values={
                    "kind": "mini_program" if card.mini_program else "link",
                    "title": card.title[:500],
                    "description": card.description[:2000],
                    "host": url_host(card.url),
                },
            )
        elif incoming.kind == MessageKind.FILE:
            size = len(incoming.media) if incoming.media is not None else self._media.size(media_path)
            name = incoming.attachment_name or incoming.text or ""
            await notes_repo.add_card(
                session, message_id=message_id, values={"kind": "file", "file_name": name[:500], "size_bytes": size}
            )

    async def _queue_image(self, session: AsyncSession, message: Message) -> None:
        """An image to read after the message is committed: a durable ``pending`` row, in this transaction."""
        assert message.id is not None
        if message.media_path:
            await images_repo.add_pending(session, message_id=message.id, account=message.account, at=message.at)
            return
        log.warning("image message %s has no file to read (the download failed); kept, marked", message.id)
        await images_repo.add_result(
            session, message_id=message.id, account=message.account, at=message.at, status="failed", error=NO_FILE
        )

    async def handle_image_text(self, message_id: int, *, status: str, text: str, error: str | None) -> bool:
        """What was read from a stored image: recorded, and the text classified like typed text, in one
        transaction that also marks the image read, so a crash before the commit leaves it pending (read
        again after the restart) and after it, done: classified exactly once. Never raises.

        The text is marked as coming from the image (its flag's ``from_image``). Images of cadres and staff
        (resolution photos, notices) are read and their text classified, but raise no flag and move no
        ticket. Returns whether this call recorded it (False: it was no longer pending).
        """
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._image_text(message_id, status=status, text=text, error=error)
            except Exception as exc:
                if attempt < ATTEMPTS:
                    log.warning("classifying the text of image %s failed (%s); trying again", message_id, exc)
                    await asyncio.sleep(RETRY_PAUSE * attempt)
                    continue
                log.exception(
                    "classifying the text of image %s failed %d times; its text is kept", message_id, ATTEMPTS
                )
        try:  # keep the text, unclassified, so the image is not read again and again
            async with self._sessions() as session:
                done = await images_repo.finish(
                    session,
                    message_id=message_id,
                    status="failed",
                    text=text,
                    error="classify_failed",
                    labels=[],
                    at=self._clock.now(),
                )
                await session.commit()
                return done
        except Exception:
            log.exception("could not record the text of image %s; it stays pending", message_id)
            return False

    async def _image_text(self, message_id: int, *, status: str, text: str, error: str | None) -> bool:
        async with self._sessions() as session:
            try:
                stored = await messages_repo.get_message(session, message_id)
                if stored is None:
                    return False
                now = self._clock.now()
                if status != "done" or not text.strip():
                    done = await images_repo.finish(
                        session, message_id=message_id, status=status, text=text, error=error, labels=[], at=now
                    )
                    await session.commit()
                    return done
                incoming = replace(await self._incoming_from(session, stored), kind=MessageKind.TEXT, text=text)
                values, inbound = await self._resolve(session, incoming, stored.media_path)
                result = inbound.result
                if not await images_repo.finish(
                    session,
                    message_id=message_id,
                    status=status,
                    text=text,
                    error=None,
                    labels=list(result.labels),
                    at=now,
                ):
                    self.forget_uncommitted()
                    return False
                message = Message.model_construct(id=message_id, **values)
                inbound = replace(inbound, message=message)
                old = await messages_repo.get_classification(session, message_id)
                if old is None or set(old.labels) <= {"chat"}:
                    await session.merge(Classification(**classification_row(message_id, result)))
                if inbound.sender.role not in OFFICIAL_ROLES:
                    await self._image_flag(session, message, result)
                    await self._workflow.handle(session, inbound)
                await session.commit()
            except BaseException:
                self.forget_uncommitted()
                raise
        self.stats.count("image_read")
        self._log(message_id, message, inbound.sender, result)
        return True

    async def _image_flag(self, session: AsyncSession, message: Message, result: Result) -> None:
        """The flag the recognised text raises, unless the message's typed text raised one already."""
        assert message.id is not None
        flag = build_flag(message, result, from_image=True)
        if flag is None or await messages_repo.flag_of(session, message.id) is not None:
            return
        await messages_repo.add_flag(session, flag)
        self.stats.count("flagged")
        if "banquet" in flag.labels:
            await store_banquet(session, message)

    async def store_batch(self, session: AsyncSession, batch: Batch) -> None:
        """Write the batch: its waiting chat and the classifications of messages already stored."""
        if batch.messages:
            rows = [(values, classification_row(None, result)) for values, result in batch.messages]
            stored = await messages_repo.store_chat(session, rows)
            self.stats.count("handled", stored)
            self.stats.count("duplicate", len(rows) - stored)
            batch.messages.clear()
        if batch.classifications:
            await messages_repo.add_classifications(session, batch.classifications)
            batch.classifications.clear()

    def _log(self, ref: int | str, message: Message, sender: Member, result: Result) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "message %s in %s from %s (%s): %s %s",
                ref,
                message.group_name or "private",
                message.sender_name,
                sender.role,
                "/".join(result.labels),
                ",".join(m.rule for m in result.matches),
            )

    def _row(
        self, incoming: IncomingMessage, group: Group | None, sender: Member, media_path: str | None
    ) -> dict[str, Any]:
        place = group if group is not None else sender
        return {
            "account": incoming.account,
            "platform_id": incoming.platform_id,
            "at": incoming.at,
            "group_name": group.name if group else None,
            "private": incoming.is_private,
            "sender_platform_id": incoming.sender_id,
            "sender_name": incoming.sender_name or sender.name,
            "role": sender.role,
            "kind": str(incoming.kind),
            "text": incoming.text,
            "media_path": media_path,
            "raw": incoming.raw,
            "unassigned": (group is not None and not group.configured)
            or (group is None and not sender.on_roster and not sender.village),
            "county": place.county,
            "township": place.township,
            "village": place.village,
        }

    async def _store_raw(self, incoming: IncomingMessage, media_path: str | None) -> int | None:
        """Last resort after a failure: keep the message as it came, unclassified and marked ``kept_raw``,
        so nothing is lost and staff see it (/health, the dashboard) and can run it through again."""
        try:
            async with self._sessions() as session:
                message_id = await messages_repo.insert_message(
                    session,
                    values={
                        "account": incoming.account,
                        "platform_id": incoming.platform_id,
                        "at": incoming.at,
                        # the name ``group_for`` gives the room, so a re-run finds or makes the same group
                        "group_name": incoming.group_topic or incoming.group_id,
                        "private": incoming.is_private,
                        "sender_platform_id": incoming.sender_id,
                        "sender_name": incoming.sender_name,
                        "kind": str(incoming.kind),
                        "text": incoming.text,
                        "media_path": media_path,
                        "raw": incoming.raw,
                        "unassigned": True,
                        "kept_raw": True,
                    },
                )
                await session.commit()
                if message_id is not None:
                    self.stats.count("kept_raw")
                return message_id
        except Exception:
            log.exception("could not even store message %s raw", incoming.platform_id)
            return None

    async def rerun_kept_raw(self, *, batch: int = 200) -> RerunResult:
        """Run every message kept raw through the whole pipeline again, oldest first, each in its own
        transaction: its group and sender are looked up, it is classified and flagged, and the workflow
        opens its ticket and queues the bot's reply, as if it had just arrived.

        Safe beside the live bot and a second re-run: a message is taken only while it is still marked.
        One that fails again stays kept raw (and is logged); the others go on.
        """
        handled = failed = 0
        after = 0
        while True:
            async with self._sessions() as session:
                ids = await messages_repo.kept_raw_ids(session, after_id=after, limit=batch)
            if not ids:
                break
            for message_id in ids:
                after = message_id
                try:
                    done = await self._rerun_one(message_id)
                except Exception:
                    log.exception("re-running kept-raw message %s failed; it stays kept raw", message_id)
                    failed += 1
                    continue
                handled += done
        async with self._sessions() as session:
            remaining = await messages_repo.count_kept_raw(session)
        if handled or failed:
            log.info("re-ran kept-raw messages: %d handled, %d failed, %d still kept raw", handled, failed, remaining)
        return RerunResult(handled=handled, failed=failed, remaining=remaining)

    async def _rerun_one(self, message_id: int) -> bool:
        async with self._sessions() as session:
            try:
                stored = await messages_repo.get_message(session, message_id)
                if stored is None or not stored.kept_raw:
                    return False
                incoming = await self._incoming_from(session, stored)
                values, inbound = await self._resolve(session, incoming, stored.media_path)
                kept = {k: v for k, v in values.items() if k not in _IDENTITY}
                if not await messages_repo.claim_kept_raw(session, message_id, values=kept):
                    # Another run took it. No explicit rollback: it would expire the cached groups and
                    # people this session loaded while other handlers use them; closing rolls back.
                    self.forget_uncommitted()
                    return False
                await self._finish(session, message_id, values, inbound)
                await session.commit()
            except BaseException:
                self.forget_uncommitted()
                raise
        self.stats.count("rerun")
        return True

    async def transcribe(self, message_id: int, text: str, *, by: str, machine: bool = False) -> Transcribed:
        """What was said in a voice message, typed by staff (``by``) or returned by a speech service
        (``machine``): it becomes the message's text and goes through the pipeline as typed text would.

        The classification is replaced; a red flag enters the digest (with banquet details); the workflow
        (a demand's ticket and its acknowledgement, a cadre's ``#12`` command, an alert) runs only while no
        ticket came of the message and it had no flag, so editing a transcript never opens a second ticket.
        A machine transcript never replaces one staff typed. Raises InputError (Chinese) on a bad request.
        """
        text = text.strip()
        if not text:
            raise InputError("转写内容不能为空")
        if len(text) > MAX_TRANSCRIPT:
            raise InputError(f"转写内容太长(不能超过 {MAX_TRANSCRIPT} 字)")
        async with self._sessions() as session:
            try:
                outcome = await self._transcribe(session, message_id, text, by=by, machine=machine)
                await session.commit()
            except BaseException:
                self.forget_uncommitted()
                raise
        log.info("voice message %s transcribed by %s (%s)", message_id, by, "machine" if machine else "staff")
        return outcome

    async def _transcribe(
        self, session: AsyncSession, message_id: int, text: str, *, by: str, machine: bool
    ) -> Transcribed:
        stored = await messages_repo.get_message(session, message_id)
        if stored is None or stored.kind != MessageKind.VOICE or stored.kept_raw:
            raise InputError("找不到这条语音消息")
        note = await notes_repo.get_voice(session, message_id)
        if machine and note is not None and note.transcript_source == "staff":
            return Transcribed(message_id, changed=False, handled=False)
        had_flag = await messages_repo.get_flag(session, message_id) is not None
        had_ticket = await notes_repo.has_ticket(session, message_id)
        incoming = replace(await self._incoming_from(session, stored), text=text)
        values, inbound = await self._resolve(session, incoming, stored.media_path)
        await notes_repo.set_transcript(
            session,
            message_id=message_id,
            text=text,
            source="machine" if machine else "staff",
            by=by,
            at=self._clock.now(),
        )
        await messages_repo.set_text(session, message_id, text)
        result = inbound.result
        message = Message.model_construct(id=message_id, **{**values, "text": text})
        inbound = replace(inbound, message=message)
        flag = build_flag(message, result)
        await history_repo.replace_classification(
            session, classification=Classification(**classification_row(message_id, result)), flag=flag
        )
        if flag is not None and "banquet" in flag.labels and not await banquets_repo.by_message(session, [message_id]):
            await store_banquet(session, message)
        handled = not had_flag and not had_ticket
        if handled:
            await self._workflow.handle(session, inbound)
        self._log(message_id, message, inbound.sender, result)
        return Transcribed(message_id, changed=True, handled=handled, labels=tuple(result.labels))

    async def _incoming_from(self, session: AsyncSession, stored: Message) -> IncomingMessage:
        """The message as an adapter would have handed it on, rebuilt from its raw row."""
        group_id: str | None = None
        if not stored.private and stored.group_name:
            group = await self._directory.group_named(session, stored.group_name)
            group_id = group.platform_id if group is not None and group.platform_id else stored.group_name
        try:
            kind = MessageKind(stored.kind)
        except ValueError:
            kind = MessageKind.OTHER
        return IncomingMessage(
            platform_id=stored.platform_id,
            account=stored.account,
            at=stored.at,
            kind=kind,
            text=stored.text,
            sender_id=stored.sender_platform_id,
            sender_name=stored.sender_name,
            group_id=group_id,
            group_topic=stored.group_name if group_id is not None else None,
            raw=stored.raw,
        )
