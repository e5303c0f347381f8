"""``/api/v1/tasks`` and ``/api/v1/workers``: durable tasks of ``task`` nodes, by token.

People and other services see and answer the same tasks workers do (seed 001's TaskDone):
``complete`` with the node's output and perhaps an ``outcome`` (else an ``outcome`` key in the
output routes ``next``), ``fail`` with a message, ``heartbeat`` to show progress. The other kinds
of task -- an asynchronous HTTP action waiting for its callback, a signal wait, a timer -- are
listed too, with their ``kind`` and ``due_at``. A token unknown here is 404; an answer for a
task that already ended otherwise (a superseded attempt, a timeout, a cancellation, another
answer) is 409 ``task_ended``; the same answer twice is answered the same way twice (200).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from engine.server import codec
from engine.state.result import iso
from orchestrator.api.convert import task_due_at
from orchestrator.api.rest.common import ERROR_RESPONSES, services_of
from orchestrator.services import Services
from orchestrator.store import TaskRow
from orchestrator.tasks.workers import WorkerSnapshot

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)

Api = Annotated[Services, Depends(services_of)]
Token = Annotated[str, Path(min_length=1, max_length=200, description="The task's token.")]
TaskStatusName = Literal["pending", "running", "completed", "failed", "timed_out", "cancelled"]
TaskKindName = Literal["worker", "callback", "signal", "timer"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskOut(BaseModel):
    token: str = Field(description="Opaque; completes, fails or heartbeats this attempt's task.")
    execution: str
    workflow: str
    node: str
    visit: int
    item: int | None = Field(
        default=None, description="The item's index for a task of an item of a node with `map`."
    )
    attempt: int
    kind: TaskKindName = Field(
        description="`worker`: work for a worker of `queue`; `callback`: an asynchronous HTTP "
        "request answered by a callback; `signal`: a wait for the signal named `queue`; "
        "`timer`: a durable timer."
    )
    queue: str = Field(
        description="The worker queue; for a `signal` task, the signal's name; empty for the "
        "other kinds."
    )
    args: Any
    status: TaskStatusName
    worker: str | None
    deliveries: int = Field(description="Times it was handed to a worker.")
    idempotency_key: str = Field(
        description="The same for every attempt of one node visit (of one item, with `map`)."
    )
    output: Any = None
    outcome: str | None = Field(
        default=None, description="The outcome its answer gave explicitly (callback, signal)."
    )
    error: str | None = None
    details: Any = None
    due_at: str | None = Field(
        default=None,
        description="When it times out (a timer: when it fires): its node's `timeout`, or a "
        "callback's, signal's or timer's own; null: never.",
    )
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    heartbeat_at: str | None

    @classmethod
    def of(cls, row: TaskRow) -> TaskOut:
        return cls(
            token=row.token,
            execution=row.execution_id,
            workflow=row.workflow,
            node=row.node,
            visit=row.visit,
            item=row.item,
            attempt=row.attempt,
            kind=row.kind,  # type: ignore[arg-type]  # one of TASK_KINDS
            queue=row.queue,
            args=codec.from_json(row.args_json, "args"),
            status=row.status,  # type: ignore[arg-type]  # one of TASK_STATUSES
            worker=row.worker or None,
            deliveries=row.deliveries,
            idempotency_key=row.idempotency_key,
            output=codec.from_json(row.output_json or b"", "output"),
            outcome=row.outcome or None,
            error=row.error,
            details=codec.from_json(row.details_json or b"", "details"),
            due_at=iso(task_due_at(row)),
            created_at=iso(row.created_at),
            started_at=iso(row.started_at),
            finished_at=iso(row.finished_at),
            heartbeat_at=iso(row.heartbeat_at),
        )


class TaskList(BaseModel):
    tasks: list[TaskOut]


class CompleteIn(_In):
    output: Any = Field(
        default=None, description='The node\'s output; {"outcome": "..."} in it routes next.'
    )
    outcome: str = Field(
        default="",
        max_length=200,
        description="Routes the node's `next`, over an `outcome` field of the output; empty: "
        "the output's, or SUCCESS.",
    )


class FailIn(_In):
    message: str = Field(min_length=1, description="Why: the node attempt's error.")
    retryable: bool = Field(
        default=True, description="False fails the node at once; true lets its retry decide."
    )
    type: str = Field(default="", description="The error's kind, for people.")


class HeartbeatIn(_In):
    details: Any = Field(default=None, description="Progress, shown with the task.")


class WorkerOut(BaseModel):
    worker_id: str
    queues: list[str]
    slots: int
    running: int
    peer: str
    sdk_version: str
    connected_at: str | None
    seen_at: str | None
    draining: bool

    @classmethod
    def of(cls, w: WorkerSnapshot) -> WorkerOut:
        return cls(
            worker_id=w.worker_id,
            queues=list(w.queues),
            slots=w.slots,
            running=w.running,
            peer=w.peer,
            sdk_version=w.sdk_version,
            connected_at=iso(w.connected_at),
            seen_at=iso(w.seen_at),
            draining=w.draining,
        )


class WorkerList(BaseModel):
    workers: list[WorkerOut]


@router.get("/api/v1/tasks", response_model=TaskList, summary="Tasks, newest first")
async def list_tasks(
    api: Api,
    queue: Annotated[str, Query(max_length=128)] = "",
    status: TaskStatusName | None = None,
    execution: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TaskList:
    rows = await api.tasks.list_tasks(
        queue=queue, status=status or "", execution_id=execution, limit=limit
    )
    return TaskList(tasks=[TaskOut.of(r) for r in rows])


@router.get("/api/v1/tasks/{token}", response_model=TaskOut, summary="One task")
async def get_task(token: Token, api: Api) -> TaskOut:
    return TaskOut.of(await api.tasks.get(token))


@router.post("/api/v1/tasks/{token}/complete", response_model=TaskOut, summary="Complete a task")
async def complete(token: Token, api: Api, body: CompleteIn | None = None) -> TaskOut:
    body = body or CompleteIn()
    row = await api.tasks.complete(token, codec.to_json(body.output), outcome=body.outcome)
    await api.tasks.durable()
    return TaskOut.of(row)


@router.post("/api/v1/tasks/{token}/fail", response_model=TaskOut, summary="Fail a task")
async def fail(token: Token, body: FailIn, api: Api) -> TaskOut:
    row = await api.tasks.fail(token, body.message, kind=body.type, retryable=body.retryable)
    await api.tasks.durable()
    return TaskOut.of(row)


@router.post(
    "/api/v1/tasks/{token}/heartbeat", response_model=TaskOut, summary="Heartbeat a running task"
)
async def heartbeat(token: Token, api: Api, body: HeartbeatIn | None = None) -> TaskOut:
    details = body.details if body is not None else None
    row = await api.tasks.heartbeat(token, codec.to_json(details) if details is not None else None)
    return TaskOut.of(row)


@router.get("/api/v1/workers", response_model=WorkerList, summary="Connected task workers")
async def list_workers(api: Api) -> WorkerList:
    return WorkerList(workers=[WorkerOut.of(w) for w in api.tasks.workers()])
