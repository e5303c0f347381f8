"""The store's rows from and to the orchestrator's objects, in one place.

An ``ExecutionRecord`` is stored as an ``ExecutionRow`` plus one ``NodeRunRow`` per node run (its
checkpoint); a ``MonitorEvent`` as an ``EventRow``. The journal writes with these functions and
recovery, the service layer and the event readers read back with them, so both directions agree.
"""

from __future__ import annotations

from engine.server import codec
from engine.state.events import ExecutionStatus, NodeResult, NodeStatus
from engine.state.result import ExecutionResult, ResultFormatError
from orchestrator.executions.record import ExecutionRecord, ParentLink, PlacementState, Where
from orchestrator.monitor import MonitorEvent, Severity
from orchestrator.registry import WorkflowVersion
from orchestrator.store import EventRow, ExecutionRow, NodeRunRow


def to_row(record: ExecutionRecord) -> ExecutionRow:
    parent = record.parent
    placement = record.placement
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
        engine=placement.engine,
        engine_name=placement.engine_name,
        lease=placement.lease,
        placements=placement.placements,
        started_at=placement.started_at,
        finished_at=record.finished_at,
        deadline=placement.deadline,
        cancel_reason=record.cancel_reason,
        result_json=codec.to_json(record.result.to_json()) if record.result is not None else None,
        retry_of=record.retry_of,
        retried_by=record.retried_by,
        wake_at=record.wake_at,
    )


def from_row(
    row: ExecutionRow, wf: WorkflowVersion | None, journal: list[NodeRunRow] | None = None
) -> ExecutionRecord:
    """Rebuild a record (placed nowhere: recovery decides where it goes).

    Raises ``CodecError`` when a stored JSON field is unreadable.
    """
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
        placement=PlacementState(
            where=Where.NOWHERE,
            engine=row.engine,
            engine_name=row.engine_name or row.engine,
            lease=row.lease,
            placements=row.placements,
            started_at=row.started_at,
            deadline=row.deadline,
        ),
        status=ExecutionStatus(row.status),
        cancel_reason=row.cancel_reason,
        finished_at=row.finished_at,
        retry_of=row.retry_of,
        retried_by=row.retried_by,
        wake_at=row.wake_at,
    )
    if row.result_json is not None:
        data = codec.from_json(row.result_json, f"execution {row.id} result")
        try:
            record.result = ExecutionResult.from_json(data)
        except ResultFormatError as exc:
            raise codec.CodecError(f"execution {row.id} result: {exc}") from None
        record.done.set()
    for run in journal or ():
        record.checkpoint.add(node_result(run))
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
        item=result.item,
        reused_from=result.reused_from,
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
        item=row.item,
        reused_from=row.reused_from,
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
