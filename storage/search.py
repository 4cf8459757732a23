"""The words a message is found by: Chinese character bigrams, the same for the index and for a query.

A message's text is normalised (full-width to half-width and lower case by NFKC, traditional characters to
simplified by OpenCC) and cut into runs of Chinese characters and runs of letters and digits. A Chinese run
gives its overlapping character pairs (石桥村 → 石桥 桥村) and then its last character alone; a run of
letters or digits is one term. A query is cut the same way and becomes a phrase of pairs per run, so a hit is
exactly a message that contains the query's text (as LIKE would find it) but is served by an index; a single
character matches as a prefix (水 finds 水管, 停水 and the 水 that ends a run).

Why pairs and not jieba words: a word list cuts the same name differently in different sentences (a query
for 高某林 would miss 高某林家 when jieba cuts 林家), and a two-character query such as 低保 would miss it inside
a longer word; pairs never miss and need no dictionary, so old and new messages are cut alike (BENCHMARKS.md:
"Search"). Place terms (``@t:`` township, ``@v:`` village, ``@c:`` county) go into the same index, so a
township's search is an intersection inside the index rather than a filter over every city-wide hit.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

MAX_QUERY_CHARS = 50
"""Longer queries are cut: a phrase of more pairs finds nothing more precise and costs more."""

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN_RE = re.compile(rf"[{_HAN}]+|[a-z0-9]+")
_HAN_RE = re.compile(rf"[{_HAN}]")
_PLACE_PREFIX = {"county": "@c:", "township": "@t:", "village": "@v:"}
_PLACE_FTS_PREFIX = {"county": "zc", "township": "zt", "village": "zv"}


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def normalise(text: str) -> str:
    """Half-width, lower case, simplified characters: how both a message and a query are compared."""
    value = unicodedata.normalize("NFKC", text or "").lower()
    if _HAN_RE.search(value):
        value = _t2s().convert(value)
    return value


def runs(text: str) -> list[str]:
    """The runs of Chinese characters and of letters/digits in normalised ``text``."""
    return _RUN_RE.findall(normalise(text))


def _is_han(run: str) -> bool:
    return bool(_HAN_RE.match(run))


def terms(text: str) -> list[str]:
    """The index terms of a message, in order (positions matter: a query run is a phrase)."""
    out: list[str] = []
    for run in runs(text):
        if _is_han(run) and len(run) > 1:
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
            out.append(run[-1])
        else:
            out.append(run[:64])
    return out


def place_terms(*, county: str, township: str, village: str) -> dict[str, str]:
    """The place of a message as index terms: level → place name (empty levels are left out)."""
    places = {"county": county, "township": township, "village": village}
    return {level: name for level, name in places.items() if name}


@dataclass(frozen=True)
class Query:
    """A parsed query: one entry per run; a run is a phrase of pairs, or a single term to match as a prefix."""

    phrases: tuple[tuple[str, ...], ...]
    prefixes: tuple[str, ...]
    words: tuple[str, ...]
    """The runs as typed (normalised), for highlighting."""

    @property
    def empty(self) -> bool:
        return not self.phrases and not self.prefixes


def parse_query(text: str) -> Query:
    phrases: list[tuple[str, ...]] = []
    prefixes: list[str] = []
    found = runs(text[: MAX_QUERY_CHARS * 2])
    total = 0
    kept: list[str] = []
    for run in found:
        run = run[: max(0, MAX_QUERY_CHARS - total)]
        if not run:
            break
        total += len(run)
        kept.append(run)
        if _is_han(run) and len(run) > 1:
            phrases.append(tuple(run[i : i + 2] for i in range(len(run) - 1)))
        else:
            prefixes.append(run[:64])
    return Query(tuple(phrases), tuple(prefixes), tuple(kept))


# ---------------------------------------------------------------- PostgreSQL: tsvector / tsquery text


def _pg_quote(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def week_of(at: datetime) -> int:
    """The week (seven days from the Unix epoch, UTC) a message was sent in: its ``@w:`` term, so a search
    with millions of hits reads the newest week's hits first instead of sorting them all."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - _EPOCH).days // 7


def week_start(week: int) -> datetime:
    return _EPOCH + timedelta(days=7 * week)


def week_term(week: int) -> str:
    return _pg_quote(f"@w:{week}")


def pg_vector(text: str, places: dict[str, str], at: datetime | None = None) -> str:
    """A tsvector literal (lexemes with positions; no text-search parser, so no locale is involved)."""
    parts = [f"{_pg_quote(t)}:{min(i, 16383)}" for i, t in enumerate(terms(text), start=1)]
    parts += [_pg_quote(_PLACE_PREFIX[level] + name) for level, name in places.items()]
    if at is not None:
        parts.append(week_term(week_of(at)))
    return " ".join(parts)


def pg_query(query: Query, places: dict[str, str], week: int | None = None) -> str:
    """A tsquery literal: every phrase and prefix, and the place terms (and a week), all required."""
    parts = [" <-> ".join(_pg_quote(t) for t in phrase) for phrase in query.phrases]
    parts = [f"({p})" if " <-> " in p else p for p in parts]
    parts += [f"{_pg_quote(p)}:*" for p in query.prefixes]
    parts += [_pg_quote(_PLACE_PREFIX[level] + name) for level, name in places.items()]
    if week is not None:
        parts.append(week_term(week))
    return " & ".join(parts)


# ---------------------------------------------------------------- SQLite: FTS5 text


def _fts_place(level: str, name: str) -> str:
    # FTS5's unicode61 tokenizer keeps letters and digits only: a place term is a prefix and the name.
    return _PLACE_FTS_PREFIX[level] + "".join(runs(name))


def fts_document(text: str, places: dict[str, str]) -> str:
    return " ".join([*terms(text), *(_fts_place(level, name) for level, name in places.items())])


def fts_query(query: Query, places: dict[str, str]) -> str:
    parts = ['"' + " ".join(phrase) + '"' for phrase in query.phrases]
    parts += [f'"{p}"*' for p in query.prefixes]
    parts += [f'"{_fts_place(level, name)}"' for level, name in places.items()]
    return " AND ".join(parts)
