"""``Journal``: what the orchestrator must not lose, written through the store's group commit.

Executions (``save``), node runs (``node_run``), durable tasks (``task``) and events
(``event``, connected to ``Monitor.published`` by the wiring) are queued to the store and
committed in batches. What may only happen once they are durable — acknowledging a node result
to its engine, waking the waiters of a finished execution, telling its parent, answering a
task's engine and worker — is handed to ``after_durable``: callbacks run, in
order, once everything written before them is committed, from one loop (``run``) that the wiring
starts under the supervisor.

If the store cannot commit, the journal sets ``failed`` (with ``failure``) and runs no more
callbacks: the process must stop, and a restart resumes from what is durable (engines re-send
what was never acknowledged). See docs/state.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from engine.state.events import NodeResult
from orchestrator.executions.record import ExecutionRecord
from orchestrator.monitor import MonitorEvent
from orchestrator.rows import event_row, node_run_row, to_row
from orchestrator.store import SignalRow, Store, StoreError, TaskRow

log = logging.getLogger(__name__)


class Journal:
    """The write side of the store for executions and events; see the module docstring."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._callbacks: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self.failed = asyncio.Event()
        """Set when the store cannot commit: the process must stop."""
        self.failure: StoreError | None = None

    def save(self, record: ExecutionRecord) -> None:
        """Write the execution's row as it stands now (the latest write of a batch wins)."""
        self._store.put_execution(to_row(record))

    def node_run(
        self, record: ExecutionRecord, result: NodeResult, output_json: bytes | None
    ) -> None:
        """Write a node run just added to the record's checkpoint (at its last position)."""
        position = len(record.checkpoint) - 1
        self._store.add_node_run(node_run_row(record.id, position, result, output_json))

    def task(self, row: TaskRow) -> None:
        """Write a durable task as it stands now (the latest write of a batch wins); the caller
        passes a copy it will not change."""
        self._store.put_task(row)

    def signal(self, row: SignalRow) -> None:
        """Write a signal as it stands now (kept, or taken by a wait); the caller passes a copy."""
        self._store.put_signal(row)

    def event(self, event: MonitorEvent, data_json: bytes | None) -> None:
        """Append an event to the log (a ``Monitor.published`` listener)."""
        self._store.add_events([event_row(event, data_json)])

    async def durable(self) -> None:
        """Return once everything written so far is committed; raises ``StoreError``."""
        await self._store.durable()

    def after_durable(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything written so far is committed (``run`` does)."""
        self._callbacks.append(callback)
        self._wake.set()

    async def run(self) -> None:
        """Run the callbacks, a batch per commit, until cancelled (the wiring supervises it)."""
        while True:
            if not self._callbacks:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._callbacks = self._callbacks, []
            try:
                await self._store.durable()
            except StoreError as exc:  # those callbacks must never run: the process stops
                self.store_failed(exc)
                continue
            for callback in batch:
                try:
                    callback()
                except Exception:  # one bad callback must not stop the others
                    log.exception("after-commit callback failed")

    def store_failed(self, exc: Exception) -> None:
        """The store cannot commit: stop (see the module docstring)."""
        log.critical("the store failed (%s); stopping so that a restart resumes from it", exc)
        if self.failure is None:
            self.failure = StoreError(f"store {self._store.url}: {exc}")
        self.failed.set()
