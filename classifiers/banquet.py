"""Banquet details: from a banquet message's text and the moment it was sent, when, where, whose and how big.

Pure: text and a timezone-aware datetime in, :class:`BanquetDetails` out; imports nothing of ours but the
text normaliser's converter. Dates come in three kinds, told apart by their words:

* solar (公历): ``12月8日``, ``12.8``, ``2026年12月8日``, ``十二月八号``, ``18号``;
* lunar (农历): ``农历十月初十``, ``九月二十九``, ``腊月初八``, ``正月十六``, ``初八`` (the lunar day of the
  current lunar month, or the next when it has passed), converted with lunar-python;
* relative: ``今天``/``明天``/``后天``/``大后天``, ``本周六``, ``这个礼拜天``, ``下周日``, ``周末``, ``月底``.

Without a year the next occurrence on or after the message's day is taken (a past one when the message
says it already happened: ``上周六``, ``办了``). A field the text does not give is None; a date read from
``周末``, ``月底`` or ``月初`` is flagged ``approximate`` rather than passed off as exact.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import opencc
from lunar_python import Lunar, LunarMonth, LunarYear, Solar

WEEKDAYS = "一二三四五六日"
"""Chinese weekday names, Monday first (``周日``)."""

_DIGITS = {"零": 0, "〇": 0, "○": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN = "零〇○一二三四五六七八九十两廿卅百千"


def cn_number(text: str) -> int | None:
    """An integer from Arabic or Chinese numerals (``二十八``, ``廿三``, ``一百二``, ``2026``, ``二〇二六``)."""
    if not text:
        return None
    if text.isdigit():
        return int(text)
    if all(ch in _DIGITS for ch in text) and len(text) > 1:  # 二〇二六: digit by digit
        return int("".join(str(_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _DIGITS:
            current = _DIGITS[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "廿":
            total += 20
            current = 0
        elif ch == "卅":
            total += 30
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
        elif ch == "千":
            total += (current or 1) * 1000
            current = 0
        else:
            return None
    return total + current


@dataclass(frozen=True, slots=True)
class BanquetDetails:
    date: date | None = None
    calendar: str | None = None
    """How the date was given: ``solar``, ``lunar`` or ``relative``."""
    date_text: str | None = None
    """The words the date was read from."""
    approximate: bool = False
    """The date stands for a span (周末, 月底, 月初): the day shown is its first or last, not a fact."""
    lunar: str | None = None
    """The date's lunar name (农历十月初十), whatever way it was given."""
    time: str | None = None
    """A clock time, HH:MM, when given (11:58, 晚上六点 → 18:00)."""
    period: str | None = None
    """A part of the day (中午, 晚上, 午时) when given."""
    place: str | None = None
    host: str | None = None
    """The host's name, when the text gives it (a signature, 主家:…)."""
    relation: str | None = None
    """Whose event it is, as the host's relative (家父 → 父亲, 犬子 → 儿子, 本人)."""
    event: str | None = None
    scale: str | None = None
    """The words of the size (二十来桌, 百十号人)."""
    tables: int | None = None
    people: int | None = None

    @property
    def weekday(self) -> str | None:
        return f"周{WEEKDAYS[self.date.weekday()]}" if self.date else None

    @property
    def empty(self) -> bool:
        return all(v in (None, False) for v in asdict(self).values())

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["date"] = self.date.isoformat() if self.date else None
        values["weekday"] = self.weekday
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> BanquetDetails:
        fields = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if fields.get("date"):
            fields["date"] = date.fromisoformat(fields["date"])
        return cls(**fields)


# ------------------------------------------------------------------------------------------- patterns

_LUNAR_CAL = "农历|阴历|旧历|古历|老历"
_SOLAR_CAL = "公历|阳历|新历|国历"
_CN_MONTH = "十一|十二|冬|腊|正|十|[一二三四五六七八九]"
_NUM_MONTH = "1[0-2]|0?[1-9]"
_CN_DAY = "初[一二三四五六七八九十]|廿[一二三四五六七八九]?|卅|三十|二十[一二三四五六七八九]?|十[一二三四五六七八九]?|[一二三四五六七八九]"
_NUM_DAY = "3[01]|[12][0-9]|0?[1-9]"
_YEAR = r"(?P<year>20\d\d|[二〇零]{2}[〇零一二三四五六七八九]{2})\s*年"

