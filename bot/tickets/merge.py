"""Are two reports about the same problem? Same village and category are checked by the caller (the
query); here, whether they name the same thing. The category alone never merges: a school railing is not
a leaning power pole, a 2组 outage is not a broken street light.

The decision, over normalised text (simplified, no punctuation):

1. **Objects** — what is broken (路灯, 电线杆, 栏杆, 水管, 井盖, 垃圾桶, 低保 …), each word mapped to an
   object class (电杆/电线杆 are one). Two reports that both name objects and share none are different.
2. **Places** — where (2组/二组/二队/2社, 十二组 = 12组, 张湾组, 7号, 村口, 东头, 学校, 祠堂, 河边 …).
   Two reports that both name places and share none are different.

Regional words are read as the common one first (冇/莫得 → 没, 屯子 → 村); symptoms count as what is
wrong (发黄/怪味: the water's quality, not its supply); a doctor is not a medicine.
3. A shared object is the same problem (places did not conflict).
4. Otherwise the wording decides: Jaccard similarity of the character bigrams ≥ ``threshold`` (0–1).

Measured on tests/data/merge_pairs.jsonl (``benchmarks/bench_merge.py``, figures in BENCHMARKS.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NOT_TEXT = re.compile(r"[^\w]+")
_CN_NUM = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_GROUP = r"(?:村民)?(?:小组|组|生产队|队|社)"
"""A village's groups, as they are called across regions: 组 / 村民小组, 队 / 生产队 (north), 社 (Sichuan)."""
_NUMERAL_PLACE = re.compile(r"([一二两三四五六七八九十0-9]{1,3})" + _GROUP)
_NAMED_PLACE = re.compile(r"([\u4e00-\u9fff]{2})(?:村民)?小?组")
_HOUSE_NUMBER = re.compile(r"(?<![月日\d])(\d{1,4})号(?![线楼])")
_DIALECT = {
    "冇": "没",
    "莫得": "没有",
    "木有": "没有",
    "没得": "没有",
    "屯子": "村",
    "起屋": "盖房",
    "娃娃": "小孩",
}
"""Regional words for the same thing, read as the common one before anything is compared."""
_GENERIC_PLACES = {
    "我们",
    "咱们",
    "你们",
    "他们",
    "这个",
    "那个",
    "本村",
    "全村",
    "小组",
    "村民",
    "哪个",
    "每个",
    "这边",
    "那边",
}
_PLACE_WORDS = {
    "村口": "村口",
    "小学": "学校",
    "学校": "学校",
    "校门": "学校",
    "祠堂": "祠堂",
    "河边": "河边",
    "河里": "河边",
    "广场": "广场",
    "池塘": "池塘",
    "山上": "山上",
    "山脚": "山上",
    "卫生室": "卫生室",
    "村委": "村委",
    "菜市场": "菜市场",
    "东头": "东头",
    "村东": "东头",
    "西头": "西头",
    "村西": "西头",
    "南头": "南头",
    "北头": "北头",
}

