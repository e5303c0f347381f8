"""The items of one visit of a node with ``map``: what the state machine tracks per item.

A mapped node's visit goes through three records in the journal (docs/semantics.md, map):

1. its **expansion** -- attempt 0, status RUNNING, ``item`` None, the list of items as ``output``
   (the driver renders ``map.items`` and answers the node's ``StartNode`` with it);
2. one record per **item attempt** -- ``item`` set to the item's index, attempts counted per item;
3. its **final result** -- attempt 1, ``item`` None: the driver answers ``FinishMap`` with it
   (routing ``next`` like any node), the list of outputs when it completed.

``MapState`` runs the items of one visit for ``engine.state.machine``: which are queued, running,
waiting for a retry or finished, their timers, and the verdict (``tolerate``). It talks to the
state machine that owns it through ``ItemHost`` only: commands out, events out, records into the
journal. Like the machine, it has no I/O, no clock and no asyncio.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from engine.definition.duration import format_duration
from engine.definition.model import FAIL, Node
from engine.state.events import (
    CancelNode,
    CancelTimer,
    Command,
    FinishMap,
    NodeResult,
    NodeStatus,
    NodeTimeoutTimer,
    RetryTimer,
    StartNode,
    StartTimer,
)

_PENDING = NodeStatus.PENDING
_RUNNING = NodeStatus.RUNNING
_COMPLETED = NodeStatus.COMPLETED
_FAILED = NodeStatus.FAILED
_SKIPPED = NodeStatus.SKIPPED
_CANCELLED = NodeStatus.CANCELLED


class ItemHost(Protocol):
    """What the items of a node need from the state machine that owns them."""

    def issue(self, command: Command) -> None:
        """Add a command to the batch being handled."""

    def emit(
        self, kind: str, at: float, node: str, visit: int, attempt: int, data: dict[str, Any]
    ) -> None:
        """A monitoring event about one item (``data`` holds its index as ``item``)."""

    def record(self, result: NodeResult) -> None:
        """Append an accepted record to the execution's journal."""

    def random(self) -> float:
        """A number in [0, 1) for the retry jitter."""


class ItemState:
    """One item of a mapped node's visit."""

    __slots__ = (
        "attempt",
        "error",
        "finished_at",
        "output",
        "queued",
        "started_at",
        "status",
        "waiting_retry",
    )

    def __init__(self) -> None:
        self.status = _PENDING
        self.attempt = 0
        self.waiting_retry = False
        self.queued = True  # in ``MapState.ready``, waiting for a slot
        self.output: Any = None
        self.error: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None


