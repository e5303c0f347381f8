"""``TaskRequests``: ``task`` nodes on an engine, asking the orchestrator for a durable task.

It is the node runner's ``TaskScheduler``. A ``task`` node's attempt puts a ``schedule_task``
request on its execution's run (``session.ask``: written on the run's stream, kept while the
run is detached, asked again when it is attached) and waits for the ``task_finished`` with the
same (execution, lease, node, visit, item, attempt), which ``answer`` hands over. The orchestrator
finds the same task when it is asked again (after a reconnect or on another engine after a
failover), so a node attempt has one task whatever happens to its engine. A completed task's
output is the node's output; a failed or timed-out one fails the attempt, and its ``retryable``
lets the node's ``retry`` decide.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from weir.proto.v1 import engine_pb2 as pb

from engine.definition.model import QueueTask
from engine.errors import TaskError
from engine.executors.node import ExecutionContext, NodeAttempt
from engine.server import codec
from engine.server.metrics import EngineMetrics
from engine.server.session import Run, TaskWait, ask, hand_over


class TaskRequests:
    """Durable-task requests of the runs placed here; see the module docstring."""

    def __init__(self, running: Callable[[str], Run | None], metrics: EngineMetrics) -> None:
        self._running = running
        """The running run of an execution id (the service's table)."""
        self._metrics = metrics

    async def run_task(
        self,
        task: QueueTask,
        args: dict[str, Any],
        ctx: ExecutionContext,
        attempt: NodeAttempt,
    ) -> Any:
        """Ask the orchestrator for the task and wait for its end."""
        run = self._running(ctx.id)
        if run is None or run.driver.context is not ctx:
            raise TaskError(f"execution {ctx.id} no longer runs here", retryable=False)
        key = (attempt.node, attempt.visit, attempt.item, attempt.attempt)
        wait = TaskWait(
            pb.ScheduleTask(
                execution_id=run.id,
                lease=run.lease,
                node=attempt.node,
                visit=attempt.visit,
                attempt=attempt.attempt,
                queue=task.queue,
                args_json=codec.to_json(args),
                timeout_s=task.timeout or 0.0,
                heartbeat_s=task.heartbeat or 0.0,
                schedule_to_start_s=task.schedule_to_start or 0.0,
                item=attempt.item,
            ),
            asyncio.get_running_loop().create_future(),
        )
        self._metrics.tasks.inc()
        answer = await ask(run, run.task_waits, key, wait)
        if not answer.completed:
            raise TaskError(
                answer.error or f"task on queue {task.queue} failed", retryable=answer.retryable
            )
        try:
            return codec.from_json(answer.output_json, "task output_json")
        except codec.CodecError as exc:
            raise TaskError(f"task on queue {task.queue}: {exc}", retryable=False) from None

    def answer(self, m: pb.TaskFinished) -> None:
        """A ``task_finished`` from the orchestrator: wake the attempt waiting for it."""
        run = self._running(m.execution_id)
        key = (m.node, m.visit, m.item if m.HasField("item") else None, m.attempt)
        wait = run.task_waits.get(key) if run and run.lease == m.lease else None
        hand_over(wait, m, f"task_finished for {m.execution_id} lease {m.lease} {m.node}")
