"""Times, dates and durations as people read them in Chinese: the one place they are formatted.

Every page (through the template filters of :mod:`dashboards.templating`), the ticket board's days left and the
exports' number formats use these, so a date reads the same everywhere: ``12月1日 15:30`` (the year only when it
is not the current one), ``刚刚`` / ``5分钟前`` / ``昨天 15:30``, ``3天后到期`` / ``今天到期`` / ``已超期2天``,
``2天3小时``. Pure functions: the caller passes the clock and the time zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

EXCEL_MINUTE = 'yyyy"年"m"月"d"日" hh:mm'
"""The Excel number format of a moment in an export (a real date cell shown the Chinese way)."""
EXCEL_DAY = 'yyyy"年"m"月"d"日"'

STYLES = ("minute", "day", "second")


def local(value: datetime, tz: tzinfo) -> datetime:
    """``value`` in the dashboard's time zone (a naive value is taken as UTC, as the database stores it)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz)


def when(value: datetime | None, *, now: datetime, tz: tzinfo, style: str = "minute") -> str:
    """A moment: ``12月1日 15:30`` (``2025年12月1日 15:30`` in another year); ``day``: ``12月1日``;
    ``second``: ``12月1日 15:30:05``. Nothing for no value."""
    if value is None:
        return ""
    at = local(value, tz)
    day = f"{at.month}月{at.day}日"
    if at.year != local(now, tz).year:
        day = f"{at.year}年{day}"
    if style == "day":
        return day
    if style == "second":
        return f"{day} {at:%H:%M:%S}"
    return f"{day} {at:%H:%M}"


def calendar_day(value: date | None, *, today: date) -> str:
    """A calendar day (a banquet's date): ``12月8日``, ``2027年1月3日`` in another year."""
    if value is None:
        return ""
    day = f"{value.month}月{value.day}日"
    return day if value.year == today.year else f"{value.year}年{day}"


def bucket(key: str, granularity: str) -> str:
    """A statistics period as people name it: ``2026-09`` → ``2026年9月``, ``2026-W36`` → ``2026年第36周``,
    ``2026-09-07`` → ``2026年9月7日``; anything else as it is."""
    try:
        if granularity == "month":
            year, month = key.split("-")
            return f"{int(year)}年{int(month)}月"
        if granularity == "week":
            year, week = key.split("-W")
            return f"{int(year)}年第{int(week)}周"
        if granularity == "day":
            year, month, day = key.split("-")
            return f"{int(year)}年{int(month)}月{int(day)}日"
    except ValueError:
        pass
    return key


def ago(value: datetime | None, *, now: datetime, tz: tzinfo) -> str:
    """How long ago, for recent things: ``刚刚``, ``5分钟前``, ``3小时前``, ``昨天 15:30``, then the date."""
    if value is None:
        return ""
    seconds = (now - value).total_seconds()
    if seconds < 0:
        return when(value, now=now, tz=tz)
    if seconds < 60:
        return "刚刚"
    if seconds < 3600:
        return f"{int(seconds // 60)}分钟前"
    today = local(now, tz).date()
    at = local(value, tz)
    if at.date() == today:
        return f"{int(seconds // 3600)}小时前"
    if at.date() == today - timedelta(days=1):
        return f"昨天 {at:%H:%M}"
    return when(value, now=now, tz=tz)


def due(deadline: datetime | None, *, now: datetime, tz: tzinfo) -> tuple[str, str]:
    """A deadline as days left and a colour class: ``3天后到期`` (dl-ok), ``明天到期`` / ``今天到期`` (dl-soon),
    ``已超期2天`` / ``今天已超期`` (dl-over). Calendar days in the dashboard's time zone."""
    if deadline is None:
        return "", ""
    days = (local(deadline, tz).date() - local(now, tz).date()).days
    if deadline <= now:
        late = max(-days, 0)
        return (f"已超期{late}天" if late else "今天已超期"), "dl-over"
    if days == 0:
        return "今天到期", "dl-soon"
    if days == 1:
        return "明天到期", "dl-soon"
    return f"{days}天后到期", "dl-soon" if days <= 2 else "dl-ok"


def duration(seconds: float | None) -> str:
    """A span of time: ``2天3小时``, ``3小时5分``, ``12分钟``; ``—`` for none."""
    if seconds is None:
        return "—"
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{mins}分" if mins else f"{hours}小时"
    return f"{mins}分钟"


def voice_length(milliseconds: int | None) -> str:
    """A voice message's length: ``8秒``, ``1分05秒``; ``—`` for none."""
    if milliseconds is None:
        return "—"
    seconds = max(1, round(milliseconds / 1000)) if milliseconds > 0 else 0
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}分{rest:02d}秒" if minutes else f"{rest}秒"


def file_size(size: int | None) -> str:
    """A file's size: ``512 字节``, ``3.4 KB``, ``1.2 MB``; ``大小未知`` for none."""
    if size is None:
        return "大小未知"
    if size < 1024:
        return f"{size} 字节"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"