# 2026年12月8日, 2026.12.8, 2026-12-08
_FULL_SOLAR = re.compile(
    r"(?P<year>20\d\d)\s*(?:年|[./-])\s*(?P<month>" + _NUM_MONTH + r")\s*(?:月|[./-])\s*(?P<day>" + _NUM_DAY
    + r")(?!\d)\s*[日号]?"
)
# [农历][2026年][农历](闰)十月初十 | 12月8日 | 十二月八号 ; the calendar decided after the match
_MONTH_DAY = re.compile(
    r"(?P<cal>" + _LUNAR_CAL + "|" + _SOLAR_CAL + r")?\s*(?:" + _YEAR + r")?\s*(?P<cal2>" + _LUNAR_CAL + "|"
    + _SOLAR_CAL + r")?\s*(?P<leap>闰)?(?P<month>" + _CN_MONTH + "|" + _NUM_MONTH + r")\s*月\s*(?:份\s*)?(?P<day>"
    + _CN_DAY + "|" + _NUM_DAY + r")(?![\d十])\s*(?P<suffix>[日号]?)"
)
# 12.8 / 12/8 (not a price, a decimal or a time)
_DOTTED = re.compile(r"(?<![\d.:/])(?P<month>" + _NUM_MONTH + r")[./](?P<day>" + _NUM_DAY + r")(?![\d.:/%元万千斤块个米])")
# 本月18号, 下个月8号, 18号, 二十八号
_DAY_ONLY = re.compile(
    r"(?P<which>本月|这个月|这月|下个月|下月)?\s*(?P<day>" + _NUM_DAY + r"|二十[一二三四五六七八九]?|三十一?|十[一二三四五六七八九]?|[一二三四五六七八九])\s*[号日](?!子|本|报|常|期|人|楼|桌|房|厅|包|床)"
)
# 初八, 农历十八, 下个月初六 (lunar day only)
_LUNAR_DAY = re.compile(
    r"(?P<which>下个月|下月|本月|这个月)?(?:(?P<cal>" + _LUNAR_CAL + r")\s*(?P<day>" + _CN_DAY + "|" + _NUM_DAY
    + r")|(?P<chu>初[一二三四五六七八九十]))(?![一二三四五六七八九十\d])"
)
_WEEKDAY = re.compile(
    r"(?P<pre>本|这个|这|今|下个|下一个|下一|下|上个|上)?\s*(?:周|星期|礼拜|週|禮拜)(?P<wd>[一二三四五六日天七])"
)
_WEEKEND = re.compile(r"(?P<pre>本|这个|这|下个|下一个|下|上个|上)?\s*(?:周末|双休日?)")
_RELATIVE = re.compile(r"大后天|后儿个|后儿|后天|后日|今天|今日|今儿|今晚|今早|今中午|明天|明日|明儿个|明儿|明晚|明早|明中午|昨天|昨日|前天")
_RELATIVE_DAYS = {"大后天": 3, "后儿个": 2, "后儿": 2, "后天": 2, "后日": 2, "昨天": -1, "昨日": -1, "前天": -2}
_MONTH_END = re.compile(r"(?P<pre>本|这个|这|下个|下)?\s*月(?P<part>底|末|初)")
_PAST = re.compile(r"办了|摆了|吃了|请了|办过|已经办|已办|昨天|前天|上周|上个礼拜|上礼拜|上星期|刚办完|刚吃完")


def _lunar_month(text: str) -> int:
    names = {"正": 1, "冬": 11, "腊": 12}
    return names.get(text) or cn_number(text) or 0


def _lunar_day(text: str) -> int:
    if text.startswith("初"):
        return cn_number(text[1:]) or 0
    return cn_number(text) or 0


def lunar_name(day: date) -> str:
    """农历十月初十 for a solar date (闰六月 in a leap month)."""
    lunar = Solar.fromYmd(day.year, day.month, day.day).getLunar()
    return f"农历{lunar.getMonthInChinese()}月{lunar.getDayInChinese()}"


