"""Charts as inline SVG drawn on the server: no JavaScript, no CDN, prints and works offline."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ("#2f6fb3", "#d9822b", "#3a9a5b", "#b33a3a")


def hbars(items: Sequence[tuple[str, float]], *, unit: str = "", width: int = 480, percent: bool = False) -> Markup:
    """Horizontal bars, one per (label, value); ``percent`` values are 0–1."""
    if not items:
        return Markup('<p class="muted">无数据</p>')
    row, label_w, pad = 26, 130, 56
    height = row * len(items) + 10
    top = max((v for _, v in items), default=0) or 1
    scale = 1.0 if percent else top
    bar_w = width - label_w - pad
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" preserveAspectRatio="xMinYMin meet">']
    for i, (label, value) in enumerate(items):
        y = 5 + i * row
        w = max(0.0, bar_w * (value / scale)) if scale else 0.0
        text = f"{100 * value:.1f}%" if percent else f"{value:g}{unit}"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" class="lbl">'
            f"{escape(_short(label))}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{PALETTE[0]}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 16}" class="val">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def lines(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    width: int = 480,
    height: int = 240,
    percent: bool = False,
) -> Markup:
    """One line per series over ``labels`` (e.g. months); ``percent`` series are 0–1."""
    if not labels:
        return Markup('<p class="muted">无数据</p>')
    left, right, top, bottom = 48, 12, 24, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, vs in series for v in vs if v is not None]
    high = 1.0 if percent else (max(values, default=0) or 1)
    step = plot_w / max(1, len(labels) - 1)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" preserveAspectRatio="xMinYMin meet">']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        tick = f"{100 * frac * high:.0f}%" if percent else f"{frac * high:.0f}"
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="lbl">{tick}</text>'
        )
    every = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            x = left + i * step
            parts.append(f'<text x="{x:.1f}" y="{height - 12}" text-anchor="middle" class="lbl">{escape(label)}</text>')
    for s, (name, vs) in enumerate(series):
        color = PALETTE[s % len(PALETTE)]
        points = [
            f"{left + i * step:.1f},{top + plot_h * (1 - v / high):.1f}" for i, v in enumerate(vs) if v is not None
        ]
        if points:
            parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" stroke-width="2"/>')
            for p in points:
                cx, cy = p.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
        parts.append(
            f'<rect x="{left + 110 * s}" y="4" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + 110 * s + 14}" y="13" class="lbl">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _short(label: str, limit: int = 12) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
