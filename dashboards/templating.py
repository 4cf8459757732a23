"""The Jinja2 environment: autoescaping on, filters for times, durations, masking and highlighting."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup, escape

from classifiers.masking import mask_numbers
from dashboards import labels
from dashboards.settings import DashboardSettings

TEMPLATES = Path(__file__).with_name("templates")


def make_env(settings: DashboardSettings) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    tz = timezone(timedelta(hours=settings.tz_hours))
    categories = {**labels.CATEGORIES, **dict(settings.category_names)}

    def dt(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return value.astimezone(tz).strftime(fmt) if value is not None else ""

    env.filters["dt"] = dt
    env.filters["dur"] = duration
    env.filters["voice_len"] = voice_length
    env.filters["filesize"] = file_size
    env.filters["has_numbers"] = lambda text: bool(text) and mask_numbers(text) != text
    env.filters["show"] = show
    env.filters["rule_group"] = labels.rule_group
    env.globals.update(
        pct=pct,
        qs=qs,
        L=labels,
        audit_action=labels.audit_action,
        audit_target=labels.audit_target,
        CATEGORIES=categories,
        name_of=lambda table, code: table.get(code, code) if code else "",
    )
    return env


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时"
    if hours:
        return f"{hours}小时{mins}分"
    return f"{mins}分钟"


def voice_length(milliseconds: int | None) -> str:
    """A voice message's length as a person reads it: 8秒, 1分05秒."""
    if milliseconds is None:
        return "—"
    seconds = max(1, round(milliseconds / 1000)) if milliseconds > 0 else 0
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}分{rest:02d}秒" if minutes else f"{rest}秒"


def file_size(size: int | None) -> str:
    if size is None:
        return "大小未知"
    if size < 1024:
        return f"{size} 字节"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def pct(num: float | None, den: float | None) -> str:
    if not den:
        return "—"
    return f"{100.0 * (num or 0) / den:.1f}%"


def qs(base: dict[str, Any] | Any, **changes: Any) -> str:
    """A query string from the current one with some keys replaced (None removes a key)."""
    params = {k: v for k, v in dict(base).items() if k not in changes}
    params.update({k: v for k, v in changes.items() if v is not None and v != ""})
    return "?" + urlencode(params) if params else "?"


@jinja2.pass_context
def show(context: jinja2.runtime.Context, text: str | None, keywords: list[str] | None = None) -> Markup:
    """Message text for display: escaped, numbers masked unless the viewer may see them, keywords marked."""
    viewer = context.get("viewer")
    value = text or ""
    if viewer is None or not viewer.sees_numbers:
        value = mask_numbers(value)
    words = sorted({k for k in (keywords or []) if k}, key=len, reverse=True)
    if not words:
        return escape(value)
    pattern = re.compile("|".join(re.escape(w) for w in words))
    out: list[str] = []
    last = 0
    for match in pattern.finditer(value):
        out.append(str(escape(value[last : match.start()])))
        out.append(f"<mark>{escape(match.group(0))}</mark>")
        last = match.end()
    out.append(str(escape(value[last:])))
    return Markup("".join(out))
