"""The `flags` listing, in the contract's JSON shape and as text."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import CHINA
from storage.repos import banquets as banquets_repo
from storage.repos import image_texts as images_repo
from storage.repos import messages as messages_repo

BANQUET_FIELDS = (
    "date", "calendar", "date_text", "approximate", "lunar", "time", "period",
    "place", "host", "relation", "event", "scale", "tables", "people",
)  # fmt: skip


async def flags_as_json(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await messages_repo.list_flags(session)
    banquets = await banquets_repo.by_message(session, [flag.message_id for flag, _ in rows])
    images = await images_repo.by_message(session, [flag.message_id for flag, m in rows if m.kind == "image"])
    return [
        {
            "id": flag.id,
            "at": flag.at.astimezone(CHINA).isoformat(),
            "group": flag.group_name,
            "sender": flag.sender_name,
            "role": flag.role,
            "text": message.text,
            "labels": flag.labels,
            "severity": flag.severity,
            "rules": flag.rules,
            "keywords": flag.keywords,
            "confidential": flag.confidential,
            "verdict": flag.verdict,
            "tier": flag.tier,
            "reasons": flag.reasons,
            "banquet": _banquet(banquets.get(flag.message_id)),
            "from_image": flag.from_image,
            "image_text": _image_text(images.get(flag.message_id)),
        }
        for flag, message in rows
    ]


def _image_text(row: Any) -> dict[str, Any] | None:
    """What was read from the message's image: status (pending, done, failed), text, and why it failed."""
    if row is None:
        return None
    return {"status": row["status"], "text": row["text"], "error": row["error"]}


def _banquet(row: Any) -> dict[str, Any] | None:
    """A banquet flag's details (unknown ones null), with the date as YYYY-MM-DD and its weekday."""
    if row is None:
        return None
    out = {key: row[key] for key in BANQUET_FIELDS}
    day = row["date"]
    out["date"] = day.isoformat() if day else None
    out["weekday"] = f"周{'一二三四五六日'[day.weekday()]}" if day else None
    return out


def flags_as_text(flags: list[dict[str, Any]]) -> str:
    if not flags:
        return "没有标记的消息。"
    lines = []
    for item in flags:
        where = item["group"] or "私聊"
        tier = "" if item["tier"] == "confirmed" else "/请核查"
        lines.append(
            f"[{item['severity']}{tier}] {item['at'][:16]} {where} {item['sender']}({item['role']}) "
            f"{'/'.join(item['labels'])}: {item['text']}"
            + (f"[图中文字: {item['image_text']['text']}]" if item["from_image"] and item["image_text"] else "")
            + f"  规则: {', '.join(item['rules'])}"
            + (f"  结论: {item['verdict']}" if item["verdict"] else "")
            + _banquet_text(item["banquet"])
        )
    return "\n".join(lines)


def _banquet_text(details: dict[str, Any] | None) -> str:
    if not details:
        return ""
    parts = [
        f"日期 {details['date']}{'(约)' if details['approximate'] else ''}" if details["date"] else "",
        f"地点 {details['place']}" if details["place"] else "",
        f"规模 {details['scale']}" if details["scale"] else "",
    ]
    return "".join(f"  {p}" for p in parts if p)
