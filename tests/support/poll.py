"""Waiting for a condition with a deadline, instead of sleeping and hoping.

* ``await eventually(check, within=..., what=...)`` in async tests: ``check`` may be a plain
  function or return an awaitable (``lambda: client.engines()``, an ``async def``).
* ``wait_for(check, within=..., what=...)`` in synchronous tests and in the process-level helpers
  of ``tests/integration/cluster.py``: the same, with ``time.sleep`` between calls.

Both call ``check`` at once, then every ``interval`` seconds, and return the first truthy value it
gives (so ``engine = await eventually(placed)`` both waits and reads). Once ``within`` seconds have
passed without one they fail with ``AssertionError("timed out after 5s waiting for <what>; the
last check gave <value>")``; ``check`` is always called once more after the deadline. Exceptions
from ``check`` propagate at once: a check that cannot be made is a failure, not a "not yet".
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

WITHIN = 10.0
"""Seconds to wait by default: generous, a slow shared machine must not fail a correct test."""
INTERVAL = 0.02
"""Seconds between checks by default."""


def _describe(check: Callable[..., Any]) -> str:
    name = getattr(check, "__qualname__", "")
    if name and "<lambda>" not in name:
        return f"{name}()"
    try:
        return inspect.getsource(check).strip()
    except (OSError, TypeError):
        return repr(check)


def _timed_out(check: Callable[..., Any], within: float, what: str | None, last: Any) -> str:
    shown = repr(last)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return (
        f"timed out after {within:g}s waiting for {what or _describe(check)}; "
        f"the last check gave {shown}"
    )


@overload
async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    within: float = ...,
    what: str | None = ...,
    interval: float = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T],
    *,
    within: float = ...,
    what: str | None = ...,
    interval: float = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    within: float = WITHIN,
    what: str | None = None,
    interval: float = INTERVAL,
) -> Any:
    """The first truthy value of ``check()`` (awaited if it is awaitable), polled every
    ``interval`` seconds; ``AssertionError`` naming ``what`` once ``within`` seconds passed."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(check, within, what, value))
        await asyncio.sleep(interval)


def wait_for(
    check: Callable[[], T],
    *,
    within: float = WITHIN,
    what: str | None = None,
    interval: float = INTERVAL,
) -> T:
    """``eventually`` for synchronous code: blocks the calling thread between checks."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()  # never awaited, and no warning about it
            raise TypeError(f"{_describe(check)} returns an awaitable: use eventually()")
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(check, within, what, value))
        time.sleep(interval)