def lunar_to_solar(year: int, month: int, day: int, *, leap: bool = False) -> date | None:
    """The solar date of a lunar year/month/day, or None when that month has no such day (or no such leap)."""
    if not 1 <= month <= 12 or not 1 <= day <= 30:
        return None
    if leap and LunarYear.fromYear(year).getLeapMonth() != month:
        return None
    signed = -month if leap else month
    if LunarMonth.fromYm(year, signed).getDayCount() < day:
        return None
    solar = Lunar.fromYmd(year, signed, day).getSolar()
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


def _lunar_months_from(today: date, count: int) -> list[tuple[int, int]]:
    """(lunar year, signed month) of the lunar month containing ``today`` and the ``count - 1`` after it."""
    lunar = Solar.fromYmd(today.year, today.month, today.day).getLunar()
    out = [(lunar.getYear(), lunar.getMonth())]
    month = LunarMonth.fromYm(lunar.getYear(), lunar.getMonth())
    while len(out) < count:
        month = month.next(1)
        out.append((month.getYear(), month.getMonth()))
    return out


def _month_end(year: int, month: int) -> date:
    first_next = date(year + (month == 12), month % 12 + 1, 1)
    return first_next - timedelta(days=1)


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + months
    return index // 12, index % 12 + 1


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------- fields

_PERIODS = {
    "早上": "上午", "早晨": "上午", "上午": "上午", "中午": "中午", "午宴": "中午", "午饭": "中午", "午餐": "中午",
    "晌午": "中午", "午时": "午时", "下午": "下午", "傍晚": "晚上", "晚上": "晚上", "晚宴": "晚上", "晚饭": "晚上",
    "晚餐": "晚上", "今晚": "晚上", "明晚": "晚上", "夜里": "晚上", "晚间": "晚上", "今早": "上午", "明早": "上午",
    "今中午": "中午", "明中午": "中午",
}
_PERIOD_RE = re.compile("|".join(sorted(_PERIODS, key=len, reverse=True)))
_CLOCK_RE = re.compile(
    r"(?<![\d.])(?P<h>[01]?\d|2[0-3])\s*[:：]\s*(?P<m>[0-5]\d)(?!\d)"
    r"|(?P<h2>[01]?\d|2[0-3]|十[一二]?|[一二三四五六七八九两])\s*(?:点|時|时)(?!钟?前)\s*(?:钟)?\s*(?P<m2>半|整|[0-5]?\d分?|[一二三四五]十[一二三四五六七八九]?分?|一刻)?"
)

_PLACE_SUFFIX = (
    "大酒店|大酒楼|大饭店|酒店|酒楼|饭店|饭庄|酒家|宾馆|餐厅|餐馆|食府|农家乐|山庄|会所|大排档|"
    "村委会旁边|村委会旁|村委会|村部|文化礼堂|礼堂|祠堂|宗祠|老屋|老宅|老家|家中|家里|寒舍|舍下|屋里|屋头|"
    "大院|院子|院坝|广场|家门口|门口|屋门口|屋场|晒场|稻场|活动中心"
)
_PLACE_ADDRESS = re.compile(r"(?:(?:地址|地点|宴址|席设|宴设)\s*[:：]|席设|宴设|设宴于)\s*(?P<place>[^,，。!！;；\s]{2,30})")
_PLACE_AT = re.compile(
    r"(?:在|于|假座|设在|摆在|定在|到)(?P<place>[^在于到,，。!！;；\s]{0,12}(?:" + _PLACE_SUFFIX + r")(?:[一二三四五六七八九十\d]+楼)?(?:[^,，。!！;；\s在]{0,6}?(?:厅|包厢|号))?)"
)
_PLACE_BARE = re.compile(
    r"(?P<place>[\u4e00-\u9fa5A-Za-z0-9]{1,10}?(?:大酒店|大酒楼|大饭店|酒店|酒楼|饭店|饭庄|酒家|宾馆|食府|农家乐|山庄)(?:[一二三四五六七八九十\d]+楼)?)"
)
_PLACE_HOME = re.compile(
    r"(?P<place>寒舍|舍下|家中|家里|老家|老屋|老宅|祠堂|宗祠|屋头|屋里|新居|新房)(?=\s*(?:设宴|略备|备|摆|办|整|吃|坐席|请|过事))"
)
_PLACE_NOISE = re.compile(
    r"^(?:[本这下上]个?(?:周|星期|礼拜)[一二三四五六日天七]|周末|今天|明天|后天|大后天|今晚|明晚|"
    r"\d{1,2}月\d{1,2}[日号]?|农历[^\s]{2,6}?[日号初十]|上午|中午|下午|晚上|傍晚|届时|当天|那天|的)+"
)

