"""Retention of message text: a daily job blanks the text of messages older than the configured days.

What a message said goes; that it was sent, by whom, when, in which group, and how it was classified
stays, as do tickets (with the reporter's text), their events (the audit trail), flags, reviews and the
dashboard audit log. ``message_text_days = 0`` (the default) keeps everything.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.config import RetentionConfig
from bot.scheduler import Job, daily
from storage.engine import SessionFactory
from storage.repos import ops

log = logging.getLogger(__name__)


class Retention:
    def __init__(self, *, session_factory: SessionFactory, config: RetentionConfig, timezone: str) -> None:
        self._sessions = session_factory
        self._config = config
        self._timezone = timezone

    def jobs(self) -> list[Job]:
        if self._config.message_text_days <= 0:
            return []
        return [Job("retention.message_text", daily(self._config.run_at, self._timezone), self._run)]

    async def _run(self, scheduled_for: datetime) -> None:
        await self.blank_old_text(scheduled_for)

    async def blank_old_text(self, scheduled_for: datetime) -> int:
        """Blank text older than the retention period as of ``scheduled_for``; returns how many messages."""
        before = scheduled_for - timedelta(days=self._config.message_text_days)
        async with self._sessions() as session:
            blanked = await ops.blank_message_text(session, before=before)
            await session.commit()
        if blanked:
            log.info("retention: blanked the text of %d messages from before %s", blanked, before.isoformat())
        return blanked
