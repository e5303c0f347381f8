"""``ChildRequests``: ``workflow`` nodes on an engine, asking the orchestrator for a child.

It is the node runner's ``SubWorkflowLauncher``. A ``workflow`` node's attempt puts a
``start_child`` request on its execution's run (``session.ask``: written on the run's stream,
kept while the run is detached, asked again when it is attached) and waits for the
``child_finished`` with the same (execution, lease, node, visit, item, attempt), which
``answer`` hands over. The child's outputs are the node's output; a child that did not complete
fails the attempt, without retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from weir.proto.v1 import engine_pb2 as pb

from engine.definition.model import SubWorkflowTask
from engine.errors import TaskError
from engine.executors.node import ExecutionContext, NodeAttempt
from engine.server import codec
from engine.server.metrics import EngineMetrics
from engine.server.session import ChildWait, Run, ask, hand_over


class ChildRequests:
    """Sub-workflow requests of the runs placed here; see the module docstring."""

    def __init__(self, running: Callable[[str], Run | None], metrics: EngineMetrics) -> None:
        self._running = running
        """The running run of an execution id (the service's table)."""
        self._metrics = metrics

    async def run_child(
        self,
        task: SubWorkflowTask,
        inputs: dict[str, Any],
        parent: ExecutionContext,
        attempt: NodeAttempt,
    ) -> Any:
        """Ask the orchestrator for a child execution and wait for its end."""
        run = self._running(parent.id)
        if run is None or run.driver.context is not parent:
            raise TaskError(f"execution {parent.id} no longer runs here", retryable=False)
        key = (attempt.node, attempt.visit, attempt.item, attempt.attempt)
        wait = ChildWait(
            pb.StartChild(
                execution_id=run.id,
                lease=run.lease,
                node=attempt.node,
                visit=attempt.visit,
                attempt=attempt.attempt,
                workflow=task.name,
                version_range=task.version,
                inputs_json=codec.to_json(inputs),
                item=attempt.item,
            ),
            asyncio.get_running_loop().create_future(),
        )
        self._metrics.children.inc()
        answer = await ask(run, run.children, key, wait)
        if answer.status == pb.EXECUTION_STATUS_COMPLETED:
            try:
                return codec.from_json(answer.outputs_json, "child outputs_json")
            except codec.CodecError as exc:
                raise TaskError(f"sub-workflow {task.name}: {exc}", retryable=False) from None
        status = codec.EXECUTION_STATUS_FROM_PB.get(answer.status, "ended")
        raise TaskError(answer.error or f"sub-workflow {task.name} {status}", retryable=False)

    def answer(self, m: pb.ChildFinished) -> None:
        """A ``child_finished`` from the orchestrator: wake the attempt waiting for it."""
        run = self._running(m.execution_id)
        key = (m.node, m.visit, m.item if m.HasField("item") else None, m.attempt)
        wait = run.children.get(key) if run and run.lease == m.lease else None
        hand_over(wait, m, f"child_finished for {m.execution_id} lease {m.lease} {m.node}")