_RELATIONS = {
    "家父": "父亲", "家严": "父亲", "先父": "父亲", "老父亲": "父亲", "老父": "父亲", "父亲": "父亲", "我爸": "父亲",
    "我爹": "父亲", "老爹": "父亲", "老爷子": "父亲", "爸爸": "父亲",
    "家母": "母亲", "家慈": "母亲", "先母": "母亲", "老母亲": "母亲", "老母": "母亲", "母亲": "母亲", "我妈": "母亲",
    "我娘": "母亲", "老娘": "母亲", "老妈": "母亲", "妈妈": "母亲",
    "犬子": "儿子", "小儿子": "儿子", "大儿子": "儿子", "二儿子": "儿子", "小儿": "儿子", "小犬": "儿子",
    "儿子": "儿子", "我儿": "儿子", "小子": "儿子", "长子": "儿子", "次子": "儿子", "公子": "儿子",
    "小女": "女儿", "千金": "女儿", "女儿": "女儿", "闺女": "女儿", "姑娘": "女儿", "长女": "女儿", "丫头": "女儿",
    "小孙子": "孙子", "长孙": "孙子", "孙子": "孙子", "大孙子": "孙子", "孙儿": "孙子",
    "孙女": "孙女", "外孙女": "外孙女", "外孙": "外孙",
    "本人": "本人", "鄙人": "本人", "在下": "本人",
    "家兄": "哥哥", "哥哥": "哥哥", "舍弟": "弟弟", "弟弟": "弟弟", "侄子": "侄子", "侄儿": "侄子", "侄女": "侄女",
    "祖父": "祖父", "爷爷": "祖父", "祖母": "祖母", "奶奶": "祖母", "岳父": "岳父", "岳母": "岳母",
    "公公": "公公", "婆婆": "婆婆", "老伴": "配偶", "爱人": "配偶", "内人": "配偶",
}
_RELATION_RE = re.compile("|".join(sorted(_RELATIONS, key=len, reverse=True)))

_EVENTS: list[tuple[str, str]] = [
    ("白事", "白事|丧事|丧宴|逝世|去世|仙逝|辞世|过世|病故|千古|出殡|安葬|治丧|豆腐饭|白喜事|老人走了|驾鹤"),
    ("订婚", "订婚|定亲|订亲|定婚|看日子|过礼"),
    ("谢师宴", "谢师"),
    ("升学宴", "升学|金榜题名|考上|录取|状元|大学|高中了"),
    ("满月", "满月|弥月|百日|百天|洗三"),
    ("周岁", "周岁|抓周"),
    ("婚宴", "婚宴|喜酒|结婚|新婚|大婚|婚礼|完婚|出嫁|出阁|嫁|娶媳妇|娶亲|喜宴|成婚|于归|迎娶|喜结良缘|办喜事|新人"),
    ("寿宴", "大寿|寿宴|寿辰|寿诞|过寿|做寿|祝寿|整寿|寿酒|暖寿"),
    ("乔迁", "乔迁|新居|落成|进宅|进火|入宅|上梁|暖房|搬新家|新屋|新房"),
    ("开业", "开业|开张|开门大吉|开业大吉"),
    ("参军", "参军|入伍|当兵|送兵|光荣入伍"),
    ("生日", "生日|过生|生辰"),
]
_EVENT_RES = [(name, re.compile(words)) for name, words in _EVENTS]

