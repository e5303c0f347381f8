"""The store's interface: what the orchestrator persists and how it asks for it back.

Two kinds of operation:

* **Group-committed writes** (``put_execution``, ``put_task``, ``put_signal``, ``add_node_run``,
  ``add_events``) only queue the row and return at once. A background writer commits whatever
  has queued in one transaction (a *group commit*), so many executions share one commit.
  ``await durable()`` returns once everything queued before the call is committed; the
  orchestrator acknowledges a node result to its engine, or reports an execution as started or
  finished to a client, only after that.
* **Direct operations** (everything ``async``) run at once and see every committed write. Reads
  do not see writes still queued: call ``durable()`` first when that matters.

Rows are plain dataclasses; times are Unix seconds (float); user data is JSON bytes, as on the
wire. Backends: ``SqlStore`` (SQLite or PostgreSQL through SQLAlchemy) and ``MemoryStore``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.state.events import TERMINAL_EXECUTION_STATUSES
from orchestrator.signals import Signal

TASK_KINDS = ("worker", "callback", "signal", "timer")
"""What a durable task is (``TaskRow.kind``)."""
TASK_STATUSES = ("pending", "running", "completed", "failed", "timed_out", "cancelled")
"""What a durable task can be: waiting for a worker, with one, or ended one of four ways."""
UNFINISHED_TASK_STATUSES = frozenset({"pending", "running"})


class StoreError(Exception):
    """The store cannot be opened, migrated or written; the message says which and why."""


@dataclass(slots=True)
class WorkflowRow:
    """One registered workflow version."""

    name: str
    version: str
    source: str
    """The definition as submitted (YAML or JSON text)."""
    document_json: bytes
    """The parsed form: the canonical JSON snapshot engines receive."""
    digest: str
    registered_at: float
    deprecated: bool = False


@dataclass(slots=True)
class ExecutionRow:
    """One execution: its identity, its placement, and its result once finished."""

    id: str
    workflow: str
    version: str
    status: str
    """An ``ExecutionStatus`` value: pending, running, completed, failed, cancelled."""
    inputs_json: bytes
    created_at: float
    routing_key: str = ""
    idempotency_key: str | None = None
    parent_id: str | None = None
    parent_node: str | None = None
    child_key: str | None = None
    """For a child: ``parent/node/visit/attempt`` (``parent/node/visit/item/attempt`` for an item
    of a node with ``map``; ``ParentLink.key``), unique, so a re-sent start finds it."""
    depth: int = 0
    engine: str = ""
    """The engine link it is placed on (or last ran on); empty while queued."""
    engine_name: str = ""
    """That engine's own id (``ENGINE_ID``), for people."""
    lease: int = 0
    placements: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    deadline: float | None = None
    cancel_reason: str | None = None
    result_json: bytes | None = None
    """The result object of ARCHITECTURE.md, once finished."""
    retry_of: str | None = None
    """For a retry: the execution it retries (fixed at creation)."""
    retried_by: str | None = None
    """The retry of this execution, once one was made (docs/retry.md)."""
    wake_at: float | None = None
    """While parked (status ``waiting``): when a timer wakes it, if one does."""

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_EXECUTION_STATUSES


@dataclass(slots=True)
class NodeRunRow:
    """One attempt of one visit of one node: the checkpoint record (``NodeResult``).

    Keyed by (execution_id, node, visit, item, attempt). A node with ``map`` has several records
    per visit: its expansion (``attempt`` 0, status running, the list of items as its output,
    ``item`` None), one per attempt of each item (``attempt`` 1, 2, ..., ``item`` the item's
    index), and its final result (``attempt`` 1, ``item`` None). SQL stores ``item`` None as -1,
    so that it can be part of the primary key.
    """

    execution_id: str
    position: int
    """Its place in the execution's journal (0, 1, ...): replay order."""
    node: str
    visit: int
    attempt: int
    status: str
    """A ``NodeStatus`` value: completed, failed, skipped; running for a map's expansion."""
    output_json: bytes | None = None
    outcome: str | None = None
    error: str | None = None
    retryable: bool = False
    route: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    item: int | None = None
    """The item's index (0-based) for one item's attempt of a node with ``map``, else None."""
    reused_from: str | None = None
    """Set on a record copied from another execution by a retry: that execution's id."""


