"""Hot spots (热点问题): the problems reported most across villages in the last weeks, with the villages that share
them.

Tickets are grouped by category and by their key words: the classifier's content words stored on each ticket
when it was opened (the words merging compares, from the classifier's own jieba tokenizer). A word becomes a
hot spot when tickets of several villages carry it; words that nearly always come together (停水, 自来水) are
one hot spot, named by its most frequent word. Tickets without stored words count for their category only.
Pure functions over the rows of ``storage.repos.dashboard.hot_spot_tickets``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PLACE_WORD = re.compile(r".*[村镇乡组队社]$")
"""Words that name a place (石桥村, 张湾组): where a problem is, not what it is."""
SAME_SPOT = 0.6
"""A word whose tickets are mostly (this share) those of a stronger word of the category joins that hot spot."""


@dataclass
class HotSpot:
    category: str
    words: list[str]
    tickets: set[int] = field(default_factory=set)
    villages: dict[str, int] = field(default_factory=dict)
    """"township / village" → tickets there."""
    reporters: int = 0

    @property
    def village_count(self) -> int:
        return len(self.villages)

    def top_villages(self, n: int = 8) -> list[tuple[str, int]]:
        return sorted(self.villages.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def hot_spots(
    rows: Iterable[Mapping[Any, Any]], *, min_villages: int = 2, limit: int = 10, places: Iterable[str] = ()
) -> list[HotSpot]:
    """The hot spots among ``rows`` (id, category, township, village, keywords, reporter_count): problems whose
    tickets come from at least ``min_villages`` villages, most villages first, then most tickets."""
    place_names = set(places)
    by_word: dict[tuple[str, str], set[int]] = {}
    info: dict[int, Mapping[Any, Any]] = {}
    for row in rows:
        tid = int(row["id"])
        info[tid] = row
        category = row["category"] or "other"
        words = {w for w in (row["keywords"] or []) if _problem_word(w, place_names)}
        for word in words or {""}:
            by_word.setdefault((category, word), set()).add(tid)
    spots: list[HotSpot] = []
    # strongest words first; a word mostly covered by a stronger spot of its category joins it
    for (category, word), ids in sorted(by_word.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        home = next(
            (s for s in spots if s.category == category and word and len(ids & s.tickets) >= SAME_SPOT * len(ids)),
            None,
        )
        if home is not None:
            if word and len(home.words) < 4:
                home.words.append(word)
            _add(home, ids - home.tickets, info)
            continue
        spot = HotSpot(category=category, words=[word] if word else [])
        _add(spot, ids, info)
        spots.append(spot)
    shared = [s for s in spots if s.village_count >= min_villages]
    shared.sort(key=lambda s: (-s.village_count, -len(s.tickets), -s.reporters, s.category, s.words))
    return shared[:limit]


def _problem_word(word: str, places: set[str]) -> bool:
    """A key word that can name a problem: not a place, not a number (a phone number, a house number)."""
    return bool(word) and word not in places and not PLACE_WORD.match(word) and not any(ch.isdigit() for ch in word)


def _add(spot: HotSpot, ids: set[int], info: Mapping[int, Mapping[Any, Any]]) -> None:
    for tid in ids:
        row = info[tid]
        place = f"{row['township']} / {row['village']}" if row["village"] else str(row["township"])
        spot.villages[place] = spot.villages.get(place, 0) + 1
        spot.reporters += int(row.get("reporter_count") or 1)
    spot.tickets |= ids
