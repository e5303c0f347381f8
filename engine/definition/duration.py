"""Durations as users write them: ``500ms``, ``30s``, ``10m``, ``1h30m``, ``1.5s``, or seconds."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds; raise ``ValueError`` naming the accepted forms.

    Numbers are seconds. Strings are one or more ``<number><unit>`` parts with units
    ``ms``, ``s``, ``m``, ``h``, ``d`` (Go's ``time.ParseDuration`` without the tiny units).
    """
    if isinstance(value, bool):
        raise ValueError(_message(value))
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif _WHOLE.fullmatch(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(_message(value))
    else:
        raise ValueError(_message(value))
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(_message(value))
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest string ``parse_duration`` reads back as ``seconds`` (``90.0`` -> ``1m30s``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    parts = []
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    rest = seconds - int(seconds) + whole
    if rest:
        parts.append(f"{rest:g}s")
    return "".join(parts)


def _message(value: object) -> str:
    return f"invalid duration {value!r}: expected seconds or a string like 500ms, 30s, 10m, 1h30m"
