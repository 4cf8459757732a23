"""The `flags` listing, in the contract's JSON shape and as text."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import CHINA
from storage.repos import messages as messages_repo


async def flags_as_json(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await messages_repo.list_flags(session)
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
        }
        for flag, message in rows
    ]


def flags_as_text(flags: list[dict[str, Any]]) -> str:
    if not flags:
        return "没有标记的消息。"
    lines = []
    for item in flags:
        where = item["group"] or "私聊"
        tier = "" if item["tier"] == "confirmed" else "/请核查"
        lines.append(
            f"[{item['severity']}{tier}] {item['at'][:16]} {where} {item['sender']}({item['role']}) "
            f"{'/'.join(item['labels'])}: {item['text']}  规则: {', '.join(item['rules'])}"
            + (f"  结论: {item['verdict']}" if item["verdict"] else "")
        )
    return "\n".join(lines)
