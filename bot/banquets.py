"""Alerts before banquets: the township's discipline staff hear privately, ``alert_days_before`` days ahead,
of a banquet that a party member or cadre hosts, so patrol can be there before the feast.

A daily job on the bot's clock; the dates come from the details stored with banquet flags
(classifiers.banquet). Each alert goes through the notifier (``Notifier.banquet_alert``) with the key
``banquet-alert:<message>:<staff>``, so a banquet is alerted once per staff member however often the job
runs, and a banquet flagged after its alert day but before the feast is alerted at the next run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from bot.config import BanquetConfig
from bot.scheduler import Job, daily
from bot.tickets import calendar
from bot.tickets.roster import staff_for
from bot.tickets.service import TicketService
from storage.engine import SessionFactory
from storage.repos import banquets as banquets_repo
from storage.repos import tickets as tickets_repo
from storage.repos.dashboard import Scope

log = logging.getLogger(__name__)



def host_role(row: Any) -> str:
    """The host's role: the roster's (the member now), else the one the flag recorded."""
    return str(row["member_role"] or row["flag_role"] or "villager")


class BanquetAlerts:
    def __init__(
        self, *, session_factory: SessionFactory, service: TicketService, config: BanquetConfig, timezone: str
    ) -> None:
        self._sessions = session_factory
        self._service = service
        self._config = config
        self._timezone = timezone

    def jobs(self) -> list[Job]:
        return [Job("banquets.alert", daily(self._config.alert_at, self._timezone), self.alert_due)]

    async def alert_due(self, scheduled_for: datetime) -> None:
        today = scheduled_for.astimezone(self._service.tz).date()
        until = today + timedelta(days=self._config.alert_days_before)
        sent = 0
        async with self._sessions() as session:
            rows = await banquets_repo.upcoming(session, scope=Scope(), since=today, until=until)
            wanted = [r for r in rows if host_role(r) in self._config.roles]
            staff = await tickets_repo.all_staff(session) if wanted else []
            for row in wanted:
                day = row["date"]
                values = {
                    "date": f"{day.month}月{day.day}日",
                    "weekday": f"周{'一二三四五六日'[day.weekday()]}",
                    "days": (day - today).days,
                    "lunar": row["lunar"] or "",
                    "approximate": bool(row["approximate"]),
                    "time": row["time"] or row["period"] or "",
                    "place": row["place"] or "",
                    "event": row["event"] or "",
                    "relation": row["relation"] or "",
                    "scale": row["scale"] or "",
                    "village": row["village"] or "",
                    "host": row["host"] or row["sender_name"],
                    "sender": row["sender_name"],
                    "role": host_role(row),
                    "text": (row["text"] or "").strip(),
                    "at": calendar.format_deadline(row["at"], self._service.tz),
                    "url": self._service.config.dashboard.public_url.rstrip("/") + "/banquets"
                    if self._service.config.dashboard.public_url
                    else "",
                }
                for member in staff_for(staff, township=row["township"], county=row["county"]):
                    if member.platform_id == row["sender_platform_id"]:
                        continue
                    await self._service.notifier.banquet_alert(
                        session, member=member, message_id=row["message_id"], values=values
                    )
                    sent += 1
            await session.commit()
        if wanted:
            log.info("banquet alerts %s: %d banquets coming up, %d messages", today, len(wanted), sent)
