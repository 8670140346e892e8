"""Jinja filters: how numbers, money, durations and times read on the dashboard."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

NONE = "\u2013"  # an en dash for "no value"


def pct(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.1f}%"


def ms(value: float | None) -> str:
    if value is None:
        return NONE
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    return f"{value / 60_000:.1f} min"


def usd(value: float | None) -> str:
    if value is None:
        return NONE
    if value == 0:
        return "$0"
    if abs(value) < 0.01:
        return f"${value:.6f}".rstrip("0")
    return f"${value:,.2f}"


def when(value: datetime | None) -> str:
    return NONE if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return NONE
    finish = end or datetime.now(UTC)
    return ms((finish - start).total_seconds() * 1000)


def pretty_json(value: Any) -> str:
    """Arguments and results as indented JSON; text that is JSON is re-indented, other text kept."""
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if not isinstance(value, dict | list):
            return text
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def short(text: str | None, limit: int = 80) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


FILTERS = {
    "pct": pct,
    "ms": ms,
    "usd": usd,
    "when": when,
    "pretty_json": pretty_json,
    "short": short,
}
