"""Result types of the classifier: what a message is, and which rules said so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LABELS: tuple[str, ...] = (
    "demand",
    "consult",
    "clue",
    "banquet",
    "gambling",
    "abuse",
    "spam",
    "notice",
    "feedback",
    "chat",
)
CATEGORIES: tuple[str, ...] = (
    "water",
    "power",
    "road_traffic",
    "sanitation",
    "safety_hazard",
    "public_order",
    "land_housing",
    "welfare",
    "village_affairs",
    "education_health",
    "agriculture",
    "environment",
    "other",
)
ROLES: tuple[str, ...] = ("villager", "party_member", "cadre", "staff")
SEVERITIES: tuple[str, ...] = ("low", "normal", "high")


@dataclass(frozen=True, slots=True)
class Match:
    """One rule that fired: its id, the keywords that made it fire and what it voted for."""

    rule: str
    keywords: tuple[str, ...]
    label: str
    shadow: bool = False


TIERS: tuple[str, ...] = ("confirmed", "review")  # 确认 / 请核查


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a label holds, in words a clerk can read: keywords, phrases, signs (👍), the sender's role."""

    label: str
    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's verdict on one message (see taxonomy.md).

    ``labels`` are the decided labels. ``review`` holds red flags below the precise threshold but above
    the recall-first one: they go to the digest as 请核查, never to a ticket. ``tiers`` gives each red
    flag of ``labels`` and ``review`` its tier. ``reasons`` explain every red flag (what reaches the digest).
    """

    labels: tuple[str, ...]
    category: str | None
    severity: str | None
    matches: tuple[Match, ...]
    shadow_matches: tuple[Match, ...]
    ruleset_version: str
    review: tuple[str, ...] = ()
    tiers: tuple[tuple[str, str], ...] = ()
    reasons: tuple[Reason, ...] = ()
    model_version: str | None = None
    scores: tuple[tuple[str, float], ...] = ()

    def to_contract(self, id: object) -> dict[str, Any]:
        """The output line of `villagewatch classify` for this message."""
        return {
            "id": id,
            "labels": list(self.labels),
            "category": self.category,
            "severity": self.severity,
            "matches": [{"rule": m.rule, "keywords": list(m.keywords)} for m in self.matches],
            "review": list(self.review),
            "tiers": dict(self.tiers),
            "reasons": {r.label: list(r.words) for r in self.reasons},
        }
