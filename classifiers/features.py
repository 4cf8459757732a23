"""Features of one message for the trained model: rule evidence, character n-grams, role, signs.

Every feature is a readable string so that a flag can explain itself:
* ``r:<rule>`` a rule fired (its keywords are in the evidence), ``r:<rule>@<role>`` the same for the
  sender's role, ``r:<rule>|提及`` the same in a message that only mentions it (听说, 上次, a quote);
* ``g:<rule>/<n>`` term group n of a rule has a hit, even when the rule as a whole did not fire (a clue
  needs a title and a misdeed; either alone is still evidence);
* ``c:<text>`` a character n-gram (1 to 3 characters) of the normalised text;
* ``role:<role>``, ``len:<bucket>``, ``e:<sign>`` (👍, [强], 🙏 …), ``p:<punctuation sign>``.
The list is sorted and free of duplicates: the same text always gives the same features, whatever the
hash seed.
"""

from __future__ import annotations

import re

from classifiers.engine import Evidence

NGRAM_MIN = 1  # single characters matter: without them macro F1 on the set-aside data fell 0.923 -> 0.900
NGRAM_MAX = 3
MAX_NGRAM_CHARS = 400  # n-grams of the first N characters only: a long letter says what it is early
GRAM = "c:"  # the prefix of a character n-gram feature

# Signs that carry meaning although the rules never see them (the normaliser drops emoji and stickers).
SIGNS: dict[str, str] = {
    "👍": "赞",
    "[强]": "赞",
    "[赞]": "赞",
    "[OK]": "赞",
    "👌": "赞",
    "[胜利]": "赞",
    "🙏": "拜托",
    "[抱拳]": "拜托",
    "[合十]": "拜托",
    "[握手]": "拜托",
    "😡": "怒",
    "[发怒]": "怒",
    "😠": "怒",
    "🤬": "怒",
    "[咒骂]": "怒",
    "💢": "怒",
    "[菜刀]": "威胁",
    "🔪": "威胁",
    "[炸弹]": "威胁",
    "💣": "威胁",
    "[便便]": "骂",
    "💩": "骂",
    "🖕": "骂",
    "[鄙视]": "骂",
    "😭": "哭",
    "[大哭]": "哭",
    "[流泪]": "哭",
    "😢": "哭",
    "🎉": "喜",
    "[庆祝]": "喜",
    "🎂": "喜",
    "[蛋糕]": "喜",
    "💐": "喜",
    "🧧": "红包",
    "[红包]": "红包",
    "💰": "钱",
    "🧨": "喜",
    "[爆竹]": "喜",
    "[烟花]": "喜",
    "❤": "爱",
    "[爱心]": "爱",
    "[玫瑰]": "爱",
    "🔥": "火",
    "👉": "指",
    "[链接]": "链接",
    "[图片]": "图片",
}
_SIGN_RE = re.compile("|".join(re.escape(k) for k in sorted(SIGNS, key=len, reverse=True)))
# A message that only mentions a thing: hearsay, news, a quote, a question about a word. (Words of the
# past, 上次 or 去年, are left to the n-grams: "又停水了,上次修好没几天" is a demand.)
MENTION_CUES: tuple[str, ...] = (
    "听说",
    "据说",
    "听讲",
    "听人说",
    "新闻",
    "电视上",
    "网上",
    "视频里",
    "被查",
    "通报",
    "曝光",
    "什么意思",
    "啥意思",
)
_QUOTE_RE = re.compile('[“”「」『』"]')
_PUNCT = {"?": "问", "？": "问", "!": "叹", "！": "叹", "【": "框", "#": "井", "@": "艾特"}
_URL_RE = re.compile(r"https?://|www\.|\.com|\.cn\b", re.IGNORECASE)
_PHONE_RE = re.compile(r"1[3-9]\d{9}|\d{3,4}-\d{7,8}|[x×]{4,}")
_TICKET_REF_RE = re.compile(r"#\s*\d+")


def _length_bucket(n: int) -> str:
    if n <= 4:
        return "len:极短"
    if n <= 12:
        return "len:短"
    if n <= 40:
        return "len:中"
    if n <= 120:
        return "len:长"
    return "len:很长"


def symbols(text: str, ev: Evidence, rule_ids: tuple[str, ...]) -> set[str]:
    """Every feature of a message but its character n-grams (``rule_ids[i]`` names rule i)."""
    feats: set[str] = set()
    core = ev.core
    role = ev.role
    feats.add(f"role:{role}")
    feats.add(_length_bucket(len(core)))
    mention = any(c in core for c in MENTION_CUES) or bool(_QUOTE_RE.search(text))
    if mention:
        feats.add("p:提及")
    for rule, _ in ev.fired:
        if rule.shadow:
            continue
        feats.add(f"r:{rule.id}")
        feats.add(f"r:{rule.id}@{role}")
        if mention:
            feats.add(f"r:{rule.id}|提及")
    for ri, gi in ev.group_hits:
        feats.add(f"g:{rule_ids[ri]}/{gi}")
    for m in _SIGN_RE.finditer(text):
        feats.add("e:" + SIGNS[m.group(0)])
    for ch, name in _PUNCT.items():
        if ch in text:
            feats.add("p:" + name)
    if _URL_RE.search(text):
        feats.add("p:网址")
    if _PHONE_RE.search(text):
        feats.add("p:号码")
    if _TICKET_REF_RE.search(text):
        feats.add("p:工单号")
    return feats


def ngram_head(core: str) -> str:
    """The part of the normalised text whose n-grams are features."""
    return core[:MAX_NGRAM_CHARS]


def extract(text: str, ev: Evidence, rule_ids: tuple[str, ...]) -> list[str]:
    """The sorted feature names of a message, given its rule evidence (training; see LinearModel.rows)."""
    feats = symbols(text, ev, rule_ids)
    head = ngram_head(ev.core)
    n = len(head)
    for size in range(NGRAM_MIN, NGRAM_MAX + 1):
        for i in range(n - size + 1):
            feats.add(GRAM + head[i : i + size])
    return sorted(feats)
