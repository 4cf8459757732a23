"""Are two reports about the same problem? Same village and category are checked by the caller (the
query); here: similar wording over normalised text, or shared keywords.

Chinese has no spaces, so the wording score is rapidfuzz's token-set ratio over character bigrams: word
order and extra words ("老人小孩怎么办") do not lower it, shared phrases ("停水", "张湾组") raise it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rapidfuzz import fuzz

_NOT_TEXT = re.compile(r"[^\w]+")
# A place inside a village (张湾组, 三组, 5组): the same place means the same problem (same village and
# category are given); two different places mean different problems.
_NUMERAL_PLACE = re.compile(r"([一二三四五六七八九十0-9]{1,3})(?:村民)?小?组")
_NAMED_PLACE = re.compile(r"([\u4e00-\u9fff]{2})(?:村民)?小?组")
_GENERIC_PLACES = {"我们", "咱们", "你们", "他们", "这个", "那个", "本村", "全村", "小组", "村民", "哪个", "每个"}


def bigrams(text: str) -> str:
    compact = _NOT_TEXT.sub("", text)
    if len(compact) < 2:
        return compact
    return " ".join(sorted({compact[i : i + 2] for i in range(len(compact) - 1)}))


def places(text: str) -> set[str]:
    found = set(_NUMERAL_PLACE.findall(text))
    for match in _NAMED_PLACE.finditer(text):
        name = match.group(1)
        if name not in _GENERIC_PLACES and not any(ch in "一二三四五六七八九十" for ch in name):
            found.add(name)
    return found


def similarity(norm_a: str, keywords_a: Iterable[str], norm_b: str, keywords_b: Iterable[str]) -> float:
    """0–100: the better of the wording score and the keyword-set score."""
    wording = fuzz.token_set_ratio(bigrams(norm_a), bigrams(norm_b)) if norm_a and norm_b else 0.0
    ka, kb = set(keywords_a), set(keywords_b)
    keyword_score = fuzz.token_set_ratio(" ".join(sorted(ka)), " ".join(sorted(kb))) if ka and kb else 0.0
    return max(float(wording), float(keyword_score))


def same_problem(
    norm_a: str, keywords_a: Iterable[str], norm_b: str, keywords_b: Iterable[str], *, threshold: float
) -> bool:
    pa, pb = places(norm_a), places(norm_b)
    if pa and pb:
        return bool(pa & pb)
    ka, kb = set(keywords_a), set(keywords_b)
    if ka & kb:
        return True
    return similarity(norm_a, ka, norm_b, kb) >= threshold