_NUM = r"[\d零〇一二三四五六七八九十两百]+"
_TABLES_RE = re.compile(r"(?P<n>" + _NUM + r"|几十|十几|几)\s*(?P<approx>来|多|余|几|把)?\s*(?:张)?\s*(?:桌|席)(?!子上|布)")
_PEOPLE_RE = re.compile(r"(?P<n>百十|几十|上百|近百|上千|" + _NUM + r")\s*(?P<approx>来|多|余|几)?\s*(?:号人|个人|口人|人)(?!家|民|员|情|生)")

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施"
    "文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷"
    "盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷"
    "晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_NAME = r"[" + _SURNAMES + r"][\u4e00-\u9fa5]{1,2}?"
_HOST_RES = [
    re.compile(r"(?:主家|东家|主人|宴请人|邀请人)\s*[:：]\s*(?P<name>[" + _SURNAMES + r"][\u4e00-\u9fa5]{1,2})(?![\u4e00-\u9fa5])"),
    re.compile(
        r"(?P<name>" + _NAME + r")\s*(?:先生|女士)?\s*(?:携全家|携家人|率全家|携妻|携夫人|偕夫人|阖家|全家)?\s*"
        r"(?:敬邀|谨邀|恭候|敬约|谨订|敬上|谨上|拜上|鞠躬|恭请|敬请|叩请|谨启|敬启)"
    ),
]
_NOT_NAMES = frozenset({"全家", "我们", "本人", "各位", "届时", "万分", "特此", "诚挚", "在此", "欢迎", "真诚"})


# ------------------------------------------------------------------------------------------- the extractor


@lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def clean(text: str) -> str:
    """Half-width, simplified characters, one space for a run of whitespace."""
    text = unicodedata.normalize("NFKC", text or "")
    text = _converter().convert(text)
    return re.sub(r"\s+", " ", text).strip()


def extract(text: str, at: datetime) -> BanquetDetails:
    """The banquet details of ``text``, a message sent at ``at`` (aware; its own zone is the local one)."""
    value = clean(text)
    today = at.date()
    found = _date(value, today)
    day, calendar, words, approximate = found if found else (None, None, None, False)
    time_, period = _time(value)
    scale, tables, people = _scale(value)
    return BanquetDetails(
        date=day,
        calendar=calendar,
        date_text=words,
        approximate=approximate,
        lunar=lunar_name(day) if day else None,
        time=time_,
        period=period,
        place=_place(value),
        host=_host(value),
        relation=_relation(value),
        event=_event(value),
        scale=scale,
        tables=tables,
        people=people,
    )


def _pick(candidates: list[date], today: date, past: bool) -> date | None:
    if past:
        before = [d for d in candidates if d <= today]
        if before:
            return max(before)
    after = [d for d in candidates if d >= today]
    return min(after) if after else None


Found = tuple[date, str, str, bool]


def _date(text: str, today: date) -> Found | None:
    past = bool(_PAST.search(text))
    for finder in (_full_solar, _month_day, _dotted, _lunar_day_only, _day_only, _weekday, _relative, _weekend, _month_end_):
        found = finder(text, today, past)
        if found is not None:
            return found
    return None


_SET = re.compile(r"(?:定于|定在|订于|择于|谨定于|谨詹于|定)\s*$")
_FEAST_AFTER = re.compile(r"^[^,，。!！;；\s]{0,8}?(?:摆|办|设宴|设席|吃酒|吃饭|吃席|整酒|坐席|开席|送行|宴|酒|席|饭)")


def _preferred(text: str, matches: list[re.Match[str]]) -> list[re.Match[str]]:
    """Matches in the order to try: one introduced by 定于, then one a feast word follows, then the rest."""
    if len(matches) < 2:
        return matches

    def rank(m: re.Match[str]) -> int:
        if _SET.search(text[max(0, m.start() - 4) : m.start()]):
            return 0
        if _FEAST_AFTER.search(text[m.end() :]):
            return 1
        return 2

    return sorted(matches, key=rank)


def _full_solar(text: str, today: date, past: bool) -> Found | None:
    for m in _FULL_SOLAR.finditer(text):
        day = _valid(int(m["year"]), int(m["month"]), int(m["day"]))
        if day is not None:
            return day, "solar", m.group(0), False
    return None


