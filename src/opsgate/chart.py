"""A small inline SVG line chart of a check's samples, for the report (no JavaScript)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from typing import Any

WIDTH, HEIGHT, PAD = 360, 90, 4


def points_of(seen: dict[str, Any]) -> list[tuple[float, float]]:
    """Numeric (timestamp, value) points from a window's samples or a range query's series."""
    raw = seen.get("samples")
    if raw is None:
        series = seen.get("series") or []
        raw = series[0].get("values") if len(series) == 1 and isinstance(series[0], dict) else None
    points = []
    for item in raw or []:
        try:
            ts, value = float(item[0]), float(item[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(value):
            points.append((ts, value))
    return points


def sparkline(points: list[tuple[float, float]], title: str = "") -> str:
    """An SVG polyline of ``points`` with the min, max and time span written beside it."""
    if len(points) < 2:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    span_x, span_y = (x1 - x0) or 1.0, (y1 - y0) or 1.0

    def at(ts: float, value: float) -> str:
        x = PAD + (ts - x0) / span_x * (WIDTH - 2 * PAD)
        y = HEIGHT - PAD - (value - y0) / span_y * (HEIGHT - 2 * PAD)
        return f"{x:.1f},{y:.1f}"

    line = " ".join(at(ts, value) for ts, value in points)
    dots = "".join(f"<circle cx='{at(ts, v).split(',')[0]}' cy='{at(ts, v).split(',')[1]}' "
                   f"r='1.8' fill='#0969da'/>" for ts, v in points[-60:])
    caption = (f"{len(points)} points, {_clock(x0)}-{_clock(x1)} UTC, "
               f"min {y0:.4g}, max {y1:.4g}")
    return (f"<figure style='margin:4px 0'><svg width='{WIDTH}' height='{HEIGHT}' "
            f"role='img' aria-label='{escape(title or caption)}' "
            f"style='background:#f6f8fa;border:1px solid #d0d7de'>"
            f"<polyline fill='none' stroke='#0969da' stroke-width='1.5' points='{line}'/>"
            f"{dots}</svg><figcaption style='font-size:smaller'>{escape(caption)}"
            f"</figcaption></figure>")


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")