@dataclass(slots=True)
class TaskRow:
    """One durable task: one attempt of one visit of one ``task`` node (of one item, for a node
    with ``map``), done by a worker.

    Keyed by ``token`` (what the worker completes it with); ``(execution_id, node, visit, item,
    attempt)`` is unique too (SQL stores ``item`` None as -1). The identity -- token, execution,
    workflow, node, visit, item, attempt, queue, args, created_at, idempotency key and the three
    timeouts -- is fixed by the first put; the rest is its progress.
    """

    token: str
    """The primary key; opaque (made by the orchestrator, handed to the worker)."""
    execution_id: str
    workflow: str
    node: str
    visit: int
    attempt: int
    queue: str
    args_json: bytes
    status: str
    """One of ``TASK_STATUSES``."""
    created_at: float
    idempotency_key: str = ""
    worker: str = ""
    """The worker running it, or that ran it last."""
    deliveries: int = 0
    """Times it was handed to a worker."""
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    schedule_to_start_s: float = 0.0
    """Seconds it may wait for a worker; 0 = no limit (likewise the other two)."""
    timeout_s: float = 0.0
    heartbeat_s: float = 0.0
    output_json: bytes | None = None
    error: str | None = None
    retryable: bool = False
    details_json: bytes | None = None
    item: int | None = None
    """The item's index (0-based) for a task of an item of a node with ``map``, else None."""
    kind: str = "worker"
    """One of ``TASK_KINDS``: work for a worker of ``queue``; an asynchronous HTTP request
    answered by a callback; a wait for the signal named ``queue``; a durable timer that
    completes ``timeout_s`` after ``created_at``."""
    deadline_at: float | None = None
    """Unix seconds by which it must end (the node's ``timeout`` counted from its attempt's
    start), whatever its other deadlines; None: none."""
    outcome: str | None = None
    """The outcome its answer gave explicitly (a callback's, a signal's), if any."""

    def copy(self) -> TaskRow:
        """A copy to hand to a group-committed write (the original keeps changing): field by
        field, about eight times faster than ``dataclasses.replace``, on a path every task
        takes four times."""
        return TaskRow(
            self.token,
            self.execution_id,
            self.workflow,
            self.node,
            self.visit,
            self.attempt,
            self.queue,
            self.args_json,
            self.status,
            self.created_at,
            self.idempotency_key,
            self.worker,
            self.deliveries,
            self.started_at,
            self.finished_at,
            self.heartbeat_at,
            self.schedule_to_start_s,
            self.timeout_s,
            self.heartbeat_s,
            self.output_json,
            self.error,
            self.retryable,
            self.details_json,
            self.item,
            self.kind,
            self.deadline_at,
            self.outcome,
        )

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED_TASK_STATUSES


TASK_KEY = ("execution_id", "node", "visit", "item", "attempt")
"""A task's other unique key, besides its token: ``find_task``'s."""
TASK_IDENTITY = frozenset(
    {
        "token",
        *TASK_KEY,
        "workflow",
        "queue",
        "args_json",
        "created_at",
        "idempotency_key",
        "schedule_to_start_s",
        "timeout_s",
        "heartbeat_s",
        "kind",
        "deadline_at",
    }
)
"""``TaskRow`` fields fixed by the first put: a later put never changes them."""


@dataclass(slots=True)
class EventRow:
    """One monitoring event of the event log; ``seq`` increases by one per event."""

    seq: int
    type: str
    at: float
    severity: int
    workflow: str = ""
    version: str = ""
    execution_id: str = ""
    node: str | None = None
    visit: int = 0
    attempt: int = 0
    engine_id: str = ""
    message: str = ""
    data_json: bytes | None = None


@dataclass(slots=True)
class TriggerRow:
    """The state of one cron trigger of one workflow, keyed by (workflow, trigger name).

    ``next_fire_at`` is the cursor: the next tick to fire. Orchestrators move it forward with
    ``Store.claim_trigger``, a compare-and-set, so that of several replicas exactly one fires
    each tick.
    """

    workflow: str
    trigger: str
    """The trigger's name within the workflow."""
    last_fire_at: float | None = None
    """The scheduled time of the latest tick that fired."""
    next_fire_at: float | None = None
    owner: str = ""
    """The orchestrator that moved the cursor last."""
    last_execution_id: str | None = None
    """The execution the trigger started last (for its overlap policy)."""
    source: str = "definition"
    """``definition`` (the trigger is in the workflow's definition) or ``api``."""
    spec_json: bytes | None = None
    """An ``api`` trigger's spec as JSON; NULL for definition triggers."""
    schedule: str = ""
    """The cron expression and time zone the cursor was computed for (``"0 0 * * * UTC"``):
    when the trigger's schedule changes, the cursor is computed again."""


