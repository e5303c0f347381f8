"""The mutable state of one node within one execution, as ``engine.state.machine`` keeps it."""

from __future__ import annotations

from typing import Any

from engine.definition.model import Node
from engine.state.events import NodeStatus
from engine.state.items import MapState

_PENDING = NodeStatus.PENDING


class NodeState:
    """The mutable state of one node within one execution."""

    __slots__ = (
        "attempt",
        "decided",
        "deps_failed",
        "deps_ok",
        "deps_settled",
        "error",
        "finished_at",
        "id",
        "items",
        "notified",
        "outcome",
        "output",
        "queued",
        "reused_from",
        "spec",
        "started_at",
        "status",
        "visits",
        "waiting_retry",
    )

    def __init__(self, spec: Node) -> None:
        self.spec = spec
        self.id = spec.id
        self.status = _PENDING
        self.visits = 0
        self.attempt = 0
        self.queued = False  # activated, waiting for a concurrency slot
        self.waiting_retry = False  # status RUNNING, waiting for its retry timer
        self.decided = False  # its trigger rule has been decided (or a transition entered it)
        self.notified = False  # its dependents have seen it settle
        self.deps_settled = 0
        self.deps_ok = 0
        self.deps_failed = 0
        self.output: Any = None
        self.outcome: str | None = None
        self.error: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.reused_from: str | None = None  # its latest result was copied from this execution
        self.items: MapState | None = None  # a mapped node's items, once its visit expanded
