"""The Jinja2 environment: autoescaping on, filters for times, durations, masking and highlighting."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup, escape

from classifiers.masking import mask_numbers
from dashboards import humanize, labels
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

    def clock(context: jinja2.runtime.Context) -> datetime:
        found = context.get("now")
        return found if isinstance(found, datetime) else datetime.now(UTC)

    @jinja2.pass_context
    def dt(context: jinja2.runtime.Context, value: datetime | None, style: str = "minute") -> str:
        """``12月1日 15:30``; ``dt('day')``: ``12月1日``; ``dt('second')``: with seconds (see humanize.when)."""
        return humanize.when(value, now=clock(context), tz=tz, style=style if style in humanize.STYLES else "minute")

    @jinja2.pass_context
    def ago(context: jinja2.runtime.Context, value: datetime | None) -> str:
        """``刚刚``, ``5分钟前``, ``昨天 15:30``, then the date."""
        return humanize.ago(value, now=clock(context), tz=tz)

    @jinja2.pass_context
    def due(context: jinja2.runtime.Context, value: datetime | None) -> tuple[str, str]:
        """(``3天后到期`` / ``已超期2天``, its colour class)."""
        return humanize.due(value, now=clock(context), tz=tz)

    @jinja2.pass_context
    def day(context: jinja2.runtime.Context, value: date | None) -> str:
        """A calendar day: ``12月8日`` (the year when it is not this one)."""
        return humanize.calendar_day(value, today=humanize.local(clock(context), tz).date())

    env.filters["dt"] = dt
    env.filters["day"] = day
    env.filters["ago"] = ago
    env.filters["due"] = due
    env.filters["dur"] = humanize.duration
    env.filters["voice_len"] = humanize.voice_length
    env.filters["filesize"] = humanize.file_size
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
