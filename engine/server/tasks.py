"""``TaskRequests``: node attempts on an engine that wait on the orchestrator's durable tasks.

It is the node runner's ``TaskScheduler``. An attempt puts a ``schedule_task`` request on its
execution's run (``session.ask``: written on the run's stream, kept while the run is detached,
asked again when it is attached) and waits for the ``task_finished`` with the same (execution,
lease, node, visit, item, attempt), which ``answer`` hands over. The orchestrator finds the same
task when it is asked again (after a reconnect, on another engine after a failover, or after the
execution was parked and placed again), so a node attempt has one task whatever happens to its
engine. A completed task's output is the node's output (``Routed`` when the answer gave an
explicit outcome); a failed or timed-out one fails the attempt, and its ``retryable`` lets the
node's ``retry`` decide.

The kinds of task: work for a worker (``task`` nodes); an asynchronous HTTP request
(``http.callback``), for which the orchestrator first answers ``task_scheduled`` with the token
and callback URL the request carries — unless an earlier attempt's request was already accepted,
the engine sends it and reports how it went (``task_delivery``); a wait for a signal (``wait``);
a durable timer (``sleep``).

While an attempt waits for a task's end it counts in ``Run.waiting``: a run whose every running
attempt only waits so is *parked* after ``PARK_AFTER`` (``service.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from weir.proto.v1 import engine_pb2 as pb

from engine.definition.model import QueueTask, WaitTask
from engine.errors import TaskError
from engine.executors.node import ExecutionContext, NodeAttempt
from engine.executors.ports import CallbackTicket, Routed
from engine.server import codec
from engine.server.metrics import EngineMetrics
from engine.server.session import ChildKey, Run, TaskWait, ask, hand_over


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
        run, request = self._request(ctx, attempt, pb.TASK_KIND_WORKER, args)
        request.queue = task.queue
        request.timeout_s = task.timeout or 0.0
        request.heartbeat_s = task.heartbeat or 0.0
        request.schedule_to_start_s = task.schedule_to_start or 0.0
        self._metrics.tasks.inc()
        return await self._wait(run, attempt, request, f"task on queue {task.queue}")

    async def run_callback(
        self,
        within: float | None,
        send: Callable[[CallbackTicket], Awaitable[None]],
        ctx: ExecutionContext,
        attempt: NodeAttempt,
    ) -> Any:
        run, request = self._request(ctx, attempt, pb.TASK_KIND_CALLBACK, None)
        request.timeout_s = within or 0.0
        return await self._wait(run, attempt, request, "callback", send=send)

    async def wait_signal(self, task: WaitTask, ctx: ExecutionContext, attempt: NodeAttempt) -> Any:
        run, request = self._request(ctx, attempt, pb.TASK_KIND_SIGNAL, None)
        request.queue = task.signal
        request.timeout_s = task.timeout or 0.0
        return await self._wait(run, attempt, request, f"wait for signal {task.signal}")

    async def sleep(
        self, seconds: float, output: Any, ctx: ExecutionContext, attempt: NodeAttempt
    ) -> Any:
        run, request = self._request(ctx, attempt, pb.TASK_KIND_TIMER, output)
        request.timeout_s = seconds
        return await self._wait(run, attempt, request, "sleep")

    # --- the orchestrator's answers -----------------------------------------------------------

    def scheduled(self, m: pb.TaskScheduled) -> None:
        """A ``task_scheduled``: hand the callback task's token to the attempt sending it."""
        wait = self._waiting_for(m)
        if wait is not None and wait.scheduled is not None and not wait.scheduled.done():
            wait.scheduled.set_result(m)

    def answer(self, m: pb.TaskFinished) -> None:
        """A ``task_finished`` from the orchestrator: wake the attempt waiting for it."""
        wait = self._waiting_for(m)
        hand_over(wait, m, f"task_finished for {m.execution_id} lease {m.lease} {m.node}")

    def _waiting_for(self, m: pb.TaskScheduled | pb.TaskFinished) -> TaskWait | None:
        """The attempt of the running run (same lease) that an answer is for, if it waits."""
        run = self._running(m.execution_id)
        if run is None or run.lease != m.lease:
            return None
        item = m.item if m.HasField("item") else None
        return run.task_waits.get((m.node, m.visit, item, m.attempt))

    # --- helpers ------------------------------------------------------------------------------

    def _request(
        self, ctx: ExecutionContext, attempt: NodeAttempt, kind: Any, args: Any
    ) -> tuple[Run, pb.ScheduleTask]:
        """The run of ``ctx`` (raises when it no longer runs here) and the request to put on
        it for ``attempt``."""
        run = self._running(ctx.id)
        if run is None or run.driver.context is not ctx:
            raise TaskError(f"execution {ctx.id} no longer runs here", retryable=False)
        return run, pb.ScheduleTask(
            execution_id=run.id,
            lease=run.lease,
            node=attempt.node,
            visit=attempt.visit,
            attempt=attempt.attempt,
            args_json=codec.to_json(args) if args is not None else b"",
            item=attempt.item,
            kind=kind,
            deadline=attempt.deadline or 0.0,
        )

    async def _wait(
        self,
        run: Run,
        attempt: NodeAttempt,
        request: pb.ScheduleTask,
        what: str,
        *,
        send: Callable[[CallbackTicket], Awaitable[None]] | None = None,
    ) -> Any:
        """Put ``request`` on the execution's run and wait for the task's end (a callback task
        sends its request with ``send`` first); the answer as the node's output."""
        key: ChildKey = (attempt.node, attempt.visit, attempt.item, attempt.attempt)
        wait = TaskWait(request, asyncio.get_running_loop().create_future())
        if send is None:
            answer = await self._waiting(run, ask(run, run.task_waits, key, wait))
        else:
            wait.scheduled = asyncio.get_running_loop().create_future()
            answer = await self._call_back(run, key, wait, send)
        if not answer.completed:
            raise TaskError(answer.error or f"{what} failed", retryable=answer.retryable)
        try:
            output = codec.from_json(answer.output_json, "task output_json")
        except codec.CodecError as exc:
            raise TaskError(f"{what}: {exc}", retryable=False) from None
        return Routed(output, answer.outcome) if answer.outcome else output

    @staticmethod
    async def _waiting(run: Run, answer: Awaitable[pb.TaskFinished]) -> pb.TaskFinished:
        """Await ``answer`` counted as a wait that lets the run park."""
        run.waiting += 1
        run.activity += 1
        try:
            return await answer
        finally:
            run.waiting -= 1
            run.activity += 1

    async def _call_back(
        self,
        run: Run,
        key: ChildKey,
        wait: TaskWait,
        send: Callable[[CallbackTicket], Awaitable[None]],
    ) -> pb.TaskFinished:
        """Ask for the callback task, send the request with its ticket unless an earlier one
        was accepted, then wait for the callback; a callback that comes first wins."""
        assert wait.scheduled is not None
        asking = asyncio.ensure_future(ask(run, run.task_waits, key, wait))
        try:
            first: set[asyncio.Future[Any]] = {asking, wait.scheduled}
            done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if asking not in done:
                ticket = wait.scheduled.result()
                if not ticket.delivered:
                    await self._send(run, ticket, asking, send)
            return await self._waiting(run, asking)
        finally:
            if not asking.done():
                asking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asking

    @staticmethod
    async def _send(
        run: Run,
        ticket: pb.TaskScheduled,
        asking: asyncio.Future[pb.TaskFinished],
        send: Callable[[CallbackTicket], Awaitable[None]],
    ) -> None:
        """Send the request, unless the callback arrives first; report how it went."""
        sending = asyncio.ensure_future(
            send(CallbackTicket(ticket.token, ticket.callback_url, ticket.base_url))
        )
        try:
            first: set[asyncio.Future[Any]] = {sending, asking}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not sending.done():
                sending.cancel()  # answered already: the service called back before accepting
                with contextlib.suppress(asyncio.CancelledError, TaskError):
                    await sending
        if sending.cancelled():
            return
        delivery = pb.TaskDelivery(execution_id=run.id, lease=run.lease, token=ticket.token)
        error = sending.exception()
        if error is None:
            delivery.ok = True
        elif isinstance(error, TaskError):
            delivery.error = error.message
            delivery.retryable = error.retryable
        else:
            raise error
        run.deliver(delivery)
