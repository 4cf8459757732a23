"""`villagewatch tickets`: every ticket with its state and history, as the contracts.md JSON or as text.

Besides the contract's fields: ``stage`` (the sub-state of ``status``: new, in_progress,
extension_requested, awaiting_photo, awaiting_rating, rated, no_answer — bot/tickets/states.py) and
``ratings`` (each reporter's rating of the current resolution; ``rating`` is their summary, the worst).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import CHINA
from storage.repos import tickets as repo


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(CHINA).isoformat()


async def tickets_as_json(session: AsyncSession) -> list[dict[str, Any]]:
    """One object per ticket, in id order; times in +08:00. Four queries whatever the number of tickets."""
    tickets, reporters, events, photos = await repo.report_rows(session)
    names: dict[int, list[str]] = defaultdict(list)
    ratings: dict[int, dict[str, str | None]] = defaultdict(dict)
    for reporter in reporters:
        names[reporter.ticket_id].append(reporter.name)
        ratings[reporter.ticket_id][reporter.name] = reporter.rating
    history: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        history[event.ticket_id].append(
            {"at": _iso(event.at), "type": event.type, "actor": event.actor, "text": event.text}
        )
    paths: dict[int, list[str]] = defaultdict(list)
    for photo in photos:
        paths[photo.ticket_id].append(photo.path)
    result: list[dict[str, Any]] = []
    for t in tickets:
        assert t.id is not None
        result.append(
            {
                "id": t.id,
                "kind": t.kind,
                "category": t.category,
                "group": t.group_name,
                "county": t.county,
                "village": t.village,
                "township": t.township,
                "reporters": names[t.id],
                "assignee": t.assignee_name,
                "level": t.level,
                "status": t.status,
                "stage": t.stage,
                "overdue": t.overdue,
                "deadline": _iso(t.deadline),
                "confidential": t.confidential,
                "rating": t.rating,
                "ratings": ratings[t.id],
                "photos": paths[t.id],
                "photo_missing": t.photo_missing,
                "priority": t.priority,
                "parent_id": t.parent_id,
                "opened_at": _iso(t.opened_at),
                "resolved_at": _iso(t.resolved_at),
                "closed_at": _iso(t.closed_at),
                "text": t.text,
                "resolution_note": t.resolution_note,
                "events": history[t.id],
            }
        )
    return result


def tickets_as_text(tickets: list[dict[str, Any]]) -> str:
    """A readable listing of ``tickets_as_json``'s result: a header line per ticket, then its events."""
    lines: list[str] = []
    for t in tickets:
        flags = [f"{t['status']}/{t['stage']}", t["level"]]
        if t["overdue"]:
            flags.append("overdue")
        if t["confidential"]:
            flags.append("confidential")
        if t["rating"]:
            flags.append(f"rating={t['rating']}")
        lines.append(
            f"#{t['id']} {t['kind']}/{t['category'] or '-'} {t['village'] or '-'} [{', '.join(flags)}] "
            f"assignee={t['assignee'] or '-'} deadline={t['deadline'] or '-'} reporters={','.join(t['reporters'])}"
        )
        lines.append(f"    {t['text']}")
        for photo in t["photos"]:
            lines.append(f"    photo {photo}")
        for event in t["events"]:
            lines.append(f"    {event['at']} {event['type']:<10} {event['actor']}: {event['text']}")
    return "\n".join(lines)
