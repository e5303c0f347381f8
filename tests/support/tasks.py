"""Python task functions that tests call as ``python: "tests.support.tasks:NAME"``."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

calls: dict[str, int] = {}
_lock = threading.Lock()
running = 0
max_running = 0
gates: dict[str, asyncio.Event] = {}
at_gate: set[str] = set()
"""The names of the ``gate`` nodes waiting right now."""


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


async def gate(name: str) -> dict[str, str]:
    """Wait until the test calls ``open_gate(name)``: an execution that runs until told."""
    at_gate.add(name)
    try:
        await gates.setdefault(name, asyncio.Event()).wait()
    finally:
        at_gate.discard(name)
    return {"gate": name}


def open_gate(name: str) -> None:
    gates.setdefault(name, asyncio.Event()).set()


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def not_json() -> object:
    return object()


def reset() -> None:
    global running, max_running
    calls.clear()
    running = max_running = 0
    gates.clear()
    at_gate.clear()


async def nap(seconds: float) -> None:
    """A slow node that is not a ``sleep`` (which the cluster turns into a durable timer)."""
    await asyncio.sleep(seconds)
