"""``TaskContext``: what a handler may know about the task it runs, and how it talks back.

A handler asks for it with a parameter annotated ``weir.TaskContext``. The worker builds one per
task; tests of a handler build their own (``TaskContext(queue="send_email")``: every field has a
default, and ``heartbeat`` then goes nowhere).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class _Cancellation:
    """A flag set once, from any thread, that both threads and coroutines can wait for."""

    __slots__ = ("_event", "_lock", "_reason", "_waiters")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason = ""
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str:
        return self._reason

    def set(self, reason: str) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._reason = reason
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def wait_sync(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)

    async def wait(self) -> None:
        event = asyncio.Event()
        with self._lock:
            if self._event.is_set():
                return
            waiter = (asyncio.get_running_loop(), event)
            self._waiters.append(waiter)
        try:
            await event.wait()
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)


def _nowhere(details_json: bytes) -> None:
    """Where the heartbeats of a context built outside a worker go."""


@dataclass(frozen=True, eq=False, slots=True)
class TaskContext:
    """The task a handler runs: ask for it with a parameter annotated ``weir.TaskContext``.

    ::

        @worker.task("resize")
        def resize(url: str, ctx: weir.TaskContext) -> dict[str, str]:
            for done, chunk in enumerate(chunks(url)):
                if ctx.cancelled:  # the execution was cancelled, or the worker is stopping
                    raise weir.NonRetryableError("cancelled")
                process(chunk)
                ctx.heartbeat({"done": done})
            return {"url": url}

    ``deadline`` is the attempt's start-to-close deadline in Unix seconds, ``None`` when it has
    none; ``heartbeat_timeout`` the seconds the task may stay silent before the server gives up
    on it (``None``: no heartbeat required). ``idempotency_key`` is the same for every attempt of
    one visit of one node: use it for side effects that must happen once (an email, a payment).
    ``item`` is the item's index (0-based) when the node has ``map`` (it runs once per item; each
    item has its own ``idempotency_key``), else ``None``.
    """

    token: str = ""
    """Opaque; identifies this attempt (a retry gets another token)."""
    execution_id: str = ""
    workflow: str = ""
    node: str = ""
    visit: int = 0
    attempt: int = 1
    queue: str = ""
    idempotency_key: str = ""
    deadline: float | None = None
    heartbeat_timeout: float | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    """The task's arguments, as the handler received them."""
    item: int | None = None
    """The item's index for a task of an item of a node with ``map``; None otherwise (last, so
    that contexts built with positional arguments before it existed still work)."""
    _cancellation: _Cancellation = field(default_factory=_Cancellation, repr=False)
    _beat: Callable[[bytes], None] = field(default=_nowhere, repr=False)

    @property
    def cancelled(self) -> bool:
        """True once the server cancelled the task (its execution ended or was cancelled, or the
        task timed out) or the worker stops and this task ran past the grace period. Its result
        is then not sent: the server no longer waits for it."""
        return self._cancellation.is_set

    @property
    def cancel_reason(self) -> str:
        """Why the task was cancelled (the server's reason); empty while it is not."""
        return self._cancellation.reason

    def heartbeat(self, details: Any = None) -> None:
        """Tell the server the task is alive, with optional progress ``details`` (JSON).

        Call it from sync code (in the worker's threads) or async code alike; it never blocks.
        A task with a ``heartbeat_timeout`` must call it more often than that. ``details`` that
        are not JSON-serialisable raise ``TypeError`` here, in the handler.
        """
        if details is None:
            data = b""
        else:
            data = json.dumps(details, separators=(",", ":"), allow_nan=False).encode()
        self._beat(data)

    def wait_for_cancelled_sync(self, timeout: float | None = None) -> bool:
        """Block until the task is cancelled or ``timeout`` seconds passed; True if cancelled.

        For sync handlers: ``while not ctx.wait_for_cancelled_sync(1.0): do_a_bit()``.
        """
        return self._cancellation.wait_sync(timeout)

    async def wait_for_cancelled(self) -> None:
        """Return once the task is cancelled. An async handler is also cancelled the asyncio
        way (``CancelledError`` at its current ``await``); this is for side tasks that watch."""
        await self._cancellation.wait()

    def _cancel(self, reason: str) -> None:
        self._cancellation.set(reason)
