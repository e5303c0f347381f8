"""``Parking``: executions an engine gave back because they only wait, until they go on.

An engine parks an execution whose only unfinished work has waited on the orchestrator (tasks,
callbacks, signals, durable timers) or on retry backoffs for ``PARK_AFTER``: it forgets it and
reports ``parked`` with the time of its earliest timer. ``Lifecycle`` marks it ``waiting``
(durably: it is a row, not engine memory) and hands it here. It is placed again from its
checkpoint (``Lifecycle.unpark``) when:

* a task of it ends (the task board wakes it, in the same commit as the task's end), or already
  ended before the engine heard of it (``EndedTasks``: the answer crossed the park report);
* its timer is due (a retry backoff, the workflow's timeout).

After a restart every waiting execution is looked at again once the task board is loaded: one
whose timer passed while the orchestrator was down, or that has no open task left, goes on.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from typing import Protocol

from engine.state.events import ExecutionStatus
from orchestrator.executions.record import ExecutionRecord
from orchestrator.tasks.rows import EndedTasks, what

log = logging.getLogger(__name__)


class ParkedTasks(Protocol):
    """What parking asks the task board."""

    @property
    def unseen(self) -> EndedTasks:
        """Tasks that ended while their execution ran."""

    def has_open(self, execution_id: str) -> bool: ...


class Parking:
    """Timers of parked executions, and the checks that wake them; see the module docstring."""

    def __init__(
        self,
        tasks: ParkedTasks,
        unpark: Callable[[ExecutionRecord, str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tasks = tasks
        self._unpark = unpark
        self._clock = clock
        self._heap: list[tuple[float, str, ExecutionRecord]] = []
        self._wake = asyncio.Event()
        self._loaded = False
        self._recovered: list[ExecutionRecord] = []

    def parked(self, record: ExecutionRecord) -> None:
        """``record`` is waiting now (parked by its engine, or read back at a restart)."""
        if not self._loaded:
            self._recovered.append(record)  # looked at once the task board is loaded
            return
        row = self._tasks.unseen.first_unseen(record.id, record.checkpoint.seen)
        if row is not None:
            self._unpark(record, f"{what(row)} {row.node} ended before the park was seen")
            return
        self._arm(record)

    def loaded(self) -> None:
        """The task board is loaded: look at the executions read back as waiting."""
        self._loaded = True
        recovered, self._recovered = self._recovered, []
        now = self._clock()
        for record in recovered:
            if record.status is not ExecutionStatus.WAITING:
                continue
            if record.wake_at is not None and record.wake_at <= now:
                self._unpark(record, "its timer passed while the orchestrator was down")
            elif not self._tasks.has_open(record.id):
                self._unpark(record, "none of its waits is open any more")
            else:
                self._arm(record)

    def _arm(self, record: ExecutionRecord) -> None:
        if record.wake_at is None:
            return
        heapq.heappush(self._heap, (record.wake_at, record.id, record))
        if self._heap[0][2] is record:
            self._wake.set()

    def due(self) -> int:
        """Wake the executions whose timer is due; returns how many."""
        now = self._clock()
        count = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, record = heapq.heappop(heap)
            if record.status is ExecutionStatus.WAITING and record.wake_at == at:
                self._unpark(record, "its timer is due")
                count += 1
        return count

    async def run(self) -> None:
        """Wake executions as their timers fall due, until cancelled (the wiring supervises)."""
        while True:
            self.due()
            self._wake.clear()
            delay = None
            if self._heap:
                delay = max(self._heap[0][0] - self._clock(), 0.0) + 0.001
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