def _month_day(text: str, today: date, past: bool) -> Found | None:
    for m in _preferred(text, list(_MONTH_DAY.finditer(text))):
        cal = m["cal"] or m["cal2"] or ""
        month_text, day_text = m["month"], m["day"]
        chinese = not month_text.isdigit() and not day_text.isdigit()
        lunar_words = month_text in ("正", "冬", "腊") or day_text.startswith(("初", "廿", "卅")) or m["leap"]
        if cal and cal in _SOLAR_CAL.split("|"):
            lunar = False
        elif cal or lunar_words:
            lunar = True
        else:
            # 九月二十九 (no 日/号, Chinese numerals) is how lunar dates are said; 12月8日 and 十二月八日 are solar
            lunar = chinese and not m["suffix"]
        month, day_number = _lunar_month(month_text), _lunar_day(day_text)
        year = cn_number(m["year"]) if m["year"] else None
        if lunar:
            day = _lunar_date(month, day_number, today, past, year=year, leap=bool(m["leap"]))
        else:
            day = _solar_date(month, day_number, today, past, year=year)
        if day is not None:
            return day, "lunar" if lunar else "solar", m.group(0).strip(), False
    return None


def _lunar_date(month: int, day: int, today: date, past: bool, *, year: int | None, leap: bool = False) -> date | None:
    if year is not None:
        return lunar_to_solar(year, month, day, leap=leap)
    base = Solar.fromYmd(today.year, today.month, today.day).getLunar().getYear()
    candidates = []
    for y in (base - 1, base, base + 1):
        for is_leap in (False, True) if not leap else (True,):
            found = lunar_to_solar(y, month, day, leap=is_leap)
            if found is not None:
                candidates.append(found)
    return _pick(candidates, today, past)


def _solar_date(month: int, day: int, today: date, past: bool, *, year: int | None) -> date | None:
    if year is not None:
        return _valid(year, month, day)
    candidates = [d for y in (today.year - 1, today.year, today.year + 1) if (d := _valid(y, month, day))]
    return _pick(candidates, today, past)


def _dotted(text: str, today: date, past: bool) -> Found | None:
    for m in _DOTTED.finditer(text):
        day = _solar_date(int(m["month"]), int(m["day"]), today, past, year=None)
        if day is not None:
            return day, "solar", m.group(0), False
    return None


def _lunar_day_only(text: str, today: date, past: bool) -> Found | None:
    for m in _LUNAR_DAY.finditer(text):
        number = _lunar_day(m["chu"] or m["day"])
        months = _lunar_months_from(today, 3)
        if m["which"] in ("下个月", "下月"):
            months = months[1:]
        candidates = [
            d
            for y, signed in months
            if (d := lunar_to_solar(y, abs(signed), number, leap=signed < 0)) is not None
        ]
        if m["which"] in ("下个月", "下月", "本月", "这个月"):
            day = candidates[0] if candidates else None
        else:
            day = _pick(candidates, today, past)
        if day is not None:
            return day, "lunar", m.group(0), False
    return None


def _day_only(text: str, today: date, past: bool) -> Found | None:
    for m in _DAY_ONLY.finditer(text):
        number = cn_number(m["day"]) or 0
        which = m["which"] or ""
        if which in ("下个月", "下月"):
            y, mo = _add_months(today.year, today.month, 1)
            day = _valid(y, mo, number)
        elif which:
            day = _valid(today.year, today.month, number)
        else:
            candidates = []
            for offset in (-1, 0, 1, 2):
                y, mo = _add_months(today.year, today.month, offset)
                if (d := _valid(y, mo, number)) is not None:
                    candidates.append(d)
            day = _pick(candidates, today, past)
        if day is not None:
            return day, "solar", m.group(0).strip(), False
    return None


def _week_start(today: date, pre: str) -> date | None:
    """Monday of the week that ``pre`` (本/下/上…) names; None for no prefix."""
    monday = today - timedelta(days=today.weekday())
    if pre.startswith("下"):
        return monday + timedelta(days=7)
    if pre.startswith("上"):
        return monday - timedelta(days=7)
    if pre:
        return monday
    return None


