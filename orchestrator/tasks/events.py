"""``TaskEvents``: the monitoring events of durable tasks and workers (``task.*``,
``worker.joined``, ``worker.left``), with the execution's workflow and version filled in."""

from __future__ import annotations

from orchestrator.executions.table import ExecutionTable
from orchestrator.monitor import Monitor
from orchestrator.store import TaskRow
from orchestrator.tasks.workers import WorkerSession


class TaskEvents:
    """Publishes task and worker events on the monitor."""

    def __init__(self, monitor: Monitor, table: ExecutionTable) -> None:
        self._monitor = monitor
        self._table = table

    def worker_joined(self, session: WorkerSession) -> None:
        self._monitor.publish(
            "worker.joined",
            message=f"worker {session.worker_id} joined: queues {', '.join(session.queues)}, "
            f"{session.slots} slots",
            data={"worker": session.worker_id, "queues": list(session.queues)},
        )

    def worker_left(self, session: WorkerSession, why: str) -> None:
        self._monitor.publish(
            "worker.left",
            message=f"worker {session.worker_id} left: {why}",
            data={"worker": session.worker_id, "queues": list(session.queues)},
        )

    def task(self, row: TaskRow, type_: str, message: str, *, worker: bool = False) -> None:
        """A ``task.*`` event: data has the queue, the kind (other than ``worker``), the item
        of a node with ``map``, and the worker."""
        record = self._table.get(row.execution_id)
        data: dict[str, object] = {"queue": row.queue}
        if row.kind != "worker":
            data["kind"] = row.kind
        if row.item is not None:
            data["item"] = row.item
        if worker or row.worker:
            data["worker"] = row.worker
        self._monitor.publish(
            type_,
            workflow=row.workflow,
            version=record.version if record is not None else "",
            execution_id=row.execution_id,
            node=row.node,
            visit=row.visit,
            attempt=row.attempt,
            message=message,
            data=data,
        )
