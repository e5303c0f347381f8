"""The workflow model the engine runs: frozen dataclasses built by ``parser.py`` or ``builder.py``.

Everything here is immutable and already validated; templates and expressions are compiled
(``engine.templates``) and graph indexes (dependents, transition targets, start nodes) are
computed once, so the state machine only does lookups.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from engine.lua import LuaCode
from engine.templates import Const, Template

END = "end"
"""The ``next`` target that ends a branch."""

SUCCESS = "SUCCESS"
FAIL = "FAIL"

DEFAULT_MAX_VISITS = 100
"""Loop guard when a node sets no ``max_visits``; exceeding it fails the execution."""


class TriggerRule(StrEnum):
    """When a node with ``depends_on`` may run (Airflow's names)."""

    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ONE_FAILED = "one_failed"


@dataclass(frozen=True, slots=True)
class InputParam:
    name: str
    type: str
    required: bool
    default: Any = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` counts the first try; ``delay`` is pure so the state machine can use it."""

    attempts: int = 1
    backoff: float = 1.0
    factor: float = 2.0
    max_backoff: float = 300.0
    jitter: float = 0.2

    def delay(self, failed_attempt: int, unit_random: float) -> float:
        """Seconds to wait after attempt number ``failed_attempt`` (1-based) failed.

        ``unit_random`` in [0, 1) spreads the delay by ±``jitter`` of its value, so many
        executions that failed together do not retry together.
        """
        base = min(self.backoff * self.factor ** (failed_attempt - 1), self.max_backoff)
        return max(0.0, base * (1.0 + self.jitter * (2.0 * unit_random - 1.0)))


NO_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class MapSpec:
    """``map``: run the node once per item of the list ``items`` renders to.

    At most ``concurrency`` items run at once (None: no bound). The node fails once more items
    failed than it tolerates: ``tolerate`` items, or ``tolerate_percent`` % of them (rounded down).
    """

    items: Template
    concurrency: int | None = None
    tolerate: int = 0
    tolerate_percent: float | None = None

    def allowed_failures(self, total: int) -> int:
        """How many of ``total`` items may fail while the node still completes."""
        if self.tolerate_percent is not None:
            return math.floor(total * self.tolerate_percent / 100 + 1e-9)
        return self.tolerate


# --- executors -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LuaTask:
    code: LuaCode
    max_memory: int | None = None
    instructions: int | None = None


@dataclass(frozen=True, slots=True)
class HttpTask:
    method: str
    url: Template
    headers: Template
    json_body: Template | None
    body: Template | None
    outcome: str | None
    callback: Callback | None = None
    """Set for an asynchronous request: a 2xx answer accepts it, the callback completes it."""
    timeout: float | None = None
    """With ``callback``: seconds to wait for the callback from the request; None: no limit."""


@dataclass(frozen=True, slots=True)
class Callback:
    """How an asynchronous HTTP request carries its callback (``http.callback``)."""

    protocol: str = "weir"
    """``weir``: ``Weir-Task-Token``/``Weir-Callback-Url`` headers and ``weir_task_token``/
    ``weir_callback_url`` body fields; ``fsl``: the FSL seed's ``{flowId, stepName, ackStates,
    uuid, ...}`` body, answered at ``POST /step``."""
    ack_states: tuple[str, ...] = ()
    """``fsl``: the outcomes the action may report (sent as ``ackStates``)."""


@dataclass(frozen=True, slots=True)
class PythonTask:
    target: str


@dataclass(frozen=True, slots=True)
class SubWorkflowTask:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class QueueTask:
    """``task``: a durable task on a queue, done by a worker (the SDK) or by anyone holding its
    token. Durations are seconds; None where not set."""

    queue: str
    timeout: float | None = None
    """Start to close: from a worker taking it to its answer."""
    heartbeat: float | None = None
    """How long a running task may stay silent."""
    schedule_to_start: float | None = None
    """How long it may wait for a worker to take it."""


@dataclass(frozen=True, slots=True)
class WaitTask:
    """``wait``: until a signal of that name is sent to the execution. Seconds; None: no
    limit."""

    signal: str
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class NoopTask:
    pass


@dataclass(frozen=True, slots=True)
class SleepTask:
    seconds: float


Executor = (
    LuaTask | HttpTask | PythonTask | SubWorkflowTask | QueueTask | WaitTask | NoopTask | SleepTask
)


# --- transitions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edge:
    """A conditional edge of the list form of ``next``."""

    to: str
    when: LuaCode | None = None
    outcome: str | None = None
    priority: int | None = None

    def matches_outcome(self, outcome: str) -> bool:
        """Without ``outcome`` an edge matches every outcome except ``FAIL``."""
        return outcome == self.outcome if self.outcome is not None else outcome != FAIL


@dataclass(frozen=True, slots=True)
class Transitions:
    """``next``: either a map from outcome to target or conditional edges (sorted for use)."""

    by_outcome: Mapping[str, str] | None = None
    edges: tuple[Edge, ...] = ()

    def targets(self) -> set[str]:
        return (
            set(self.by_outcome.values())
            if self.by_outcome is not None
            else {e.to for e in self.edges}
        )


# --- triggers --------------------------------------------------------------------------------


class Overlap(StrEnum):
    """What a cron tick does while the trigger's previous execution is still running."""

    ALLOW = "allow"
    SKIP = "skip"
    CANCEL_PREVIOUS = "cancel-previous"


class CatchUp(StrEnum):
    """Which ticks missed while no orchestrator was running still fire."""

    NONE = "none"
    LATEST = "latest"
    ALL = "all"


DEFAULT_CATCH_UP_WINDOW = 3600.0


@dataclass(frozen=True, slots=True)
class CronTrigger:
    """A cron trigger of a workflow; ``inputs`` is compiled, its scope is ``trigger`` only."""

    name: str
    cron: str
    timezone: str = "UTC"
    inputs: Template = field(default_factory=lambda: Const({}))
    overlap: Overlap = Overlap.SKIP
    catch_up: CatchUp = CatchUp.NONE
    catch_up_window: float = DEFAULT_CATCH_UP_WINDOW
    enabled: bool = True
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The trigger as written (its inputs as templates), for display."""


# --- nodes and definitions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    executor: Executor
    args: Template
    depends_on: tuple[str, ...] = ()
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    when: LuaCode | None = None
    next: Transitions | None = None
    max_visits: int = DEFAULT_MAX_VISITS
    retry: RetryPolicy = NO_RETRY
    timeout: float | None = None
    description: str | None = None
    map: MapSpec | None = None
    """Set when the node runs once per item of a list (``retry`` and ``timeout`` then apply to
    each item)."""


@dataclass(frozen=True, slots=True)
class Definition:
    """A validated workflow version, with the graph indexes the state machine needs."""

    name: str
    version: str
    nodes: tuple[Node, ...]
    inputs: Mapping[str, InputParam] = field(default_factory=dict)
    outputs: Template | None = None
    timeout: float | None = None
    concurrency: int | None = None
    description: str | None = None
    triggers: tuple[CronTrigger, ...] = ()
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The definition as submitted (after parsing YAML/JSON), for storage and display."""

    by_id: Mapping[str, Node] = field(init=False, compare=False, repr=False)
    dependents: Mapping[str, tuple[str, ...]] = field(init=False, compare=False, repr=False)
    transition_targets: frozenset[str] = field(init=False, compare=False, repr=False)
    start_nodes: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_id = {node.id: node for node in self.nodes}
        dependents: dict[str, list[str]] = {node.id: [] for node in self.nodes}
        targets: set[str] = set()
        entered: set[str] = set()  # targets of a transition from another node
        for node in self.nodes:
            for dep in node.depends_on:
                dependents.setdefault(dep, []).append(node.id)
            if node.next is not None:
                own = node.next.targets() - {END}
                targets.update(own)
                entered.update(own - {node.id})
        # A node starts with the execution unless it waits for dependencies or is entered by a
        # transition from another node; a self-loop (FAIL -> itself) does not make it wait.
        start = tuple(n.id for n in self.nodes if not n.depends_on and n.id not in entered)
        object.__setattr__(self, "by_id", MappingProxyType(by_id))
        object.__setattr__(
            self, "dependents", MappingProxyType({k: tuple(v) for k, v in dependents.items()})
        )
        object.__setattr__(self, "transition_targets", frozenset(targets))
        object.__setattr__(self, "start_nodes", start)