# object word → object class; longer words are matched first
_OBJECT_CLASSES: dict[str, tuple[str, ...]] = {
    "water_supply": ("停水", "没水", "断水", "来水", "自来水", "供水", "水压"),
    "water_quality": ("浑浊", "发黄", "水黄", "黄的", "泥汤", "怪味", "异味", "有味", "有股味", "水质"),
    "water_pipe": ("自来水管", "水管", "管道", "爆管"),
    "well_water": ("井水", "井里"),
    "water_fee": ("水费",),
    "streetlight": ("路灯", "路燈"),
    "power_outage": ("停电", "没电", "断电", "跳闸", "来电"),
    "pole": ("电线杆", "电杆", "线杆"),
    "wire": ("电线", "电缆"),
    "transformer": ("变压器",),
    "pit": ("大坑", "塌了", "陷下去", "坑洼", "坑"),
    "railing": ("栏杆", "护栏", "围栏"),
    "bridge": ("桥",),
    "blocked_road": ("堵了", "堵死", "泥石流", "塌方"),
    "speed_bump": ("减速带",),
    "dumping": ("建筑垃圾", "乱倒", "倾倒"),
    "garbage": ("垃圾桶", "垃圾清运", "清运", "垃圾"),
    "toilet": ("厕所", "公厕", "茅坑"),
    "wall": ("墙体", "墙", "老房", "老屋", "危房"),
    "manhole": ("井盖", "窨井"),
    "mahjong": ("麻将", "打牌", "赌"),
    "theft": ("偷", "被盗"),
    "noise": ("音响", "广场舞", "噪音", "嗡嗡"),
    "homestead": ("宅基地", "地基", "越界"),
    "subsidy_housing": ("危房改造",),
    "illegal_building": ("厂房", "违建", "违规建"),
    "pension": ("养老金",),
    "elderly_allowance": ("高龄",),
    "dibao": ("低保",),
    "disability": ("残疾",),
    "public_board": ("公开栏", "公示栏", "村务公开"),
    "funds": ("资金", "钱花", "账目"),
    "doctor": ("医生", "大夫", "村医"),
    "medicine": ("药品", "缺药", "感冒药", "药"),
    "school_bus": ("校车",),
    "canal": ("水渠", "渠道", "灌溉"),
    "pesticide": ("农药",),
    "sewage": ("粪水", "排污", "污水", "废水", "脏水"),
    "burning": ("烧垃圾", "焚烧", "烟"),
    "quarry": ("采石", "石场", "放炮", "粉尘", "灰尘"),
    "dogs": ("狗",),
    "parcel": ("快递",),
}
_OBJECT_WORDS = sorted(
    ((word, name) for name, words in _OBJECT_CLASSES.items() for word in words), key=lambda p: -len(p[0])
)


def _compact(text: str) -> str:
    text = _NOT_TEXT.sub("", text)
    for word, common in _DIALECT.items():
        text = text.replace(word, common)
    return text


def _number(numeral: str) -> str:
    """二 → 2, 十二 → 12, 二十 → 20, 12 → 12."""
    if numeral.isdigit():
        return str(int(numeral))
    if "十" in numeral:
        tens, _, ones = numeral.partition("十")
        return str(_CN_NUM.get(tens, 1) * 10 + _CN_NUM.get(ones, 0))
    return "".join(str(_CN_NUM.get(ch, ch)) for ch in numeral)


def bigrams(text: str) -> frozenset[str]:
    compact = _compact(text)
    return frozenset(compact[i : i + 2] for i in range(len(compact) - 1))


def places(text: str) -> set[str]:
    """Places inside a village named in a report: numbered and named groups (2组 = 二组), landmarks."""
    text = _compact(text)
    found = {_number(num) + "组" for num in _NUMERAL_PLACE.findall(text)}
    found |= {str(int(num)) + "号" for num in _HOUSE_NUMBER.findall(text)}
    for match in _NAMED_PLACE.finditer(text):
        name = match.group(1)
        if name not in _GENERIC_PLACES and not any(ch in "一二两三四五六七八九十" for ch in name):
            found.add(name + "组")
    for word, place in _PLACE_WORDS.items():
        if word in text:
            found.add(place)
    return found


def objects(text: str) -> set[str]:
    """The object classes a report names (longest words first, each span counted once)."""
    found: set[str] = set()
    rest = _compact(text)
    for word, name in _OBJECT_WORDS:
        if word in rest:
            found.add(name)
            rest = rest.replace(word, "|")
    return found


def jaccard(a: str, b: str) -> float:
    a, b = _compact(a), _compact(b)
    ga, gb = bigrams(a), bigrams(b)
    if not ga or not gb:
        return 0.0
    return len(ga & gb) / len(ga | gb)


def same_problem(
    norm_a: str, keywords_a: Iterable[str], norm_b: str, keywords_b: Iterable[str], *, threshold: float
) -> bool:
    """Two reports of one village and category: the same problem? (``keywords`` are the classifier's
    content words; a shared one counts as shared wording.)"""
    oa, ob = objects(norm_a), objects(norm_b)
    if oa and ob and not (oa & ob):
        return False
    pa, pb = places(norm_a), places(norm_b)
    if pa and pb and not (pa & pb):
        return False
    if oa & ob:
        return True
    shared_words = set(keywords_a) & set(keywords_b)
    return jaccard(norm_a, norm_b) >= threshold or len(shared_words) >= 2
