"""The items of one visit of a node with ``map``: what the state machine tracks per item.

A mapped node's visit goes through three records in the journal (docs/semantics.md, map):

1. its **expansion** -- attempt 0, status RUNNING, ``item`` None, the list of items as ``output``
   (the driver renders ``map.items`` and answers the node's ``StartNode`` with it);
2. one record per **item attempt** -- ``item`` set to the item's index, attempts counted per item;
3. its **final result** -- attempt 1, ``item`` None: the driver answers ``FinishMap`` with it
   (routing ``next`` like any node), the list of outputs when it completed.

``MapState`` is plain bookkeeping for ``engine.state.machine``: which items are queued, running,
waiting for a retry or finished, and the verdict (``tolerate``). It issues nothing itself.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from engine.definition.model import MapSpec
from engine.state.events import NodeStatus

_PENDING = NodeStatus.PENDING
_RUNNING = NodeStatus.RUNNING
_COMPLETED = NodeStatus.COMPLETED
_FAILED = NodeStatus.FAILED


class ItemState:
    """One item of a mapped node's visit."""

    __slots__ = (
        "attempt",
        "error",
        "finished_at",
        "output",
        "queued",
        "reused_from",
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
        self.reused_from: str | None = None


class MapState:
    """The items of one visit of a mapped node, and how many run, wait, completed and failed."""

    __slots__ = (
        "allowed",
        "closing",
        "completed",
        "failed",
        "items",
        "limit",
        "ready",
        "retrying",
        "running",
        "states",
    )

    def __init__(self, spec: MapSpec, items: list[Any]) -> None:
        self.items = items
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

    @property
    def finished(self) -> int:
        return self.completed + self.failed

    @property
    def too_many_failures(self) -> bool:
        return self.failed > self.allowed

    @property
    def all_finished(self) -> bool:
        return self.completed + self.failed == len(self.items)

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
