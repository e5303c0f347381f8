"""What goes into the execution state machine (stimuli) and what comes out (commands).

Times are plain floats (seconds since the epoch) supplied by the driver with each stimulus; the
state machine never reads a clock. ``NodeResult`` doubles as the checkpoint record: the ordered
list of results is all that is needed to resume an execution.

Messages created once or more per node (stimuli, commands, events, results) are slotted
dataclasses *without* ``frozen``: a frozen dataclass's ``__init__`` sets each field through
``object.__setattr__``, which measured 1.5 us against 0.6 us for a seven-field message, and the
state machine creates several per node. They are immutable by convention; nothing mutates them.
Timers stay frozen because they are dictionary keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    WAITING = "waiting"
    """Parked: it only waits (tasks, callbacks, signals, timers); no engine holds it."""

    @property
    def terminal(self) -> bool:
        """Whether an execution in this status has ended (``TERMINAL_EXECUTION_STATUSES``)."""
        return self in TERMINAL_EXECUTION_STATUSES


class NodeStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether a node in this status has finished (``TERMINAL_NODE_STATUSES``)."""
        return self in TERMINAL_NODE_STATUSES


TERMINAL_EXECUTION_STATUSES = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)
"""The one definition of an ended execution, everywhere: engines, the orchestrator, the store
(its queries compare the status column with these values) and the event types
``execution.<status>`` that end an execution's event stream."""
TERMINAL_NODE_STATUSES = frozenset(
    {NodeStatus.COMPLETED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED}
)
"""The one definition of a finished node."""


# --- stimuli ---------------------------------------------------------------------------------


@dataclass(slots=True)
class NodeResult:
    """The end of one attempt of one visit of a node, as reported by the driver.

    ``status`` is COMPLETED, FAILED, or SKIPPED (its ``when`` was false). ``route`` is set by the
    driver for nodes whose ``next`` is a list of conditional edges (it evaluates them): the
    chosen target, ``end``, or None when no edge matched.
    """

    node: str
    visit: int
    attempt: int
    status: NodeStatus
    output: Any = None
    outcome: str | None = None
    error: str | None = None
    retryable: bool = False
    route: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    item: int | None = None
    """For a node with ``map``: the item's index (0-based) when this is one item's attempt; None
    for the node's own records (its expansion, ``attempt`` 0 with status RUNNING and the items
    as ``output``, and its final result)."""
    reused_from: str | None = None
    """Set on a record copied from another execution by a retry: that execution's id."""


@dataclass(slots=True)
class Start:
    at: float
    timeout: float | None = None
    """Overrides the definition's timeout, e.g. the time left when an execution is re-placed."""


@dataclass(slots=True)
class NodeFinished:
    result: NodeResult


@dataclass(slots=True)
class TimerFired:
    timer: Timer
    at: float


@dataclass(slots=True)
class Cancel:
    at: float
    reason: str = "cancelled"


@dataclass(slots=True)
class OutputsEvaluated:
    at: float
    outputs: Mapping[str, Any] | None = None
    error: str | None = None


Stimulus = Start | NodeFinished | TimerFired | Cancel | OutputsEvaluated


# --- timers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryTimer:
    node: str
    visit: int
    attempt: int
    item: int | None = None


@dataclass(frozen=True, slots=True)
class NodeTimeoutTimer:
    node: str
    visit: int
    attempt: int
    item: int | None = None


@dataclass(frozen=True, slots=True)
class ExecutionTimeoutTimer:
    pass


Timer = RetryTimer | NodeTimeoutTimer | ExecutionTimeoutTimer


# --- commands --------------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """A monitoring event (``execution.started``, ``node.completed``, ``node.retrying``, ...).

    Also a command: the driver hands each one to its event sink.
    """

    type: str
    execution_id: str
    at: float
    node: str | None = None
    visit: int = 0
    attempt: int = 0
    data: Mapping[str, Any] | None = None


@dataclass(slots=True)
class StartNode:
    """Run one attempt; for a node with ``map``: its expansion (``item`` None: render the items
    and answer with the expansion record), or one item's attempt (``item`` its index, ``value``
    the item)."""

    node: str
    visit: int
    attempt: int
    item: int | None = None
    value: Any = None


@dataclass(slots=True)
class CancelNode:
    node: str
    visit: int
    attempt: int
    item: int | None = None


@dataclass(slots=True)
class FinishMap:
    """The items of a mapped node's visit are done (or too many failed): answer with the node's
    final result, attempt 1, routing ``next`` as any attempt does. ``status`` is COMPLETED (with
    the items' outputs in order) or FAILED (with ``error``)."""

    node: str
    visit: int
    status: NodeStatus
    output: Any
    error: str | None
    started_at: float


@dataclass(slots=True)
class StartTimer:
    timer: Timer
    delay: float


@dataclass(slots=True)
class CancelTimer:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Emit:
    event: Event


@dataclass(slots=True)
class EvaluateOutputs:
    """Render the workflow's ``outputs`` and answer with ``OutputsEvaluated``."""


@dataclass(slots=True)
class ExecutionError:
    node: str | None
    message: str


@dataclass(slots=True)
class Finish:
    status: ExecutionStatus
    outputs: Mapping[str, Any]
    error: ExecutionError | None


Command = (
    StartNode | CancelNode | FinishMap | StartTimer | CancelTimer | Event | EvaluateOutputs | Finish
)
