"""Instant alerts: a flag that cannot wait for tomorrow's digest (a cadre's or party member's banquet, a clue,
a threat) reaches the discipline staff of its township privately at once, through the paced outbox.

Which flags and who hears is the typed config's ``[alerts]``; the wording is the ``flag_alert`` template.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import AlertConfig
from bot.ingest import Inbound
from bot.tickets import calendar
from bot.tickets.service import TicketService
from storage.models import Member
from storage.repos import tickets as repo


def wants_alert(config: AlertConfig, inbound: Inbound) -> bool:
    result = inbound.result
    return result.severity in config.severities and bool(set(result.labels) & set(config.labels))


def recipients(config: AlertConfig, staff: list[Member], *, township: str, county: str) -> list[Member]:
    in_township = [s for s in staff if township and s.township == township]
    in_county = [s for s in staff if not s.township and (not county or not s.county or s.county == county)]
    if config.recipients == "township":
        return in_township or in_county
    if config.recipients == "county":
        return in_county
    return in_township + in_county


async def send_alert(
    session: AsyncSession, *, service: TicketService, config: AlertConfig, inbound: Inbound, url: str
) -> None:
    place = inbound.group if inbound.group is not None else inbound.sender
    message = inbound.message
    text = service.render(
        "flag_alert",
        village=place.village,
        group=inbound.group.name if inbound.group is not None else "",
        sender=inbound.sender.name,
        role=inbound.sender.role,
        labels=[label for label in inbound.result.labels if label in config.labels] or list(inbound.result.labels),
        severity=inbound.result.severity,
        text=(inbound.incoming.text or "").strip(),
        at=calendar.format_deadline(message.at, service.tz),
        url=url,
    )
    staff = await repo.all_staff(session)
    for member in recipients(config, staff, township=place.township, county=place.county):
        if member.platform_id == inbound.sender.platform_id:
            continue
        await service.tell(session, key=f"alert:{inbound.message_id}:{member.platform_id}", member=member, text=text)
