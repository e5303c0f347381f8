"""What the orchestrator and an engine say to each other, as domain objects.

Protobuf stops at the engine link (``link.py``, converting with ``adapter.py``): the rest of the
orchestrator reads an ``EngineReport`` (one ``FromEngine`` message: node runs, events, ends,
refusals, hand-backs, sub-workflow requests) and tells an engine what to do through the
``EnginePort`` methods (``execute`` an ``ExecuteOrder``, ``cancel``, ``attach``,
``child_finished`` with a ``ChildAnswer``, ``ack``).

Every report about an execution carries the ``lease`` of the placement it comes from; the
receiver ignores one whose lease is not current (see ``Lifecycle``).

The messages are slotted dataclasses, immutable by convention but not ``frozen``: several are made
per execution or per node on the hot path, and a frozen dataclass's ``__init__`` costs about three
times as much (the measurement is in ``engine/state/events.py``). Nothing mutates them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from engine.state.events import ExecutionStatus, NodeResult
from engine.state.result import ExecutionResult

# --- engine -> orchestrator ------------------------------------------------------------------


@dataclass(slots=True)
class Held:
    """An execution an engine kept running from a closed stream (listed in its hello)."""

    execution_id: str
    lease: int
    finished: bool


class RefusalReason(enum.Enum):
    """Why an engine refused a placement (the values are the metrics' ``reason`` labels)."""

    UNSPECIFIED = "unspecified"
    FULL = "full"
    DRAINING = "draining"
    UNKNOWN_DEFINITION = "unknown_definition"
    INVALID = "invalid"
    DUPLICATE = "duplicate"


@dataclass(slots=True)
class NodeReported:
    """A node run finished (``output_json``: its output as sent, stored without re-encoding)."""

    execution_id: str
    lease: int
    result: NodeResult
    output_json: bytes | None


@dataclass(slots=True)
class EventReported:
    """A monitoring event of an execution (``data_json``: ``data`` as sent, when readable)."""

    execution_id: str
    lease: int
    type: str
    at: float
    node: str | None
    visit: int
    attempt: int
    data: Any
    data_json: bytes | None


@dataclass(slots=True)
class Ended:
    """An execution ended; ``result`` is None when the engine's result was unreadable
    (``problem`` says why)."""

    execution_id: str
    lease: int
    result: ExecutionResult | None
    problem: str = ""


@dataclass(slots=True)
class Refused:
    execution_id: str
    lease: int
    reason: RefusalReason
    message: str


@dataclass(slots=True)
class HandedBack:
    """A draining engine gave the execution up: it must be placed elsewhere."""

    execution_id: str
    lease: int


@dataclass(slots=True)
class ChildRequested:
    """A ``workflow`` node attempt asks for a sub-workflow execution."""

    execution_id: str
    lease: int
    node: str
    visit: int
    attempt: int
    workflow: str
    version_range: str
    inputs_json: bytes
    item: int | None = None
    """The item's index for an item of a node with ``map``."""


@dataclass(slots=True)
class TaskRequested:
    """A ``task`` node attempt asks for a durable task on a queue (durations in seconds, 0 when
    not set)."""

    execution_id: str
    lease: int
    node: str
    visit: int
    attempt: int
    queue: str
    args_json: bytes
    timeout: float
    heartbeat: float
    schedule_to_start: float
    item: int | None = None
    """The item's index for an item of a node with ``map``."""
    kind: str = "worker"
    """``worker``, ``callback``, ``signal`` (``queue`` is the signal's name) or ``timer``."""
    deadline: float = 0.0
    """Unix seconds by which it must end (the node's ``timeout``); 0: none."""


@dataclass(slots=True)
class Delivered:
    """How an asynchronous HTTP request of a callback task went: accepted, or not (``error``)."""

    execution_id: str
    lease: int
    token: str
    ok: bool
    error: str
    retryable: bool


@dataclass(slots=True)
class Parked:
    """The execution only waits: the engine forgot it. Place it again when a task of it ends,
    or at ``wake_at`` (unix seconds; 0: no timer)."""

    execution_id: str
    lease: int
    wake_at: float
    waiting: int


@dataclass(slots=True)
class EngineReport:
    """One message of an engine's stream, in the order it is to be applied.

    ``seq`` and ``stream`` identify it for the acknowledgement (``EnginePort.ack``).
    """

    seq: int
    stream: int
    nodes: Sequence[NodeReported] = ()
    events: Sequence[EventReported] = ()
    ended: Sequence[Ended] = ()
    refused: Sequence[Refused] = ()
    handed_back: Sequence[HandedBack] = ()
    children: Sequence[ChildRequested] = ()
    tasks: Sequence[TaskRequested] = ()
    deliveries: Sequence[Delivered] = ()
    parked: Sequence[Parked] = ()


# --- orchestrator -> engine ------------------------------------------------------------------


@dataclass(slots=True)
class ExecuteOrder:
    """Run an execution: its definition (sent with its body when this stream lacks it), its
    inputs, its checkpoint to replay and the time left before its deadline."""

    execution_id: str
    lease: int
    digest: str
    snapshot: bytes
    inputs_json: bytes
    depth: int
    checkpoint: Sequence[NodeResult]
    timeout: float | None


@dataclass(slots=True)
class ChildAnswer:
    """A sub-workflow ended: what its parent's node attempt waits for."""

    execution_id: str
    lease: int
    node: str
    visit: int
    attempt: int
    child_id: str
    status: ExecutionStatus
    outputs_json: bytes
    error: str
    item: int | None = None
    """The item's index for an item of a node with ``map``."""


@dataclass(slots=True)
class TaskAnswer:
    """A durable task ended: what its node attempt waits for. ``error`` says why it did not
    complete; ``retryable`` whether the node's ``retry`` may try again."""

    execution_id: str
    lease: int
    node: str
    visit: int
    attempt: int
    completed: bool
    output_json: bytes
    error: str
    retryable: bool
    item: int | None = None
    """The item's index for an item of a node with ``map``."""
    outcome: str = ""
    """The outcome the answer gave explicitly (a callback's, a signal's); empty: none."""


@dataclass(slots=True)
class TaskTicket:
    """A callback task exists: the token and URLs its request carries; ``delivered`` when an
    earlier attempt's request was already accepted (do not send it again)."""

    execution_id: str
    lease: int
    node: str
    visit: int
    attempt: int
    item: int | None
    token: str
    callback_url: str
    base_url: str
    delivered: bool


# --- ports -----------------------------------------------------------------------------------


class EnginePort(Protocol):
    """One engine as the rest of the orchestrator sees it (``EngineLink`` is the real one)."""

    @property
    def id(self) -> str:
        """The link's id: the engine's discovery id (what placement and metrics key by)."""

    @property
    def name(self) -> str:
        """The engine's own id (``ENGINE_ID``) once it said hello, else the link id."""

    @property
    def address(self) -> str: ...

    @property
    def usable(self) -> bool:
        """Whether it takes new work (stream up, healthy, not draining)."""

    @property
    def draining(self) -> bool:
        """Whether it said it is draining (it finishes what it runs, takes nothing new)."""

    @property
    def capacity(self) -> int: ...

    @property
    def reported_in_flight(self) -> int:
        """What the engine last said it runs."""

    def execute(self, order: ExecuteOrder) -> None: ...

    def cancel(self, execution_id: str, lease: int, reason: str) -> None: ...

    def attach(self, execution_id: str, lease: int) -> None: ...

    def child_finished(self, answer: ChildAnswer) -> None: ...

    def task_finished(self, answer: TaskAnswer) -> None: ...

    def task_scheduled(self, ticket: TaskTicket) -> None: ...

    def ack(self, seq: int, stream: int) -> None:
        """Acknowledge the engine's messages up to ``seq`` of stream number ``stream``."""

    def forget_definition(self, digest: str) -> None:
        """The engine lacks that definition: send its body with the next order using it."""

    def assume_full(self) -> None:
        """The engine said it is full: count it so until it reports its load again."""


class LinkHandler(Protocol):
    """Told what an engine link sees (``Lifecycle`` is the real one)."""

    def connected(self, link: EnginePort, held: Sequence[Held]) -> None:
        """A new stream is up; ``held`` are executions the engine kept from a closed stream."""

    def ready(self, link: EnginePort) -> None:
        """The engine can take work."""

    def unready(self, link: EnginePort) -> None:
        """The engine should get no new work, but keeps what it runs (NOT_SERVING, draining)."""

    def lost(self, link: EnginePort, reason: str) -> None:
        """The stream is gone: whatever ran there must be re-placed."""

    def report(self, link: EnginePort, report: EngineReport) -> None:
        """A message from the engine (after its hello)."""


class FleetHandler(LinkHandler, Protocol):
    """A ``LinkHandler`` also told when discovery removes an engine."""

    def removed(self, link: EnginePort, why: str) -> None:
        """The engine left discovery (or moved): its executions must be re-placed."""
