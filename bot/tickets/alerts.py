"""Instant alerts: a flag that cannot wait for tomorrow's digest (a cadre's or party member's banquet, a clue,
a threat) reaches the discipline staff of its township privately at once.

Which flags alert is the typed config's ``[alerts]`` (``wants_alert``); who hears and in what words, and the
grouping when many come at once, is the notifier's (``Notifier.flag_alert``).
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import AlertConfig
from bot.ingest import Inbound
from bot.tickets.notify import Notifier


def wants_alert(config: AlertConfig, inbound: Inbound) -> bool:
    result = inbound.result
    return result.severity in config.severities and bool(set(result.labels) & set(config.labels))


async def send_alert(session: AsyncSession, *, notifier: Notifier, config: AlertConfig, inbound: Inbound) -> None:
    await notifier.flag_alert(
        session,
        config=config,
        message_id=inbound.message_id,
        at=inbound.message.at,
        place=inbound.group if inbound.group is not None else inbound.sender,
        group=inbound.group,
        sender=inbound.sender,
        labels=inbound.result.labels,
        severity=inbound.result.severity or "",
        text=(inbound.incoming.text or "").strip(),
    )
