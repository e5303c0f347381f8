"""Task deadlines: which applies when, what it says when it passes, and the timer that waits.

Three deadlines for a worker's task (``docs/tasks.md``): ``schedule_to_start`` from the time a
task became pending (again after a re-delivery), ``timeout`` from the time a worker took it,
``heartbeat`` from its last heartbeat (or from being taken). A callback's or a signal wait's
``timeout`` counts from the task's creation, and a timer *fires* (completes) ``timeout`` after it;
every kind also ends at its ``deadline_at`` (the node's ``timeout``, counted from the attempt's
start), so that these hold while the execution is parked and across restarts.

``Deadlines`` is a heap of (time, token, kind) entries, never updated in place: when an entry
is reached, ``due`` recomputes the deadline from the task as it stands — gone (it ended, it was
taken), later (a heartbeat came: pushed again) or passed.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import heapq
import time
from collections.abc import Callable, Iterator

from orchestrator.store import TaskRow


class Deadline(enum.Enum):
    SCHEDULE_TO_START = "schedule_to_start"
    TIMEOUT = "timeout"
    HEARTBEAT = "heartbeat"
    NODE = "node"
    """``deadline_at``: the node's timeout."""


def due(row: TaskRow, kind: Deadline, pending_since: float | None) -> float | None:
    """When ``kind`` falls due for ``row`` as it stands, or None when it does not apply now."""
    if kind is Deadline.NODE:
        return row.deadline_at
    if row.kind != "worker":
        return row.created_at + row.timeout_s if kind is Deadline.TIMEOUT else None
    if kind is Deadline.SCHEDULE_TO_START:
        if row.status != "pending" or pending_since is None:
            return None
        return pending_since + row.schedule_to_start_s
    if row.status != "running" or row.started_at is None:
        return None
    if kind is Deadline.TIMEOUT:
        return row.started_at + row.timeout_s
    return (row.heartbeat_at or row.started_at) + row.heartbeat_s


def message(row: TaskRow, kind: Deadline) -> str:
    """The error of a task that timed out: which deadline, how long, and who."""
    if kind is Deadline.NODE:
        assert row.deadline_at is not None
        return f"timed out: the node's timeout passed at {_iso(row.deadline_at)}"
    if row.kind == "callback":
        return f"timeout: no callback within {row.timeout_s:g}s of the request"
    if row.kind == "signal":
        return f"timeout: no signal '{row.queue}' within {row.timeout_s:g}s"
    if kind is Deadline.SCHEDULE_TO_START:
        return (
            f"schedule_to_start: no worker took the task from queue '{row.queue}' within "
            f"{row.schedule_to_start_s:g}s"
        )
    if kind is Deadline.TIMEOUT:
        return (
            f"timeout: worker {row.worker} did not finish the task within {row.timeout_s:g}s "
            "of taking it"
        )
    return f"heartbeat: worker {row.worker} sent no heartbeat for {row.heartbeat_s:g}s"


def first(row: TaskRow) -> list[tuple[float, Deadline]]:
    """The deadlines a task of a kind other than ``worker`` has from its creation (and any
    task's node deadline): what to push when it is created or loaded."""
    pushes: list[tuple[float, Deadline]] = []
    if row.deadline_at is not None:
        pushes.append((row.deadline_at, Deadline.NODE))
    if row.kind != "worker" and row.timeout_s:
        pushes.append((row.created_at + row.timeout_s, Deadline.TIMEOUT))
    return pushes


def _iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="seconds")


class Deadlines:
    """A heap of deadlines and the loop that waits for the earliest; see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, str, Deadline]] = []
        self._pushes = 0
        self._wake: Callable[[], None] = lambda: None

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at: float, token: str, kind: Deadline) -> None:
        self._pushes += 1
        heapq.heappush(self._heap, (at, self._pushes, token, kind))
        if self._heap[0][1] == self._pushes:  # the earliest now: the loop must wait less
            self._wake()

    def passed(self) -> Iterator[tuple[str, Deadline, float]]:
        """Pop the entries whose time has come: (token, kind, now)."""
        now = self._clock()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, token, kind = heapq.heappop(heap)
            yield token, kind, now

    async def run(self, expire: Callable[[], object]) -> None:
        """Call ``expire`` whenever the earliest deadline passes, until cancelled."""
        wake = asyncio.Event()
        self._wake = wake.set
        try:
            while True:
                expire()
                wake.clear()
                delay = None
                if self._heap:
                    delay = max(self._heap[0][0] - self._clock(), 0.0) + 0.001
                try:
                    async with asyncio.timeout(delay):
                        await wake.wait()
                except TimeoutError:
                    pass
        finally:
            self._wake = lambda: None
