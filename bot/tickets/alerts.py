"""Instant alerts: a flag that cannot wait for tomorrow's digest (a cadre's or party member's banquet, a clue,
a threat) reaches the discipline staff of its township privately at once, through the paced outbox.

Which flags and who hears is the typed config's ``[alerts]``; the wording is the ``flag_alert`` template.
Grouped when many: a staff member gets ``burst`` alerts one by one within ``group_minutes``; further ones
in that window are lines of one grouped message (``flag_alert_group``) sent when the window ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import AlertConfig
from bot.ingest import Inbound
from bot.tickets import calendar
from bot.tickets.roster import county_staff, staff_for, township_staff
from bot.tickets.service import TicketService
from storage.models import Member
from storage.repos import outbox as outbox_repo
from storage.repos import tickets as repo

KEY = "alert:"
GROUP_KEY = "alert-group:"


def wants_alert(config: AlertConfig, inbound: Inbound) -> bool:
    result = inbound.result
    return result.severity in config.severities and bool(set(result.labels) & set(config.labels))


def recipients(config: AlertConfig, staff: list[Member], *, township: str, county: str) -> list[Member]:
    if config.recipients == "township":
        return staff_for(staff, township=township, county=county)
    if config.recipients == "county":
        return county_staff(staff, county=county)
    return township_staff(staff, township=township) + county_staff(staff, county=county)


async def send_alert(
    session: AsyncSession, *, service: TicketService, config: AlertConfig, inbound: Inbound, url: str
) -> None:
    place = inbound.group if inbound.group is not None else inbound.sender
    message = inbound.message
    values: dict[str, Any] = {
        "village": place.village,
        "group": inbound.group.name if inbound.group is not None else "",
        "sender": inbound.sender.name,
        "role": inbound.sender.role,
        "labels": [label for label in inbound.result.labels if label in config.labels] or list(inbound.result.labels),
        "severity": inbound.result.severity,
        "text": (inbound.incoming.text or "").strip(),
        "at": calendar.format_deadline(message.at, service.tz),
        "url": url,
    }
    staff = await repo.all_staff(session)
    for member in recipients(config, staff, township=place.township, county=place.county):
        if member.platform_id == inbound.sender.platform_id:
            continue
        await _alert_one(
            session,
            service=service,
            config=config,
            member=member,
            values=values,
            at=message.at,
            key=f"{KEY}{inbound.message_id}:{member.platform_id}",
        )


async def _alert_one(
    session: AsyncSession,
    *,
    service: TicketService,
    config: AlertConfig,
    member: Member,
    values: dict[str, Any],
    at: datetime,
    key: str,
) -> None:
    window = timedelta(minutes=config.group_minutes)
    recent = await outbox_repo.count_created_since(
        session, chat_id=member.platform_id, key_prefix=KEY, since=at - window
    )
    if recent < config.burst:
        await service.tell(session, key=key, member=member, text=service.render("flag_alert", **values))
        return
    # many at once: one grouped message per staff member and window, sent when the window ends
    start = datetime.fromtimestamp(at.timestamp() // window.total_seconds() * window.total_seconds(), at.tzinfo)
    until = start + window
    group_key = f"{GROUP_KEY}{member.platform_id}:{start.isoformat()}"
    line = service.render("flag_alert_line", **values)
    if await outbox_repo.append_pending(session, dedupe_key=group_key, text=line):
        return
    heading = service.render(
        "flag_alert_group", minutes=config.group_minutes, until=calendar.format_deadline(until, service.tz)
    )
    await service.outbox.to_member(session, key=group_key, member=member, text=f"{heading}\n{line}", not_before=until)
