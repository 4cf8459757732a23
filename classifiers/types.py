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


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's verdict on one message (see taxonomy.md)."""

    labels: tuple[str, ...]
    category: str | None
    severity: str | None
    matches: tuple[Match, ...]
    shadow_matches: tuple[Match, ...]
    ruleset_version: str

    def to_contract(self, id: object) -> dict[str, Any]:
        """The output line of `villagewatch classify` for this message."""
        return {
            "id": id,
            "labels": list(self.labels),
            "category": self.category,
            "severity": self.severity,
            "matches": [{"rule": m.rule, "keywords": list(m.keywords)} for m in self.matches],
        }
