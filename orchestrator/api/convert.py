"""Service-layer records <-> public API protobuf messages (``weir.orchestrator.v1``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from weir.proto.v1 import orchestrator_pb2 as pb

from engine.server import codec
from engine.state.events import ExecutionStatus
from engine.state.result import iso as iso_time

if TYPE_CHECKING:  # annotations only: the CLI imports this module and should stay light
    from engine.definition.diff import DefinitionDiff
    from engine.state.result import ExecutionResult
    from orchestrator.executions.record import ExecutionRecord
    from orchestrator.monitor import MonitorEvent
    from orchestrator.registry import WorkflowVersion
    from orchestrator.store import ExecutionRow, TaskRow
    from orchestrator.triggers import TriggerInfo
    from orchestrator.waits.receipt import SignalReceipt


def workflow_fields(
    wf: WorkflowVersion, used_by: list[tuple[WorkflowVersion, str]] | None = None
) -> dict[str, Any]:
    """A version as both APIs show it (but ``registered_at``, a Timestamp or ISO text):
    ``uses`` as ``name@range``, ``used_by`` as ``name@version``."""
    return {
        "name": wf.name,
        "version": wf.version,
        "description": wf.definition.description or "",
        "source": wf.source,
        "digest": wf.digest,
        "nodes": [node.id for node in wf.definition.nodes],
        "deprecated": wf.deprecated,
        "uses": [f"{name}@{spec}" for name, spec in wf.uses],
        "used_by": [f"{d.name}@{d.version}" for d, _ in used_by or ()],
    }


def workflow_to_pb(
    wf: WorkflowVersion, used_by: list[tuple[WorkflowVersion, str]] | None = None
) -> pb.Workflow:
    m = pb.Workflow(**workflow_fields(wf, used_by))
    codec.set_time(m.registered_at, wf.registered_at)
    return m


def diff_to_pb(name: str, old: str, new: str, d: DefinitionDiff) -> pb.WorkflowDiff:
    return pb.WorkflowDiff(
        name=name,
        from_version=old,
        to_version=new,
        added=d.added,
        removed=d.removed,
        changed=[pb.NodeChange(node=c.node, fields=c.fields) for c in d.changed],
        other=d.other,
        can_continue=d.can_continue,
        reasons=d.reasons,
        notes=d.notes,
    )


def _set_iso(field: Any, value: str | None) -> None:
    if value:
        field.FromDatetime(datetime.fromisoformat(value.replace("Z", "+00:00")))


def execution_to_pb(record: ExecutionRecord, result: ExecutionResult) -> pb.Execution:
    m = pb.Execution(
        id=record.id,
        workflow=record.name,
        version=record.version,
        status=codec.EXECUTION_STATUS_TO_PB[result.status],
        inputs_json=codec.to_json(result.inputs),
        outputs_json=codec.to_json(result.outputs),
        path=result.path,
        engine_id=record.placement.engine_name,
        placements=record.placement.placements,
        idempotency_key=record.idempotency_key or "",
        retry_of=result.retry_of or "",
        retried_by=result.retried_by or "",
    )
    codec.set_time(m.created_at, record.created_at)
    if record.status == ExecutionStatus.WAITING and record.wake_at is not None:
        codec.set_time(m.wake_at, record.wake_at)
    if result.parent is not None:
        m.parent.execution_id = result.parent.execution
        m.parent.node = result.parent.node
    for child in result.children:
        m.children.add(
            id=child.id,
            workflow=child.workflow,
            version=child.version,
            status=codec.EXECUTION_STATUS_TO_PB[child.status],
            node=child.node or "",
        )
    _set_iso(m.started_at, result.started_at)
    _set_iso(m.finished_at, result.finished_at)
    if result.error is not None:
        m.error.node = result.error.node or ""
        m.error.message = result.error.message or ""
    for node_id, node in result.nodes.items():
        m.node_order.append(node_id)
        run = m.nodes[node_id]
        run.status = codec.NODE_STATUS_TO_PB[node.status]
        if node.outcome is not None:
            run.outcome = node.outcome
        run.attempts = node.attempts or 0
        run.visits = node.visits or 0
        run.output_json = codec.to_json(node.output)
        if node.error is not None:
            run.error = node.error
        _set_iso(run.started_at, node.started_at)
        _set_iso(run.finished_at, node.finished_at)
        if node.reused_from is not None:
            run.reused_from = node.reused_from
        if node.items is not None:
            run.mapped = True
            for item in node.items:
                pi = run.items.add(
                    index=item.item_index,
                    status=codec.NODE_STATUS_TO_PB[item.status],
                    attempts=item.attempts,
                    output_json=codec.to_json(item.output),
                )
                if item.error is not None:
                    pi.error = item.error
                _set_iso(pi.started_at, item.started_at)
                _set_iso(pi.finished_at, item.finished_at)
    return m


def summary_to_pb(row: ExecutionRow) -> pb.ExecutionSummary:
    m = pb.ExecutionSummary(
        id=row.id,
        workflow=row.workflow,
        version=row.version,
        status=codec.EXECUTION_STATUS_TO_PB[ExecutionStatus(row.status)],
        engine_id=row.engine_name or row.engine,
        parent_execution_id=row.parent_id or "",
        retry_of=row.retry_of or "",
        retried_by=row.retried_by or "",
    )
    codec.set_time(m.created_at, row.created_at)
    if row.finished_at is not None:
        codec.set_time(m.finished_at, row.finished_at)
    return m


def event_to_pb(event: MonitorEvent) -> pb.Event:
    m = pb.Event(
        sequence=event.sequence,
        type=event.type,
        severity=int(event.severity),  # type: ignore[arg-type]
        workflow=event.workflow,
        version=event.version,
        execution_id=event.execution_id,
        node=event.node,
        visit=event.visit,
        attempt=event.attempt,
        engine_id=event.engine_id,
        message=event.message,
        data_json=codec.to_json(event.data) if event.data else b"",
    )
    codec.set_time(m.at, event.at)
    return m


def execution_from_pb(m: pb.Execution) -> dict[str, Any]:
    """The result object of ARCHITECTURE.md from its message (what ``--output json`` prints)."""

    def iso(ts: Any, present: bool) -> str | None:
        if not present:
            return None
        return iso_time(codec.seconds(ts))

    nodes = {}
    for node_id in m.node_order or sorted(m.nodes):
        run = m.nodes[node_id]
        nodes[node_id] = {
            "status": str(codec.NODE_STATUS_FROM_PB[run.status]),
            "outcome": run.outcome if run.HasField("outcome") else None,
            "attempts": run.attempts,
            "visits": run.visits,
            "output": codec.from_json(run.output_json),
            "error": run.error if run.HasField("error") else None,
            "started_at": iso(run.started_at, run.HasField("started_at")),
            "finished_at": iso(run.finished_at, run.HasField("finished_at")),
        }
        if run.reused_from:
            nodes[node_id]["reused_from"] = run.reused_from
        if run.mapped:
            nodes[node_id]["items"] = [
                {
                    "index": item.index,
                    "status": str(codec.NODE_STATUS_FROM_PB[item.status]),
                    "attempts": item.attempts,
                    "output": codec.from_json(item.output_json),
                    "error": item.error if item.HasField("error") else None,
                    "started_at": iso(item.started_at, item.HasField("started_at")),
                    "finished_at": iso(item.finished_at, item.HasField("finished_at")),
                }
                for item in run.items
            ]
    out: dict[str, Any] = {
        "id": m.id,
        "workflow": m.workflow,
        "version": m.version,
        "status": str(codec.EXECUTION_STATUS_FROM_PB[m.status]),
        "inputs": codec.from_json(m.inputs_json) or {},
        "outputs": codec.from_json(m.outputs_json) or {},
        "error": (
            {"node": m.error.node or None, "message": m.error.message}
            if m.HasField("error")
            else None
        ),
        "started_at": iso(m.started_at, m.HasField("started_at")),
        "finished_at": iso(m.finished_at, m.HasField("finished_at")),
        "nodes": nodes,
        "path": list(m.path),
        "engine": m.engine_id or None,
        "placements": m.placements,
    }
    if m.HasField("parent"):
        out["parent"] = {"execution": m.parent.execution_id, "node": m.parent.node}
    if m.children:
        out["children"] = [
            {
                "id": c.id,
                "workflow": c.workflow,
                "version": c.version,
                "status": str(codec.EXECUTION_STATUS_FROM_PB[c.status]),
                "node": c.node,
            }
            for c in m.children
        ]
    if m.retry_of:
        out["retry_of"] = m.retry_of
    if m.retried_by:
        out["retried_by"] = m.retried_by
    if m.HasField("wake_at"):
        out["wake_at"] = iso(m.wake_at, True)
    return out


def task_due_at(row: TaskRow) -> float | None:
    """When the task times out (for a timer: when it fires), as both APIs show it: the earliest
    of its ``deadline_at`` and, for a task that is not a worker's, ``created_at + timeout_s``;
    None when neither is set. A worker's own ``timeout`` counts from when a worker took it and
    is not shown here."""
    due = [row.deadline_at] if row.deadline_at is not None else []
    if row.kind != "worker" and row.timeout_s > 0:
        due.append(row.created_at + row.timeout_s)
    return min(due, default=None)


def signal_to_pb(receipt: SignalReceipt) -> pb.SignalExecutionResponse:
    m = pb.SignalExecutionResponse(
        id=receipt.id,
        execution_id=receipt.execution_id,
        name=receipt.name,
        node=receipt.node or "",
        visit=receipt.visit,
    )
    codec.set_time(m.sent_at, receipt.sent_at)
    return m


def trigger_to_pb(info: TriggerInfo) -> pb.Trigger:
    m = pb.Trigger(
        workflow=info.workflow,
        name=info.name,
        source=info.source,
        spec_json=codec.to_json(trigger_spec(info)),
        last_execution_id=info.last_execution_id or "",
    )
    if info.last_fire_at is not None:
        codec.set_time(m.last_fire_at, info.last_fire_at)
    if info.next_fire_at is not None:
        codec.set_time(m.next_fire_at, info.next_fire_at)
    return m


def trigger_spec(info: TriggerInfo) -> dict[str, Any]:
    """The trigger as a definition would write it."""
    return {
        "cron": info.cron,
        "timezone": info.timezone,
        "inputs": dict(info.inputs),
        "overlap": info.overlap,
        "catch_up": info.catch_up,
        "catch_up_window": info.catch_up_window,
        "enabled": info.enabled,
    }