class MapState:
    """The items of one visit of a mapped node: they run, wait, complete and fail here."""

    __slots__ = (
        "allowed",
        "closing",
        "completed",
        "failed",
        "host",
        "items",
        "limit",
        "node",
        "ready",
        "retrying",
        "running",
        "started_at",
        "states",
        "visit",
    )

    def __init__(
        self, node: Node, visit: int, items: list[Any], host: ItemHost, started_at: float
    ) -> None:
        spec = node.map
        assert spec is not None
        self.node = node
        self.visit = visit
        self.items = items
        self.host = host
        self.started_at = started_at
        self.states = [ItemState() for _ in items]
        self.ready: deque[int] = deque(range(len(items)))
        self.limit = spec.concurrency or max(1, len(items))
        self.allowed = spec.allowed_failures(len(items))
        self.running = 0
        self.retrying = 0
        self.completed = 0
        self.failed = 0
        self.closing = False
        """The verdict is in (every item finished, or too many failed): ``FinishMap`` was issued."""

    @property
    def total(self) -> int:
        return len(self.items)

    def outputs(self) -> list[Any]:
        """The items' outputs in item order (None for an item that did not complete)."""
        return [s.output if s.status is _COMPLETED else None for s in self.states]

    def failure_message(self) -> str:
        """The node's error: how many items failed against the tolerance, and their errors."""
        failed = [(i, s.error) for i, s in enumerate(self.states) if s.status is _FAILED]
        shown = "; ".join(f"[{i}] {error or 'failed'}" for i, error in failed[:20])
        more = f"; and {len(failed) - 20} more" if len(failed) > 20 else ""
        return (
            f"{len(failed)} of {len(self.items)} items failed (tolerate {self.allowed}): "
            f"{shown}{more}"
        )

    # --- stimuli -------------------------------------------------------------------------------

    def start(self, at: float) -> None:
        """The visit expanded: start the first items (or ask for the verdict of an empty list)."""
        self._pump(at)
        self._check(at)

    def on_record(self, r: NodeResult) -> bool:
        """An item's attempt ended; False when it is late, a duplicate or cancelled (ignored)."""
        index = r.item
        if self.closing or index is None or not 0 <= index < len(self.states):
            return False
        item = self.states[index]
        if item.status is not _RUNNING or item.waiting_retry or item.attempt != r.attempt:
            return False
        self.running -= 1
        if self.node.timeout is not None:
            self.host.issue(CancelTimer(NodeTimeoutTimer(self.node.id, r.visit, r.attempt, index)))
        self._finish(r)
        return True

    def on_retry_timer(self, timer: RetryTimer, at: float) -> None:
        index = timer.item
        if self.closing or index is None or not 0 <= index < len(self.states):
            return
        item = self.states[index]
        if item.waiting_retry and item.attempt + 1 == timer.attempt:
            item.waiting_retry = False
            self.retrying -= 1
            item.attempt = timer.attempt
            item.status = _PENDING
            item.queued = True
            self.ready.append(index)
            self._pump(at)

    def on_timeout(self, timer: NodeTimeoutTimer, at: float) -> None:
        index = timer.item
        if self.closing or index is None or not 0 <= index < len(self.states):
            return
        item = self.states[index]
        if item.status is not _RUNNING or item.waiting_retry or item.attempt != timer.attempt:
            return
        self.running -= 1
        self.host.issue(CancelNode(self.node.id, self.visit, item.attempt, index))
        limit = format_duration(self.node.timeout or 0.0)
        self._finish(
            NodeResult(
                self.node.id,
                self.visit,
                item.attempt,
                _FAILED,
                outcome=FAIL,
                error=f"timed out after {limit}",
                retryable=True,
                started_at=item.started_at or at,
                finished_at=at,
                item=index,
            )
        )

    def stop(self, at: float) -> None:
        """Cancel the items that run or wait for a retry; those never started are skipped."""
        host, node_id, visit, timeout = self.host, self.node.id, self.visit, self.node.timeout
        for index, item in enumerate(self.states):
            if item.status is _RUNNING:
                if item.waiting_retry:
                    host.issue(CancelTimer(RetryTimer(node_id, visit, item.attempt + 1, index)))
                    item.waiting_retry = False
                else:
                    host.issue(CancelNode(node_id, visit, item.attempt, index))
                    if timeout is not None:
                        host.issue(
                            CancelTimer(NodeTimeoutTimer(node_id, visit, item.attempt, index))
                        )
                item.status = _CANCELLED
                item.finished_at = at
            elif item.status is _PENDING:
                item.status = _SKIPPED
                item.queued = False
        self.ready.clear()
        self.running = self.retrying = 0

    # --- replay --------------------------------------------------------------------------------

    def force_start(self, r: NodeResult) -> None:
        """Replay only: a recorded item attempt for an item still queued or waiting to retry."""
        if self.closing or r.item is None or not 0 <= r.item < len(self.states):
            return
        item = self.states[r.item]
        if item.queued:
            item.queued = False
            item.status = _RUNNING
            item.attempt = r.attempt
            self.running += 1
        elif item.waiting_retry and r.attempt == item.attempt + 1:
            item.waiting_retry = False
            self.retrying -= 1
            item.attempt = r.attempt
            self.running += 1

    def resume(self, at: float) -> None:
        """After a replay: items without a final result start again, within ``concurrency``."""
        if self.closing:  # the verdict was in, the final result was not: ask for it again
            self.closing = False
            self._check(at)
            return
        again: list[int] = []
        for index, item in enumerate(self.states):
            if item.status is not _RUNNING:
                continue
            if item.waiting_retry:  # its retry timer died with the old driver: retry now
                item.waiting_retry = False
                self.retrying -= 1
                item.attempt += 1
            else:
                self.running -= 1
            item.status = _PENDING
            item.queued = True
            again.append(index)
        self.ready.extendleft(reversed(again))
        self._pump(at)

    # --- internals -----------------------------------------------------------------------------

    def _finish(self, r: NodeResult) -> None:
        assert r.item is not None
        self.host.record(r)
        index, at = r.item, r.finished_at
        item = self.states[index]
        if r.attempt == 1 and r.started_at:
            item.started_at = r.started_at
        retry = self.node.retry
        if r.status is _COMPLETED:
            item.status = _COMPLETED
            item.output = r.output
            item.error = None
            item.finished_at = at
            self.completed += 1
            self._emit("item.completed", at, index, item, {"output": r.output})
        elif r.retryable and r.attempt < retry.attempts:
            delay = retry.delay(r.attempt, self.host.random())
            item.waiting_retry = True
            item.error = r.error
            self.retrying += 1
            data = {"error": r.error, "delay": delay, "next_attempt": r.attempt + 1}
            self._emit("item.retrying", at, index, item, data)
            timer = RetryTimer(self.node.id, self.visit, r.attempt + 1, index)
            self.host.issue(StartTimer(timer, delay))
        else:
            item.status = _FAILED
            item.error = r.error or "failed"
            item.finished_at = at
            self.failed += 1
            self._emit("item.failed", at, index, item, {"error": item.error})
        self._pump(at)
        self._check(at)

    def _pump(self, at: float) -> None:
        ready, states, limit = self.ready, self.states, self.limit
        while ready and self.running < limit:
            index = ready.popleft()
            item = states[index]
            if not item.queued:
                continue  # started out of turn while a checkpoint was replayed
            item.queued = False
            item.status = _RUNNING
            if item.attempt == 0:
                item.attempt = 1
            if item.attempt == 1:
                item.started_at = at
            self.running += 1
            self._emit("item.started", at, index, item, None)
            node = self.node
            self.host.issue(StartNode(node.id, self.visit, item.attempt, index, self.items[index]))
            if node.timeout is not None:
                timer = NodeTimeoutTimer(node.id, self.visit, item.attempt, index)
                self.host.issue(StartTimer(timer, node.timeout))

    def _check(self, at: float) -> None:
        """Ask for the node's final result once the verdict is in."""
        if self.closing:
            return
        if self.failed > self.allowed:
            self.stop(at)
            status, error = _FAILED, self.failure_message()
        elif self.completed + self.failed == len(self.items):
            status, error = _COMPLETED, None
        else:
            return
        self.closing = True
        self.host.issue(
            FinishMap(self.node.id, self.visit, status, self.outputs(), error, self.started_at)
        )

    def _emit(
        self, kind: str, at: float, index: int, item: ItemState, data: dict[str, Any] | None
    ) -> None:
        payload = {"item": index}
        if data:
            payload.update(data)
        self.host.emit(kind, at, self.node.id, self.visit, item.attempt, payload)
