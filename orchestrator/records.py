"""What the orchestrator keeps about one execution, and its rows in the store.

An ``ExecutionRecord`` lives in memory while its execution is unfinished (and for a while after,
in a bounded cache); the store holds the same facts as an ``ExecutionRow`` plus one
``NodeRunRow`` per finished node run (the checkpoint). The conversions are here so that the
core and the recovery code write and read rows the same way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from engine.server import codec
from engine.state.events import ExecutionStatus, NodeResult, NodeStatus
from orchestrator.monitor import MonitorEvent, Severity
from orchestrator.registry import WorkflowVersion
from orchestrator.store import EventRow, ExecutionRow, NodeRunRow


@dataclass(frozen=True, slots=True)
class ParentLink:
    """The node attempt of a parent execution that started a child."""

    execution_id: str
    node: str
    visit: int
    attempt: int

    @property
    def key(self) -> str:
        """Unique per node attempt: starting the same child twice finds the first one."""
        return f"{self.execution_id}/{self.node}/{self.visit}/{self.attempt}"

    @classmethod
    def from_key(cls, key: str) -> ParentLink:
        execution_id, node, visit, attempt = key.rsplit("/", 3)
        return cls(execution_id, node, int(visit), int(attempt))


@dataclass(slots=True, eq=False)
class ExecutionRecord:
    """What the orchestrator knows about one execution.

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
    status: ExecutionStatus = ExecutionStatus.PENDING
    engine: str = ""
    """The link it is placed on (empty while queued), or the last one it ran on."""
    engine_name: str = ""
    """That engine's own id (``ENGINE_ID``), for people."""
    lease: int = 0
    placements: int = 0
    journal: list[NodeResult] = field(default_factory=list)
    seen: set[tuple[str, int, int]] = field(default_factory=set)
    result: dict[str, Any] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    deadline: float | None = None
    cancel_reason: str | None = None
    queued_at: float = 0.0
    """When it last entered the placement queue (in memory only: for the queue wait metric)."""
    children: list[str] = field(default_factory=list)
    end_published: bool = False
    """Whether its ``execution.completed/failed/cancelled`` event went out (in memory only)."""
    """Ids of the sub-workflow executions it started, oldest first."""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the result is durable."""

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def workflow(self) -> WorkflowVersion:
        """The pinned version; only for unfinished executions (see the class docstring)."""
        assert self.wf is not None, f"execution {self.id}: its workflow version was deleted"
        return self.wf

    def add_result(self, result: NodeResult) -> bool:
        """Append to the journal unless that node run is known; return whether it was new."""
        key = (result.node, result.visit, result.attempt)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.journal.append(result)
        return True


def to_row(record: ExecutionRecord) -> ExecutionRow:
    parent = record.parent
    return ExecutionRow(
        id=record.id,
        workflow=record.name,
        version=record.version,
        status=str(record.status),
        inputs_json=record.inputs_json,
        created_at=record.created_at,
        routing_key=record.routing_key,
        idempotency_key=record.idempotency_key,
        parent_id=parent.execution_id if parent else None,
        parent_node=parent.node if parent else None,
        child_key=parent.key if parent else None,
        depth=record.depth,
        engine=record.engine,
        engine_name=record.engine_name,
        lease=record.lease,
        placements=record.placements,
        started_at=record.started_at,
        finished_at=record.finished_at,
        deadline=record.deadline,
        cancel_reason=record.cancel_reason,
        result_json=codec.to_json(record.result) if record.result is not None else None,
    )


def from_row(
    row: ExecutionRow, wf: WorkflowVersion | None, journal: list[NodeRunRow] | None = None
) -> ExecutionRecord:
    """Rebuild a record; raises ``CodecError`` when a stored JSON field is unreadable."""
    inputs = codec.from_json(row.inputs_json, f"execution {row.id} inputs") or {}
    record = ExecutionRecord(
        id=row.id,
        name=row.workflow,
        version=row.version,
        wf=wf,
        inputs=inputs,
        inputs_json=row.inputs_json,
        routing_key=row.routing_key,
        created_at=row.created_at,
        idempotency_key=row.idempotency_key,
        parent=ParentLink.from_key(row.child_key) if row.child_key else None,
        depth=row.depth,
        status=ExecutionStatus(row.status),
        engine=row.engine,
        engine_name=row.engine_name or row.engine,
        lease=row.lease,
        placements=row.placements,
        started_at=row.started_at,
        finished_at=row.finished_at,
        deadline=row.deadline,
        cancel_reason=row.cancel_reason,
    )
    if row.result_json is not None:
        record.result = codec.from_json(row.result_json, f"execution {row.id} result")
        record.done.set()
    for run in journal or ():
        record.add_result(node_result(run))
    return record


def node_run_row(
    execution_id: str, position: int, result: NodeResult, output_json: bytes | None = None
) -> NodeRunRow:
    """``output_json``: the output as the engine sent it, to store without re-encoding."""
    if output_json is None and result.output is not None:
        output_json = codec.to_json(result.output)
    return NodeRunRow(
        execution_id=execution_id,
        position=position,
        node=result.node,
        visit=result.visit,
        attempt=result.attempt,
        status=str(result.status),
        output_json=output_json or None,
        outcome=result.outcome,
        error=result.error,
        retryable=result.retryable,
        route=result.route,
        started_at=result.started_at,
        finished_at=result.finished_at,
    )


def node_result(row: NodeRunRow) -> NodeResult:
    return NodeResult(
        node=row.node,
        visit=row.visit,
        attempt=row.attempt,
        status=NodeStatus(row.status),
        output=codec.from_json(row.output_json, f"node {row.node} output")
        if row.output_json
        else None,
        outcome=row.outcome,
        error=row.error,
        retryable=row.retryable,
        route=row.route,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def event_row(event: MonitorEvent, data_json: bytes | None = None) -> EventRow:
    """``data_json``: the data as the engine sent it, to store without re-encoding."""
    if data_json is None and event.data:
        data_json = codec.to_json(event.data)
    return EventRow(
        seq=event.sequence,
        type=event.type,
        at=event.at,
        severity=int(event.severity),
        workflow=event.workflow,
        version=event.version,
        execution_id=event.execution_id,
        node=event.node,
        visit=event.visit,
        attempt=event.attempt,
        engine_id=event.engine_id,
        message=event.message,
        data_json=data_json or None,
    )


def event_from_row(row: EventRow) -> MonitorEvent:
    return MonitorEvent(
        sequence=row.seq,
        type=row.type,
        at=row.at,
        severity=Severity(row.severity),
        workflow=row.workflow,
        version=row.version,
        execution_id=row.execution_id,
        node=row.node,
        visit=row.visit,
        attempt=row.attempt,
        engine_id=row.engine_id,
        message=row.message,
        data=codec.from_json(row.data_json, "event data") if row.data_json else None,
    )
