"""``WorkersApi``: the gRPC service ``weir.worker.v1.Workers`` (proto/weir/proto/v1/worker.proto).

``Work`` is one worker's stream. The first message must be its hello (else INVALID_ARGUMENT
naming the field); the answer is a welcome. A reader applies what the worker sends — results,
heartbeats, released tokens, draining — while this coroutine writes the worker's outbox (tasks,
cancellations, acks). Results are acknowledged once durable. It is a coroutine writing with
``context.write``, not a generator: when the worker goes away the handler is cancelled and its
``finally`` frees the worker's tasks at once.

The unary calls complete, fail and heartbeat by token, as the stream does, for people and other
services; errors map through ``orchestrator.api.errors``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from weir.proto.v1 import engine_pb2 as epb
from weir.proto.v1 import worker_pb2 as wpb
from weir.proto.v1 import worker_pb2_grpc as wpb_grpc

from engine.errors import InputError, Issue
from orchestrator.api.convert import task_due_at
from orchestrator.api.errors import abort
from orchestrator.store import TASK_STATUSES, TaskRow
from orchestrator.store.base import TASK_KINDS
from orchestrator.tasks.board import Verdict
from orchestrator.tasks.service import TaskService
from orchestrator.tasks.workers import WorkerSession, WorkerSnapshot

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

HEARTBEAT_INTERVAL = 10.0
"""How often a worker with nothing to say shows it is alive (told in the welcome)."""

STATUS_TO_PB = {name: wpb.TaskStatus.Value(f"TASK_STATUS_{name.upper()}") for name in TASK_STATUSES}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}
KIND_TO_PB = {name: epb.TaskKind.Value(f"TASK_KIND_{name.upper()}") for name in TASK_KINDS}
VERDICT_TO_PB = {
    Verdict.ACCEPTED: wpb.VERDICT_ACCEPTED,
    Verdict.DUPLICATE: wpb.VERDICT_DUPLICATE,
    Verdict.REFUSED: wpb.VERDICT_REFUSED,
    Verdict.NOT_FOUND: wpb.VERDICT_NOT_FOUND,
}


def task_info(row: TaskRow) -> wpb.TaskInfo:
    return wpb.TaskInfo(
        token=row.token,
        execution_id=row.execution_id,
        workflow=row.workflow,
        node=row.node,
        visit=row.visit,
        attempt=row.attempt,
        queue=row.queue,
        args_json=row.args_json,
        status=STATUS_TO_PB[row.status],
        worker=row.worker,
        created_at=row.created_at,
        started_at=row.started_at or 0.0,
        finished_at=row.finished_at or 0.0,
        output_json=row.output_json or b"",
        error=row.error or "",
        details_json=row.details_json or b"",
        heartbeat_at=row.heartbeat_at or 0.0,
        idempotency_key=row.idempotency_key,
        deliveries=row.deliveries,
        item=row.item,
        kind=KIND_TO_PB[row.kind],
        outcome=row.outcome or "",
        due_at=task_due_at(row) or 0.0,
    )


def worker_info(w: WorkerSnapshot) -> wpb.WorkerInfo:
    return wpb.WorkerInfo(
        worker_id=w.worker_id,
        queues=w.queues,
        slots=w.slots,
        running=w.running,
        peer=w.peer,
        sdk_version=w.sdk_version,
        connected_at=w.connected_at,
        seen_at=w.seen_at,
        draining=w.draining,
    )


class WorkersApi(wpb_grpc.WorkersServicer):
    """See the module docstring."""

    def __init__(
        self,
        tasks: TaskService,
        *,
        orchestrator_id: str,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
    ) -> None:
        self._tasks = tasks
        self._orchestrator_id = orchestrator_id
        self._heartbeat_interval = heartbeat_interval

    # --- the worker's stream -----------------------------------------------------------------

    async def Work(  # type: ignore[override]  # the generated stubs know only generators
        self, request_iterator: AsyncIterator[wpb.FromWorker], context: Context
    ) -> None:
        try:
            first = await anext(aiter(request_iterator), None)
            if first is None or not first.HasField("hello"):
                raise _input("hello", "the first message of a stream must be the worker's hello")
            hello = first.hello
            session = self._tasks.join(
                hello.worker_id,
                list(hello.queues),
                hello.slots,
                running=list(hello.running),
                peer=context.peer(),
                sdk_version=hello.sdk_version,
            )
        except Exception as exc:
            await abort(context, exc)
        log.info(
            "worker %s joined from %s: queues %s, %d slots",
            session.worker_id,
            session.peer,
            ",".join(session.queues),
            session.slots,
        )
        session.outbox.welcome.CopyFrom(
            wpb.WorkerWelcome(
                orchestrator_id=self._orchestrator_id,
                heartbeat_interval_s=self._heartbeat_interval,
            )
        )
        session.wake.set()
        reader = asyncio.create_task(self._read(session, request_iterator), name="worker-reader")
        why = "stream ended"
        try:
            while not session.closed:
                box = session.take()
                if box is None:
                    session.wake.clear()
                    await session.wake.wait()
                    continue
                await context.write(box)
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                why = f"stream failed: {reader.exception()}"
        finally:
            # synchronous and before the only await: a second cancellation cannot skip it
            reader.cancel()
            self._tasks.leave(session, why)
            log.info("worker %s left: %s", session.worker_id, why)
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self, session: WorkerSession, requests: AsyncIterator[wpb.FromWorker]) -> None:
        try:
            async for message in requests:
                session.seen_at = time.time()
                for result in message.results:
                    await self._result(session, result)
                for beat in message.heartbeats:
                    answered = await self._tasks.beat(beat.token, beat.details_json or None)
                    if answered.verdict in (Verdict.REFUSED, Verdict.NOT_FOUND):
                        session.cancel(beat.token, answered.message)  # stop working on it
                if message.released:
                    self._tasks.release(session, list(message.released))
                if message.draining and not session.draining:
                    log.info("worker %s is draining", session.worker_id)
                    self._tasks.drain(session)
        finally:
            session.close()

    async def _result(self, session: WorkerSession, result: wpb.TaskResult) -> None:
        token = result.token
        if result.HasField("failure"):
            f = result.failure
            answered = await self._tasks.answer(
                token, message=f.message or "failed", kind=f.type, retryable=f.retryable
            )
        else:
            answered = await self._tasks.answer(token, output_json=result.output_json or b"null")
        verdict = VERDICT_TO_PB[answered.verdict]
        if answered.verdict in (Verdict.ACCEPTED, Verdict.DUPLICATE):
            self._tasks.when_durable(lambda: session.ack(token, verdict))
        else:
            log.warning("worker %s: %s", session.worker_id, answered.message)
            session.ack(token, verdict, answered.message)

    # --- by token, for people and services ---------------------------------------------------

    async def ListTasks(
        self, request: wpb.ListTasksRequest, context: Context
    ) -> wpb.ListTasksResponse:
        try:
            rows = await self._tasks.list_tasks(
                queue=request.queue,
                status=STATUS_FROM_PB.get(request.status, ""),
                execution_id=request.execution_id,
                limit=request.limit or 100,
            )
            return wpb.ListTasksResponse(tasks=[task_info(r) for r in rows])
        except Exception as exc:
            await abort(context, exc)

    async def GetTask(self, request: wpb.GetTaskRequest, context: Context) -> wpb.TaskInfo:
        try:
            return task_info(await self._tasks.get(request.token))
        except Exception as exc:
            await abort(context, exc)

    async def CompleteTask(
        self, request: wpb.CompleteTaskRequest, context: Context
    ) -> wpb.TaskInfo:
        try:
            row = await self._tasks.complete(
                request.token, request.output_json or b"null", outcome=request.outcome
            )
            await self._tasks.durable()
            return task_info(row)
        except Exception as exc:
            await abort(context, exc)

    async def FailTask(self, request: wpb.FailTaskRequest, context: Context) -> wpb.TaskInfo:
        try:
            row = await self._tasks.fail(
                request.token, request.message, kind=request.type, retryable=request.retryable
            )
            await self._tasks.durable()
            return task_info(row)
        except Exception as exc:
            await abort(context, exc)

    async def HeartbeatTask(
        self, request: wpb.HeartbeatTaskRequest, context: Context
    ) -> wpb.TaskInfo:
        try:
            return task_info(
                await self._tasks.heartbeat(request.token, request.details_json or None)
            )
        except Exception as exc:
            await abort(context, exc)

    async def ListWorkers(
        self, request: wpb.ListWorkersRequest, context: Context
    ) -> wpb.ListWorkersResponse:
        return wpb.ListWorkersResponse(workers=[worker_info(w) for w in self._tasks.workers()])


def _input(field: str, message: str) -> InputError:
    return InputError([Issue(field, message)])
