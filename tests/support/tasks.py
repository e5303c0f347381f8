"""Python task functions that tests call as ``python: "tests.support.tasks:NAME"``."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

calls: dict[str, int] = {}
_lock = threading.Lock()
running = 0
max_running = 0


def count(name: str) -> dict[str, Any]:
    with _lock:
        calls[name] = calls.get(name, 0) + 1
        return {"name": name, "calls": calls[name]}


def add(a: float, b: float) -> dict[str, float]:
    return {"sum": a + b}


async def slow_double(x: float, delay: float = 0.01) -> dict[str, float]:
    await asyncio.sleep(delay)
    return {"value": x * 2}


async def track(delay: float = 0.05) -> dict[str, int]:
    global running, max_running
    running += 1
    max_running = max(max_running, running)
    try:
        await asyncio.sleep(delay)
    finally:
        running -= 1
    return {"max": max_running}


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def not_json() -> object:
    return object()


def reset() -> None:
    global running, max_running
    calls.clear()
    running = max_running = 0
