"""Masking of personal numbers (mobile phone and resident ID numbers) wherever a person reads text.

The one helper every page, export and private message uses: ``mask_numbers``. It recognises the ways
people actually write them in a chat: ``13912345678``, ``139-1234-5678``, ``139 1234 5678``, ``+86 139…``,
``0086…``, full-width digits (``１３９…``), and 18-character ID numbers ending in X. Only the digits in the
middle are replaced, so the rest of the text (separators, width) stays as written.
"""

from __future__ import annotations

import re

_D = "[0-9０-９]"
_X = "[0-9０-９XxＸｘ]"
_SEP = "[ \\-－\u3000\u00a0]"
"""One separator people put between digit groups: space, hyphen, full-width hyphen, ideographic space."""

# Country code first (+86, ＋86, 0086, 86), then a mobile number: 1, [3-9], 9 more digits, any grouping.
_PHONE = re.compile(
    rf"(?<![0-9０-９])"
    rf"(?:(?:(?:\+|＋)\s?|00|００)?(?:86|８６){_SEP}?)?"
    rf"([1１]{_SEP}?[3-9３-９](?:{_SEP}?{_D}){{9}})"
    rf"(?!{_SEP}?{_D})"
)
# 17 digits and a check character (digit or X), optionally in 6-8-4 groups.
_ID = re.compile(rf"(?<![0-9０-９XxＸｘ])({_D}{{6}}{_SEP}?{_D}{{8}}{_SEP}?{_D}{{3}}{_X})(?![0-9０-９XxＸｘ])")


_DIGIT_OR_X = re.compile(_X)


def _mask_digits(number: str, start: int, count: int) -> str:
    """Replace the digits (not the separators) at digit positions ``start`` … ``start + count - 1``."""
    out: list[str] = []
    position = 0
    for char in number:
        if _DIGIT_OR_X.match(char):
            out.append("*" if start <= position < start + count else char)
            position += 1
        else:
            out.append(char)
    return "".join(out)


def mask_numbers(text: str) -> str:
    """138****5678 for mobile numbers, 110101********1234 for resident ID numbers, in any common format."""
    if not text:
        return text
    text = _ID.sub(lambda m: _mask_group(m, 6, 8), text)
    return _PHONE.sub(lambda m: _mask_group(m, 3, 4), text)


def _mask_group(match: re.Match[str], start: int, count: int) -> str:
    whole, offset = match.group(0), match.start(1) - match.start(0)
    number = match.group(1)
    return whole[:offset] + _mask_digits(number, start, count) + whole[offset + len(number) :]
