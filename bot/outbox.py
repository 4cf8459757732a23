"""Replies go into the outbox table in the same transaction as what caused them, and a sender drains it.

Why a table: a crash between deciding to reply and sending must neither lose the reply (the row is
committed with its cause) nor double it (the row's dedupe_key is derived from the cause, a sent row is
marked in its own transaction before the next is sent, and a row sent again after a crash carries the same
dedupe key for the adapter to drop). Pacing per account and per group protects personal-account bots,
which WeChat bans for bursts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.adapters.base import Adapter
from bot.clock import Clock
from bot.config import Config, PacingConfig
from bot.messages import OutgoingMessage
from classifiers.masking import mask_numbers
from storage.engine import SessionFactory, single_statement_sessions
from storage.models import Group, Member, Outbox
from storage.repos import directory as directory_repo
from storage.repos import outbox as outbox_repo

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 8
CLAIM = 50
"""Rows claimed per round trip."""


class OutboxService:
    def __init__(self, *, session_factory: SessionFactory, clock: Clock, config: Config) -> None:
        self._sessions = session_factory
        self._statements = single_statement_sessions(session_factory)
        """For a claim, a mark or a retry: each one atomic statement, committed by itself on PostgreSQL."""
        self._clock = clock
        self._config = config
        self._wakeup = asyncio.Event()
        self.enqueued = 0
        """How many rows this process has queued; a replay sends only when it grew."""
        self._last_account: dict[str, datetime] = {}
        self._last_chat: dict[tuple[str, str], datetime] = {}
        self.sent: Counter[str] = Counter()
        self.send_failures: Counter[str] = Counter()
        """Per account, since this process started (for /metrics)."""

    async def to_group(
        self,
        session: AsyncSession,
        *,
        key: str,
        group: Group,
        text: str | None = None,
        image_path: str | None = None,
        mentions: Sequence[Member] = (),
        not_before: datetime | None = None,
    ) -> int | None:
        """Queue a message into a group; returns None when ``key`` was queued before. ``not_before`` holds it
        back (a scheduled broadcast): the row waits in the table, so a restart neither loses nor doubles it."""
        account = group.account or self._config.account_for_group(group.name)
        return await self._enqueue(
            session,
            key=key,
            account=account,
            chat_id=group.platform_id or group.name,
            chat_name=group.name,
            is_group=True,
            text=text,
            image_path=image_path,
            mentions=mentions,
            not_before=not_before,
        )

    async def to_member(
        self,
        session: AsyncSession,
        *,
        key: str,
        member: Member,
        text: str | None = None,
        image_path: str | None = None,
        account: str | None = None,
        not_before: datetime | None = None,
    ) -> int | None:
        """Queue a private message to a person (by their platform id); ``not_before`` holds it back (grouping).

        Phone and ID numbers in it are masked: what reaches a cadre's or staff member's phone (a villager's
        report, a digest) is read outside the dashboard, where no role is allowed the full number.
        """
        if account is None:
            account = await self._account_of_group(session, member.group_name)
        return await self._enqueue(
            session,
            key=key,
            account=account,
            chat_id=member.platform_id,
            chat_name=f"private:{member.name}",
            is_group=False,
            text=mask_numbers(text) if text else text,
            image_path=image_path,
            mentions=(),
            not_before=not_before,
        )

    def _default_account(self) -> str:
        return self._config.accounts[0].name

    async def _account_of_group(self, session: AsyncSession, name: str) -> str:
        """A person's group's account (the one that sits with them), else this process's first account."""
        if name:
            group = await directory_repo.get_group(session, name)
            if group is not None and group.account:
                return group.account
            return self._config.account_for_group(name)
        return self._default_account()

    async def _enqueue(
        self,
        session: AsyncSession,
        *,
        key: str,
        account: str,
        chat_id: str,
        chat_name: str,
        is_group: bool,
        text: str | None,
        image_path: str | None,
        mentions: Sequence[Member],
        not_before: datetime | None = None,
    ) -> int | None:
        now = self._clock.now()
        outbox_id = await outbox_repo.enqueue(
            session,
            values={
                "dedupe_key": key,
                "account": account,
                "chat_id": chat_id,
                "chat_name": chat_name,
                "is_group": is_group,
                "text": text,
                "image_path": image_path,
                "mention_ids": [m.platform_id for m in mentions],
                "mention_names": [m.name for m in mentions],
                "created_at": now,
                "not_before": max(now, not_before) if not_before is not None else now,
                "status": "pending",
                "attempts": 0,
            },
        )
        self.enqueued += 1
        self._wakeup.set()
        return outbox_id

    def _pacing(self, account: str) -> PacingConfig:
        for candidate in self._config.accounts:
            if candidate.name == account:
                return candidate.pacing
        return PacingConfig()

    def _wait_needed(self, row: Outbox, now: datetime) -> float:
        pacing = self._pacing(row.account)
        waits = [0.0]
        last = self._last_account.get(row.account)
        if last is not None:
            waits.append(pacing.per_account_seconds - (now - last).total_seconds())
        last_chat = self._last_chat.get((row.account, row.chat_id))
        if last_chat is not None:
            waits.append(pacing.per_group_seconds - (now - last_chat).total_seconds())
        return max(waits)

    async def send_due(self, adapters: Mapping[str, Adapter], *, pace: bool) -> int:
        """Send every due row for the given accounts; with ``pace`` it waits between sends as configured.

        Each row is marked sent in its own transaction right after it went and before the next one goes, so
        a crash can leave at most one row sent but not marked; it is sent again with the same dedupe key,
        which the adapter drops when it has delivered that key before (the simulator does, across
        restarts). Paced (the live bot), a row is marked at the time it went; unpaced (a replay), at the
        time it became due, which is when a bot that never waits would have sent it.
        """
        sent = 0
        for account, adapter in adapters.items():
            while True:
                async with self._statements() as session:
                    rows = await outbox_repo.claim_due(
                        session, account=account, now=self._clock.now(), lease=LEASE, limit=CLAIM
                    )
                    await session.commit()
                for row in rows:
                    assert row.id is not None
                    if pace:
                        delay = self._wait_needed(row, self._clock.now())
                        if delay > 0:
                            await asyncio.sleep(delay)
                    ok, platform_id = await self._send_one(adapter, row)
                    if not ok:
                        continue
                    sent += 1
                    await self._mark_sent([(row.id, self._clock.now() if pace else row.not_before, platform_id)])
                if len(rows) < CLAIM:
                    break
        return sent

    async def _mark_sent(self, rows: list[tuple[int, datetime, str | None]]) -> None:
        if rows:
            async with self._statements() as session:
                await outbox_repo.mark_sent(session, rows)
                await session.commit()

    async def _send_one(self, adapter: Adapter, row: Outbox) -> tuple[bool, str | None]:
        """Hand one row to its adapter: (sent, the platform's id for it). A failure is logged and the row
        retried later with backoff, or given up after MAX_ATTEMPTS."""
        assert row.id is not None
        message = OutgoingMessage(
            account=row.account,
            chat_id=row.chat_id,
            is_group=row.is_group,
            chat_name=row.chat_name,
            text=row.text,
            image_path=row.image_path,
            mention_ids=tuple(row.mention_ids),
            mention_names=tuple(row.mention_names),
            dedupe_key=row.dedupe_key,
            queued_at=row.created_at,
        )
        try:
            platform_id = await adapter.send(message)
        except Exception as exc:  # the error boundary of sending: log, retry later, keep going
            self.send_failures[row.account] += 1
            now = self._clock.now()
            give_up = row.attempts >= MAX_ATTEMPTS
            log.warning("send to %s via %s failed (attempt %d): %s", row.chat_name, row.account, row.attempts, exc)
            async with self._statements() as session:
                await outbox_repo.mark_retry(
                    session,
                    row.id,
                    error=str(exc) or type(exc).__name__,
                    retry_at=now if give_up else now + timedelta(seconds=min(300, 2**row.attempts)),
                    give_up=give_up,
                )
                await session.commit()
            return False, None
        self.sent[row.account] += 1
        now = self._clock.now()
        self._last_account[row.account] = now
        self._last_chat[(row.account, row.chat_id)] = now
        return True, platform_id

    async def recover(self, accounts: Sequence[str]) -> None:
        """Free the accounts' claimed, unsent rows, which only a sender of this process can have held."""
        async with self._sessions() as session:
            for account in accounts:
                await outbox_repo.release_leases(session, account=account)
            await session.commit()

    async def run(self, adapters: Mapping[str, Adapter], *, poll_seconds: float = 1.0) -> None:
        """The live sender: drains due rows, then sleeps until woken by an enqueue or the poll interval.

        It starts by freeing its accounts' claimed rows: a sender killed mid-send leaves rows leased for
        LEASE, and a process sends for its own accounts only, so nobody else holds them.
        """
        try:
            await self.recover(list(adapters))
        except Exception:  # the leases then expire on their own (LEASE)
            log.exception("freeing this process's claimed outbox rows failed")
        while True:
            try:
                await self.send_due(adapters, pace=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox sender failed; retrying")
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=poll_seconds)