def _weekday(text: str, today: date, past: bool) -> Found | None:
    for m in _WEEKDAY.finditer(text):
        index = WEEKDAYS.index(m["wd"]) if m["wd"] in WEEKDAYS else 6
        start = _week_start(today, m["pre"] or "")
        if start is not None:
            day = start + timedelta(days=index)
        else:
            ahead = (index - today.weekday()) % 7
            day = today - timedelta(days=(7 - ahead) % 7) if past else today + timedelta(days=ahead)
        return day, "relative", m.group(0).strip(), False
    return None


def _relative(text: str, today: date, past: bool) -> Found | None:
    found = _preferred(text, list(_RELATIVE.finditer(text)))
    if not found:
        return None
    m = found[0]
    word = m.group(0)
    offset = _RELATIVE_DAYS.get(word, 1 if word.startswith("明") else 0)
    return today + timedelta(days=offset), "relative", word, False


def _weekend(text: str, today: date, past: bool) -> Found | None:
    m = _WEEKEND.search(text)
    if m is None:
        return None
    start = _week_start(today, m["pre"] or "")
    if start is None:
        start = today - timedelta(days=today.weekday())
        if today.weekday() == 6 and not past:  # 周末 said on a Sunday: today
            return today, "relative", m.group(0).strip(), True
    return start + timedelta(days=5), "relative", m.group(0).strip(), True


def _month_end_(text: str, today: date, past: bool) -> Found | None:
    m = _MONTH_END.search(text)
    if m is None:
        return None
    year, month = today.year, today.month
    if (m["pre"] or "").startswith("下"):
        year, month = _add_months(year, month, 1)
    day = _month_end(year, month) if m["part"] in ("底", "末") else date(year, month, 1)
    if day < today and not past:
        year, month = _add_months(year, month, 1)
        day = _month_end(year, month) if m["part"] in ("底", "末") else date(year, month, 1)
    return day, "relative", m.group(0).strip(), True


def _time(text: str) -> tuple[str | None, str | None]:
    periods = _preferred(text, list(_PERIOD_RE.finditer(text)))
    pm = periods[0] if periods else None
    period = _PERIODS[pm.group(0)] if pm else None
    clock: str | None = None
    for m in _CLOCK_RE.finditer(text):
        if m["h"] is not None:
            hour, minute = int(m["h"]), int(m["m"])
        else:
            hour = cn_number(m["h2"]) or 0
            tail = m["m2"] or ""
            if tail == "半":
                minute = 30
            elif tail == "一刻":
                minute = 15
            elif tail in ("", "整"):
                minute = 0
            else:
                minute = cn_number(tail.rstrip("分")) or 0
            if hour > 23 or minute > 59:
                continue
        if (period in ("下午", "晚上") and hour < 12) or (period == "中午" and hour <= 2):
            hour += 12
        clock = f"{hour:02d}:{minute:02d}"
        break
    return clock, period


def _place(text: str) -> str | None:
    m = _PLACE_ADDRESS.search(text)
    if m is None:
        m = _PLACE_AT.search(text)
    if m is None:
        m = _PLACE_BARE.search(text)
    if m is None:
        m = _PLACE_HOME.search(text)
    if m is None:
        return None
    place = _PLACE_NOISE.sub("", m["place"]).strip()
    return place or None


def _host(text: str) -> str | None:
    for pattern in _HOST_RES:
        for m in pattern.finditer(text):
            name = m["name"]
            if name not in _NOT_NAMES:
                return name
    return None


def _relation(text: str) -> str | None:
    m = _RELATION_RE.search(text)
    return _RELATIONS[m.group(0)] if m else None


def _event(text: str) -> str | None:
    for name, pattern in _EVENT_RES:
        if pattern.search(text):
            return name
    return None


def _scale(text: str) -> tuple[str | None, int | None, int | None]:
    tables = people = None
    words: list[str] = []
    t = _TABLES_RE.search(text)
    if t is not None:
        words.append(t.group(0).strip())
        n = t["n"]
        tables = None if n in ("几", "几十", "十几") else cn_number(n)
        if n == "十几":
            tables = 10
    p = _PEOPLE_RE.search(text)
    if p is not None:
        n = p["n"]
        number = {"百十": 100, "上百": 100, "近百": 100, "上千": 1000, "几十": None}.get(n, cn_number(n))
        if number is None or number >= 10:
            words.append(p.group(0).strip())
            people = number
    return ("、".join(words) or None), tables, people
