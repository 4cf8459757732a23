"""Staff feedback to the classifier: corrected labels and missed messages, and the precision verdicts show."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Flag, LabelFeedback, Message


async def add_feedback(
    session: AsyncSession,
    *,
    message_id: int,
    at: datetime,
    username: str,
    labels: list[str],
    category: str | None,
    source: str,
    note: str = "",
) -> LabelFeedback:
    row = LabelFeedback(
        message_id=message_id, at=at, username=username, labels=labels, category=category, source=source, note=note
    )
    session.add(row)
    await session.flush()
    return row


async def latest_for_message(session: AsyncSession, *, message_id: int) -> LabelFeedback | None:
    stmt = (
        select(LabelFeedback)
        .where(LabelFeedback.message_id == message_id)
        .order_by(col(LabelFeedback.id).desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()


async def training_examples(session: AsyncSession) -> list[dict[str, Any]]:
    """The newest feedback per message with the message's text and sender role, oldest message first.

    Messages whose text has been blanked (retention) are left out: there is nothing to learn from.
    """
    stmt = (
        select(LabelFeedback, Message.text, Message.role)
        .join(Message, col(Message.id) == LabelFeedback.message_id)
        .order_by(col(LabelFeedback.message_id), col(LabelFeedback.id))
    )
    newest: dict[int, dict[str, Any]] = {}
    for fb, text, role in (await session.exec(stmt)).all():
        if text and text.strip():
            newest[fb.message_id] = {
                "message_id": fb.message_id,
                "text": text,
                "role": role,
                "labels": list(fb.labels),
                "category": fb.category,
                "source": fb.source,
                "username": fb.username,
            }
    return list(newest.values())


async def label_precision(session: AsyncSession, red_flags: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Per red-flag label: how many judged flags carried it, and how many of those staff upheld.

    A flag's verdict judges every label on it (属实 upholds, 误报 rejects); a later correction of the
    message's labels judges each label on its own and wins. Flags with neither are not counted.
    """
    flags = (
        await session.exec(select(Flag.message_id, Flag.labels, Flag.verdict).where(col(Flag.verdict).is_not(None)))
    ).all()
    corrected: dict[int, set[str]] = {}
    fb_rows = (await session.exec(select(LabelFeedback).order_by(col(LabelFeedback.id)))).all()
    for fb in fb_rows:
        corrected[fb.message_id] = set(fb.labels)
    stats: dict[str, dict[str, int]] = defaultdict(lambda: {"judged": 0, "upheld": 0})
    seen: set[int] = set()
    for message_id, flag_labels, verdict in flags:
        seen.add(message_id)
        for lab in flag_labels:
            if lab not in red_flags:
                continue
            if message_id in corrected:
                upheld = lab in corrected[message_id]
            elif verdict in ("confirmed", "false_alarm"):
                upheld = verdict == "confirmed"
            else:
                continue
            stats[lab]["judged"] += 1
            stats[lab]["upheld"] += int(upheld)
    flagged = {m: set(labels) for m, labels in (await session.exec(select(Flag.message_id, Flag.labels))).all()}
    for message_id, right in corrected.items():
        if message_id in seen:
            continue
        for lab in flagged.get(message_id, set()) & set(red_flags):
            stats[lab]["judged"] += 1
            stats[lab]["upheld"] += int(lab in right)
    return {lab: dict(v) for lab, v in sorted(stats.items())}


async def count_feedback(session: AsyncSession) -> dict[str, int]:
    rows = (await session.exec(select(LabelFeedback.source))).all()
    out: dict[str, int] = defaultdict(int)
    for source in rows:
        out[source] += 1
    return dict(out)