@dataclass(slots=True)
class SignalRow:
    """One signal sent to an execution (``weir signal``): consumed by the first ``wait`` node
    attempt waiting for its name, or kept until one does (in ``sent_at`` order)."""

    id: str
    execution_id: str
    name: str
    outcome: str
    """Empty: the data's ``outcome`` field, or SUCCESS."""
    data_json: bytes
    sent_at: float
    consumed_by: str | None = None
    """The token of the wait task that took it; None while kept."""
    consumed_at: float | None = None

    def copy(self) -> SignalRow:
        return SignalRow(
            self.id,
            self.execution_id,
            self.name,
            self.outcome,
            self.data_json,
            self.sent_at,
            self.consumed_by,
            self.consumed_at,
        )


class Store(Protocol):
    """What the orchestrator needs from a store; see the module docstring."""

    url: str
    """Where it is, with any password masked: for logs and error messages."""
    committed: Signal[[float, int]]
    """Emitted after each successful group commit with the seconds it took and the rows it
    wrote (the wiring connects the metrics); a store without a group commit never emits it."""

    async def open(self) -> None:
        """Connect and apply migrations; raise ``StoreError`` saying what is wrong."""

    async def close(self) -> None:
        """Commit whatever is queued, then disconnect; idempotent."""

    async def claim(self, owner: str) -> None:
        """Claim the store for the orchestrator ``owner`` serving from it, until ``close``.

        On SQLite the claim is exclusive (``orchestrator.store.claim``): a second orchestrator
        on the same file gets ``StoreError`` naming the first. Elsewhere it claims nothing yet.
        """

    # --- group-committed writes ---------------------------------------------------------------

    def put_execution(self, row: ExecutionRow) -> None:
        """Insert or update the execution (the latest put of a batch wins).

        Its identity (id, workflow, version, inputs, created_at, routing and idempotency keys,
        parent link, depth) is fixed by the first put; later puts must carry the same values
        (a backend may keep the first ones) and update the rest.
        """

    def put_task(self, row: TaskRow) -> None:
        """Insert or update the task by its token (the latest put of a batch wins).

        Its identity (see ``TaskRow``) is fixed by the first put; later puts of the token must
        carry the same key (execution, node, visit, item, attempt) and update the rest. A put of
        another token whose key is already stored is ignored: the task keeps its first token
        (``find_task`` says which), and the batch commits.
        """

    def put_signal(self, row: SignalRow) -> None:
        """Insert or update the signal by its id (the latest put of a batch wins); only
        ``consumed_by`` and ``consumed_at`` change after the first put. Committed in the same
        transaction as the task and execution rows queued with it."""

    def add_node_run(self, row: NodeRunRow) -> None:
        """Insert a node run; one already stored with the same key (execution, node, visit,
        item, attempt) is left as it is."""

    def add_events(self, rows: Sequence[EventRow]) -> None:
        """Append events to the log."""

    async def durable(self) -> None:
        """Return once every write queued before this call is committed.

        Raises ``StoreError`` when that commit failed (the writes are lost).
        """

    # --- workflows ----------------------------------------------------------------------------

    async def save_workflow(self, row: WorkflowRow) -> None:
        """Insert a workflow version (name and version unique)."""

    async def set_deprecated(self, name: str, version: str, deprecated: bool) -> None: ...

    async def delete_workflow(self, name: str, version: str) -> None: ...

    async def load_workflows(self) -> list[WorkflowRow]:
        """Every stored workflow version, in no particular order."""

    # --- executions ---------------------------------------------------------------------------

    async def get_execution(self, execution_id: str) -> ExecutionRow | None: ...

    async def find_execution(
        self, *, idempotency_key: str | None = None, child_key: str | None = None
    ) -> ExecutionRow | None:
        """The execution with that idempotency key or child key, if any."""

    async def list_executions(
        self,
        *,
        workflow: str = "",
        version: str = "",
        status: str = "",
        parent_id: str = "",
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
        summary: bool = False,
    ) -> list[ExecutionRow]:
        """Newest first (created_at, then id, descending), strictly older than ``before``.

        An empty filter matches any; ``created_after`` and ``created_before`` bound
        ``created_at`` strictly. With ``summary`` the rows leave out what a list does not show
        and may be large (a result of 1,000 nodes is about 200 KB): ``inputs_json`` is ``b""``
        and ``result_json`` None, whatever is stored.
        """

    async def count_executions(self, *, since: float, workflow: str = "") -> dict[str, int]:
        """How many executions (of ``workflow``, when given) were created at or after
        ``since``, by status; a status none has is left out."""

    async def unfinished_executions(self) -> list[ExecutionRow]:
        """Every execution not yet completed, failed or cancelled, oldest first."""

    async def node_runs(self, execution_ids: Sequence[str]) -> dict[str, list[NodeRunRow]]:
        """The journals of these executions, each in ``position`` order."""

    async def prune(self, finished_before: float, batch: int) -> int:
        """Delete up to ``batch`` executions finished before that time, with their node runs,
        tasks, signals and events, and up to ``batch`` events of no execution (``engine.*``,
        ``workflow.*``) older than that; return how many executions were deleted (call again
        while it returns ``batch``)."""

    # --- tasks --------------------------------------------------------------------------------

    async def get_task(self, token: str) -> TaskRow | None: ...

    async def find_task(
        self, execution_id: str, node: str, visit: int, attempt: int, *, item: int | None = None
    ) -> TaskRow | None:
        """The task of that attempt of that visit of that node (of that item, for a node with
        ``map``), if any."""

    async def list_tasks(
        self, *, queue: str = "", status: str = "", execution_id: str = "", limit: int = 100
    ) -> list[TaskRow]:
        """Newest first (created_at, then token, descending); an empty filter matches any."""

    async def unfinished_tasks(self) -> list[TaskRow]:
        """Every task pending or running, oldest first (created_at, then token)."""

    # --- signals ------------------------------------------------------------------------------

    async def unconsumed_signals(self) -> list[SignalRow]:
        """Every signal not yet consumed whose execution is unfinished, oldest first (sent_at,
        then id): what a restarted orchestrator keeps for the ``wait`` nodes to come."""

    async def list_signals(self, execution_id: str) -> list[SignalRow]:
        """The signals sent to one execution, oldest first (sent_at, then id)."""

    # --- events -------------------------------------------------------------------------------

    async def last_event_seq(self) -> int:
        """The highest ``seq`` in the log, 0 when empty."""

    async def events(
        self,
        *,
        after: int = 0,
        execution_id: str = "",
        workflow: str = "",
        limit: int = 1000,
        newest: bool = False,
        before: int | None = None,
    ) -> list[EventRow]:
        """Events with ``seq > after``, ascending: the first ``limit`` of them, or with
        ``newest`` the last ``limit``; only those with ``seq < before`` when given."""

    # --- triggers -----------------------------------------------------------------------------

    async def trigger_states(self, workflow: str = "") -> list[TriggerRow]: ...

    async def save_trigger_state(self, row: TriggerRow) -> None:
        """Insert or replace the state of (workflow, trigger)."""

    async def claim_trigger(
        self,
        workflow: str,
        trigger: str,
        *,
        expected_next: float | None,
        new_next: float,
        schedule: str,
        owner: str,
        fired_at: float | None = None,
    ) -> bool:
        """Move the cursor from ``expected_next`` to ``new_next`` if nobody moved it first.

        One atomic compare-and-set: true for exactly one of several orchestrators claiming the
        same cursor. ``expected_next=None`` claims a trigger seen for the first time (no row, or
        a row without a cursor; the row is inserted as a ``definition`` trigger when absent).
        ``fired_at`` (the latest tick that fires) becomes ``last_fire_at`` when given; the
        winner also records ``schedule`` and itself as ``owner``.
        """
        ...

    async def set_trigger_execution(self, workflow: str, trigger: str, execution_id: str) -> None:
        """Record the execution the trigger started last."""

    async def delete_trigger_state(self, workflow: str, trigger: str) -> bool:
        """Delete the row; return whether there was one."""
        ...
