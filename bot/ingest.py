"""The inbound pipeline: store → classify → flag → hand to the workflow, in one transaction per message.

One transaction means a crash leaves a message either fully handled (stored, classified, ticket and reply
rows committed) or not at all, and the unique (account, platform_id) makes a redelivered message a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.directory import Directory
from bot.media import MediaStore
from bot.messages import IncomingMessage, MessageKind
from bot.stats import Stats
from classifiers import Classification as Result
from classifiers import ClassifierHolder, Match
from storage.engine import SessionFactory
from storage.models import Flag, Group, Member, Message
from storage.repos import messages as messages_repo

log = logging.getLogger(__name__)

RED_FLAGS = ("banquet", "gambling", "abuse", "clue", "spam")
UNKNOWN_SENDER = "unknown-sender"

Downloader = Callable[[IncomingMessage], Awaitable[bytes]]


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


def build_flag(message: Message, result: Result) -> Flag | None:
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
    )


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
    ) -> None:
        self._sessions = session_factory
        self._classifiers = classifiers
        self._directory = directory
        self._workflow = workflow
        self._media = media
        self._clock = clock
        self.stats = stats or Stats()

    async def handle(self, incoming: IncomingMessage, *, download: Downloader | None = None) -> int | None:
        """Handle one message; never raises, so one bad message never stops the bot. Returns the stored id."""
        try:
            media_path = await self._fetch_media(incoming, download)
            message_id = await self._store_and_handle(incoming, media_path)
        except Exception:
            log.exception("failed to handle message %s from %s", incoming.platform_id, incoming.sender_name)
            self.stats.count("failed")
            return await self._store_raw(incoming)
        return message_id

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
        return self._media.save(data, name=incoming.attachment_name)

    async def _store_and_handle(self, incoming: IncomingMessage, media_path: str | None) -> int | None:
        async with self._sessions() as session:
            try:
                message_id = await self.process(session, incoming, media_path)
                if message_id is None:
                    await session.rollback()
                    self.forget_uncommitted()
                    return None
                await session.commit()
            except BaseException:
                self.forget_uncommitted()
                raise
            return message_id

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
        inbound = Inbound(message, incoming, group, sender, result, self._clock.now())
        red = any(label in RED_FLAGS for label in result.labels + result.review)
        if batch is not None and not red and not self._workflow.wants(inbound):
            batch.messages.append((values, result))
            self._log(incoming.platform_id, message, sender, result)
            return None
        message_id = await messages_repo.insert_message(session, values=values)
        if message_id is None:
            self.stats.count("duplicate")
            return None
        message = Message.model_construct(id=message_id, **values)
        inbound = replace(inbound, message=message)
        row = classification_row(message_id, result)
        if batch is not None:
            batch.classifications.append(row)
        else:
            await messages_repo.add_classifications(session, [row])
        flag = build_flag(message, result)
        if flag is not None:
            await messages_repo.add_flag(session, flag)
            self.stats.count("flagged")
        await self._workflow.handle(session, inbound)
        self.stats.count("handled")
        self._log(message_id, message, sender, result)
        return message_id

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

    async def _store_raw(self, incoming: IncomingMessage) -> int | None:
        """Last resort after a failure: keep the message as it came, unclassified, so nothing is lost."""
        try:
            async with self._sessions() as session:
                message_id = await messages_repo.insert_message(
                    session,
                    values={
                        "account": incoming.account,
                        "platform_id": incoming.platform_id,
                        "at": incoming.at,
                        "group_name": incoming.group_topic,
                        "private": incoming.is_private,
                        "sender_platform_id": incoming.sender_id,
                        "sender_name": incoming.sender_name,
                        "kind": str(incoming.kind),
                        "text": incoming.text,
                        "raw": incoming.raw,
                        "unassigned": True,
                    },
                )
                await session.commit()
                return message_id
        except Exception:
            log.exception("could not even store message %s raw", incoming.platform_id)
            return None
