"""What a message in a group or a private chat says about tickets: ``#12``, command words, ratings.

Pure functions over text, so the wording rules are tested without a database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_FULL_WIDTH = str.maketrans("＃０１２３４５６７８９", "#0123456789")
_TICKET_REF = re.compile(r"#\s*(\d{1,9})")
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}


class Action(StrEnum):
    PROGRESS = "progress"
    ACCEPT = "accept"
    RESOLVE = "resolve"
    EXTEND = "extend"
    ESCALATE = "escalate"


class Rating(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    UNSATISFIED = "unsatisfied"


# Checked in this order: the first word found decides.
_ACTION_WORDS: tuple[tuple[Action, tuple[str, ...]], ...] = (
    (Action.EXTEND, ("延期",)),
    (Action.ESCALATE, ("转镇", "转县", "上报")),
    (Action.RESOLVE, ("办结", "已解决", "已处理", "已修好", "已完成", "处理完毕")),
    (Action.ACCEPT, ("受理",)),
)
COMMAND_WORDS = tuple(word for _, words in _ACTION_WORDS for word in words)


@dataclass(frozen=True, slots=True)
class Command:
    ticket_id: int
    action: Action
    text: str
    """The message with ``#12`` and the command word taken out: the progress note or the reason."""


def clean(text: str) -> str:
    return text.translate(_FULL_WIDTH)


def ticket_refs(text: str) -> list[int]:
    return [int(m) for m in _TICKET_REF.findall(clean(text))]


def parse_command(text: str) -> Command | None:
    """A cadre's or staff member's message about a ticket, or None when it names no ticket."""
    text = clean(text)
    refs = _TICKET_REF.findall(text)
    if not refs:
        return None
    action = Action.PROGRESS
    for candidate, words in _ACTION_WORDS:
        if any(word in text for word in words):
            action = candidate
            break
    rest = _TICKET_REF.sub(" ", text)
    rest = re.sub(r"^[\s,，。:：、;；!！]+|[\s,，;；]+$", "", rest.strip())
    return Command(ticket_id=int(refs[0]), action=action, text=rest.strip())


def has_command_word(text: str) -> bool:
    return any(word in text for word in COMMAND_WORDS)


_STARS = re.compile(r"([1-5一二三四五])\s*(?:颗)?\s*(?:星|分)")
_NEGATIVE = ("不满意", "不太满意", "很不满意", "非常不满意", "不满")
_BASIC = ("基本满意", "一般满意", "比较满意", "还算满意", "一般")
_POSITIVE = ("非常满意", "很满意", "满意", "好评")


def parse_rating(text: str) -> Rating | None:
    """满意 / 基本满意 / 不满意 (and their usual variants) or 1–5 stars; None when the text rates nothing."""
    text = _TICKET_REF.sub(" ", clean(text)).strip()
    if len(text) > 30:  # a long message is a report or a comment, not an answer to "please rate"
        return None
    for word in _NEGATIVE:
        if word in text:
            return Rating.UNSATISFIED
    for word in _BASIC:
        if word in text:
            return Rating.BASICALLY_SATISFIED
    for word in _POSITIVE:
        if word in text:
            return Rating.SATISFIED
    stars = text.count("★") or text.count("⭐")
    if not stars:
        match = _STARS.search(text)
        if match:
            value = match.group(1)
            stars = int(value) if value.isdigit() else _CN_DIGITS[value]
        elif re.fullmatch(r"[1-5]", text):
            stars = int(text)
    if not stars:
        return None
    if stars >= 4:
        return Rating.SATISFIED
    if stars == 3:
        return Rating.BASICALLY_SATISFIED
    return Rating.UNSATISFIED


def requested_days(text: str, default: int) -> int:
    """Working days asked for in an extension request or granted in an approval ("延期5个工作日", "延期三天")."""
    match = re.search(r"(\d{1,2}|[一二两三四五六七八九十]{1,2})\s*(?:个)?\s*(?:工作日|天|日)", clean(text))
    if not match:
        return default
    value = match.group(1)
    if value.isdigit():
        return max(1, int(value))
    if value == "十":
        return 10
    if value.startswith("十"):
        return 10 + _CN_DIGITS[value[1]]
    if value.endswith("十"):
        return _CN_DIGITS[value[0]] * 10
    return _CN_DIGITS[value[0]]
