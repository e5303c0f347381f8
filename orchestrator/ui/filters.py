"""Jinja filters of the UI's templates: times, durations, JSON and statuses as people read them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from orchestrator.ui import svg

GLYPHS = {**svg.GLYPHS, "queued": "○", "waiting": "◷"}
"""A glyph beside every status word, so a status never shows by colour alone."""


def when(at: float | str | None) -> str:
    """Epoch seconds (or ISO text) as ``2026-12-03 15:04:05Z``; empty for None."""
    if at is None or at == "":
        return ""
    if isinstance(at, str):
        return at.replace("T", " ")[:19] + "Z"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(at: float | None) -> str:
    """Epoch seconds as an ISO 8601 timestamp for ``<time datetime>``."""
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def duration(seconds: float | None) -> str:
    """``850 ms``, ``4.2 s``, ``3 min 5 s``, ``2 h 10 min``; empty for None."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def pretty(value: Any) -> str:
    """A JSON value indented for reading (non-ASCII kept)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def fromjson(raw: bytes | str | None) -> Any:
    """Stored JSON (a task's args) as a value; text that is not JSON stays text."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def glyph(status: str) -> str:
    return GLYPHS.get(str(status), "•")


FILTERS: dict[str, Callable[..., Any]] = {
    "when": when,
    "iso": iso,
    "duration": duration,
    "pretty": pretty,
    "glyph": glyph,
    "fromjson": fromjson,
}
