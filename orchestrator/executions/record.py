"""``ExecutionRecord``: everything the orchestrator holds in memory about one execution.

One record per execution, kept by the ``ExecutionTable`` (``table.py``) while the execution is
unfinished and for a while after. Every field has exactly one part that writes it; the others
only read it:

=========================================  ===========================================  ==========
fields                                     what they are                                written by
=========================================  ===========================================  ==========
``id`` … ``depth``                         identity: fixed when the execution is made   nobody
``placement`` (``PlacementState``)         queued / on an engine / awaiting re-attach,  Placement
                                           the lease, times placed, start and deadline
``checkpoint`` (``Checkpoint``)            the node runs engines reported, in order     Lifecycle
``status``, ``cancel_reason``,             how it is going and how it ended; ``done``   Lifecycle
``end_published``, ``result``,             is set once the end is durable
``finished_at``, ``done``
``children``                               the sub-workflow executions it started       the table
``retried_by``                             the retry made of it (``retry_of`` is        the service
                                           identity: the execution it retries)          (retry)
=========================================  ===========================================  ==========

A part changes another part's fields only by asking that part (``Placement.enqueue``,
``Lifecycle.cancel``, ``ExecutionTable.add``). An execution has ended exactly when its
``status`` is terminal; the ``Lifecycle`` sets the status, the result and ``finished_at``
together (``end``), so "finished" has one meaning.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any

from engine.state.events import ExecutionStatus, NodeResult
from engine.state.result import ExecutionResult
from orchestrator.monitor import Monitor, MonitorEvent
from orchestrator.registry import WorkflowVersion


@dataclass(frozen=True, slots=True)
class ParentLink:
    """The node attempt of a parent execution that started a child (``item``: the item's index
    for an item of a node with ``map``)."""

    execution_id: str
    node: str
    visit: int
    attempt: int
    item: int | None = None

    @property
    def key(self) -> str:
        """Unique per node attempt: starting the same child twice finds the first one.

        ``parent/node/visit/attempt``, or ``parent/node/visit/item/attempt`` for an item: a key
        without an item is the one earlier versions stored, so a request re-sent across an
        upgrade still finds its child.
        """
        if self.item is None:
            return f"{self.execution_id}/{self.node}/{self.visit}/{self.attempt}"
        return f"{self.execution_id}/{self.node}/{self.visit}/{self.item}/{self.attempt}"

    @classmethod
    def from_key(cls, key: str) -> ParentLink:
        """The link of ``key``, either form. They cannot be confused: a node id never starts
        with a digit, so in a key without an item the part before the visit is not a number."""
        parts = key.rsplit("/", 4)
        if len(parts) == 5 and parts[2].isdigit():
            execution_id, node, visit, item, attempt = parts
            return cls(execution_id, node, int(visit), int(attempt), int(item))
        execution_id, node, visit, attempt = key.rsplit("/", 3)
        return cls(execution_id, node, int(visit), int(attempt))


class Where(enum.Enum):
    """Where an execution is, as far as placement goes."""

    NOWHERE = "nowhere"
    """Not queued and on no engine: just created, refused and not yet re-queued, or ended."""
    QUEUED = "queued"
    """In the placement queue, waiting for an engine with room."""
    ENGINE = "engine"
    """Placed on (or attached again to) the engine link ``PlacementState.engine``."""
    REATTACH = "reattach"
    """After a restart: it was on ``PlacementState.engine``, whose hello is awaited."""


@dataclass(slots=True)
class PlacementState:
    """Where an execution runs; written by ``Placement`` only."""

    where: Where = Where.NOWHERE
    engine: str = ""
    """The engine link it is placed on (or waits for), else the last one it ran on."""
    engine_name: str = ""
    """That engine's own id (``ENGINE_ID``), for people."""
    lease: int = 0
    """Numbers its placements: reports carrying an older lease are stale."""
    placements: int = 0
    queued_at: float = 0.0
    """When it last entered the queue (in memory only: the queue wait metric)."""
    started_at: float | None = None
    """When it was first sent to an engine."""
    deadline: float | None = None
    """``started_at`` plus the workflow's ``timeout``, if it has one."""


@dataclass(slots=True)
class Checkpoint:
    """The node runs engines reported, in order: what a new placement replays."""

    runs: list[NodeResult] = field(default_factory=list)
    seen: set[tuple[str, int, int | None, int]] = field(default_factory=set)
    """(node, visit, item, attempt) of every run, so that a re-sent one is recognised (a node
    with ``map`` has its expansion, its items' attempts and its final result: ``attempt``
    alone does not tell them apart)."""

    def add(self, result: NodeResult) -> bool:
        """Append ``result`` unless that node run is known; return whether it was new."""
        key = (result.node, result.visit, result.item, result.attempt)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.runs.append(result)
        return True

    def __len__(self) -> int:
        return len(self.runs)


@dataclass(slots=True, eq=False)
class ExecutionRecord:
    """One execution; see the module docstring for who writes which field.

    ``wf`` is the pinned workflow version; it is None only for a finished execution read back
    from the store whose version has since been deleted (its result is complete without it).
    """

    id: str
    name: str
    version: str
    wf: WorkflowVersion | None
    inputs: dict[str, Any]
    inputs_json: bytes
    routing_key: str
    created_at: float
    idempotency_key: str | None = None
    parent: ParentLink | None = None
    depth: int = 0
    placement: PlacementState = field(default_factory=PlacementState)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    status: ExecutionStatus = ExecutionStatus.PENDING
    cancel_reason: str | None = None
    """Set when a cancel was asked for; the execution ends cancelled."""
    end_published: bool = False
    """Whether its ``execution.completed|failed|cancelled`` event went out (in memory only)."""
    result: ExecutionResult | None = None
    """The final result, once ended."""
    finished_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the end is durable: waiters, the parent and clients hear of it then."""
    children: list[str] = field(default_factory=list)
    """Ids of the sub-workflow executions it started, oldest first (kept by the table)."""
    retry_of: str | None = None
    """For a retry: the execution it retries (docs/retry.md)."""
    retried_by: str | None = None
    """The retry made of it, once there is one (at most one per execution)."""
    wake_at: float | None = None
    """While parked (status ``waiting``): when its timer wakes it, if it has one."""
    unparked: bool = False
    """Woken from parking, and its engine's ``execution.resumed`` not yet seen (in memory:
    that event repeats the orchestrator's own)."""

    @property
    def finished(self) -> bool:
        """Whether it has ended (its status is terminal)."""
        return self.status.terminal

    @property
    def workflow(self) -> WorkflowVersion:
        """The pinned version; only for unfinished executions (see the class docstring)."""
        assert self.wf is not None, f"execution {self.id}: its workflow version was deleted"
        return self.wf

    def end(self, result: ExecutionResult, at: float) -> None:
        """Record how it ended: status, result and time together (``Lifecycle`` only)."""
        self.result = result
        self.finished_at = at
        self.status = result.status


def announce(monitor: Monitor, record: ExecutionRecord, type_: str, **fields: Any) -> MonitorEvent:
    """Publish an event about ``record`` (its workflow, version and id filled in)."""
    return monitor.publish(
        type_,
        workflow=record.name,
        version=record.version,
        execution_id=record.id,
        **fields,
    )
