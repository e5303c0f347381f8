"""``/api/v1/executions``, ``/api/v1/engines`` and ``POST /trigger/{workflow}``."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import ValidationError

from engine.errors import InputError, Issue
from engine.server import codec
from engine.state.events import ExecutionStatus
from engine.state.result import iso
from orchestrator.api.rest.common import ERROR_RESPONSES, services_of
from orchestrator.api.rest.models import (
    NAME,
    CancelIn,
    EngineList,
    EngineOut,
    ErrorBody,
    EventOut,
    EventPage,
    ExecutionOut,
    ExecutionPage,
    ExecutionSummaryOut,
    RetryIn,
    SignalIn,
    SignalOut,
    StartIn,
    TriggerRunIn,
    TriggerRunOut,
)
from orchestrator.executions.record import ExecutionRecord
from orchestrator.services import Services
from orchestrator.store import ExecutionRow
from orchestrator.watch import EventQuery

router = APIRouter(tags=["executions"], responses=ERROR_RESPONSES)

Api = Annotated[Services, Depends(services_of)]
ExecutionId = Annotated[str, Path(min_length=1, max_length=200)]
MAX_WAIT = 300.0


def _result(api: Services, record: ExecutionRecord) -> ExecutionOut:
    out = ExecutionOut.model_validate(api.executions.result(record).to_json())
    if record.status == ExecutionStatus.WAITING:
        out.wake_at = iso(record.wake_at)
    return out


async def _start(
    api: Services, workflow: str, body: StartIn | TriggerRunIn, key: str
) -> ExecutionRecord:
    return await api.executions.start(
        workflow,
        body.version,
        body.inputs,
        routing_key=body.routing_key,
        idempotency_key=body.idempotency_key or key,
    )


async def _wait(record: ExecutionRecord, seconds: float) -> bool:
    """True once the execution has ended, False when ``seconds`` passed first."""
    try:
        async with asyncio.timeout(seconds):
            await record.done.wait()
    except TimeoutError:
        return False
    return True


Wait = Annotated[bool, Query(description="Answer when the execution has ended.")]
Timeout = Annotated[
    float,
    Query(
        alias="timeout",
        gt=0,
        le=MAX_WAIT,
        description="With `wait`: answer 202 after this many seconds.",
    ),
]
IdempotencyKey = Annotated[
    str, Header(max_length=200, description="Same as the body's `idempotency_key`.")
]


@router.post(
    "/api/v1/executions",
    status_code=201,
    response_model=ExecutionOut,
    summary="Start an execution",
    responses={200: {"model": ExecutionOut, "description": "With `wait`: it has ended."}},
)
async def start(
    body: StartIn,
    response: Response,
    api: Api,
    wait: Wait = False,
    wait_timeout: Timeout = 30.0,
    idempotency_key: IdempotencyKey = "",
) -> ExecutionOut:
    record = await _start(api, body.workflow, body, idempotency_key)
    if wait and await _wait(record, wait_timeout):
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/executions/{record.id}"
    return _result(api, record)


@router.post(
    "/trigger/{workflow}",
    status_code=202,
    response_model=TriggerRunOut | ExecutionOut,
    tags=["triggers"],
    summary="Start an execution from an HTTP call",
    description="`curl -X POST http://host:8080/trigger/NAME -d '{\"inputs\": {...}}'` answers "
    "202 with the execution id at once; with `?wait=true`, 200 with the result once it has "
    "ended (or 202 when `timeout` passed first). The body is read as JSON whatever its "
    "Content-Type (curl's `-d` sends a form type); an empty body starts with default inputs.",
    responses={200: {"model": ExecutionOut, "description": "With `wait`: the result."}},
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": TriggerRunIn.model_json_schema()}},
        }
    },
)
async def trigger(
    workflow: Annotated[str, Path(pattern=NAME)],
    request: Request,
    response: Response,
    api: Api,
    wait: Wait = False,
    wait_timeout: Timeout = 30.0,
    idempotency_key: IdempotencyKey = "",
) -> TriggerRunOut | ExecutionOut:
    raw = await request.body()
    try:
        body = TriggerRunIn.model_validate_json(raw) if raw.strip() else TriggerRunIn()
    except ValidationError as exc:
        raise InputError(
            [
                Issue(".".join(str(p) for p in e["loc"]) or "body", str(e["msg"]))
                for e in exc.errors()
            ]
        ) from None
    record = await _start(api, workflow, body, idempotency_key)
    url = f"/api/v1/executions/{record.id}"
    response.headers["Location"] = url
    if wait and await _wait(record, wait_timeout):
        response.status_code = 200
        return _result(api, record)
    return TriggerRunOut(
        execution_id=record.id,
        workflow=record.name,
        version=record.version,
        status=str(record.status),
        url=url,
    )


def _page_token(row: ExecutionRow) -> str:
    """The keyset of the page's last row; ``_from_token`` reads it back."""
    raw = json.dumps([row.created_at, row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _from_token(token: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created_at, execution_id = json.loads(raw)
        return float(created_at), str(execution_id)
    except (ValueError, TypeError, binascii.Error):
        raise InputError([Issue("page_token", "is not a token this API gave out")]) from None


def _seconds(at: datetime | None) -> float | None:
    """A time of a query (ISO 8601, without an offset taken as UTC) as Unix seconds."""
    if at is None:
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


CreatedBound = Annotated[
    datetime | None,
    Query(
        description="ISO 8601 (`2026-12-03T15:00:00Z`; without an offset, UTC) or Unix seconds; "
        "strictly."
    ),
]


@router.get("/api/v1/executions", response_model=ExecutionPage, summary="List executions")
async def list_executions(
    api: Api,
    workflow: Annotated[str, Query(max_length=63)] = "",
    version: Annotated[str, Query(max_length=256)] = "",
    status: Literal["pending", "running", "waiting", "completed", "failed", "cancelled", ""] = "",
    parent: Annotated[str, Query(max_length=200, description="Children of this execution.")] = "",
    created_after: CreatedBound = None,
    created_before: CreatedBound = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: Annotated[str, Query(max_length=500)] = "",
) -> ExecutionPage:
    rows = await api.executions.list_executions(
        workflow=workflow,
        version=version,
        status=ExecutionStatus(status) if status else None,
        parent_id=parent,
        created_after=_seconds(created_after),
        created_before=_seconds(created_before),
        limit=limit,
        before=_from_token(page_token) if page_token else None,
        summary=True,  # a summary shows neither inputs nor result: not read at all
    )
    out = [ExecutionSummaryOut.of(row) for row in rows]
    token = _page_token(rows[-1]) if len(rows) == limit else None
    return ExecutionPage(executions=out, next_page_token=token)


@router.get(
    "/api/v1/executions/{execution_id}", response_model=ExecutionOut, summary="One execution"
)
async def get_execution(execution_id: ExecutionId, api: Api) -> ExecutionOut:
    return _result(api, await api.executions.get(execution_id))


@router.post(
    "/api/v1/executions/{execution_id}/cancel",
    response_model=ExecutionOut,
    summary="Cancel an execution and its sub-workflows",
)
async def cancel(execution_id: ExecutionId, api: Api, body: CancelIn | None = None) -> ExecutionOut:
    record = await api.executions.cancel(execution_id, body.reason if body else "")
    return _result(api, record)


@router.post(
    "/api/v1/executions/{execution_id}/retry",
    status_code=201,
    response_model=ExecutionOut,
    summary="Retry an ended execution",
    description="A new execution of the same version with the same inputs that reuses the "
    "results of the nodes that finished and runs the rest (from `from` too, when given); "
    "its `retry_of` names the original, whose `retried_by` names it. 409 `not_retryable` "
    "while the execution runs, once it was retried, when its version was deleted, or for a "
    "completed one without `from`; 422 for an unknown `from`.",
    responses={200: {"model": ExecutionOut, "description": "With `wait`: it has ended."}},
)
async def retry(
    execution_id: ExecutionId,
    response: Response,
    api: Api,
    body: RetryIn | None = None,
    wait: Wait = False,
    wait_timeout: Timeout = 30.0,
) -> ExecutionOut:
    record = await api.executions.retry(execution_id, body.from_node if body else None)
    if wait and await _wait(record, wait_timeout):
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/executions/{record.id}"
    return _result(api, record)


@router.post(
    "/api/v1/executions/{execution_id}/signals/{name}",
    response_model=SignalOut,
    summary="Send a signal to an execution",
    description="A `wait: {signal: NAME}` node waiting for it completes with `data` as its "
    "output and `outcome` routing its `next`; a signal no node waits for yet is kept and "
    "consumed when one does, in the order signals were sent (`consumed: false`). 404 for an "
    "unknown execution, 409 for a finished one, 400 `invalid_signal` for a name no `wait` "
    "node of its workflow waits for.",
    responses={400: {"model": ErrorBody, "description": "No `wait` node waits for NAME."}},
)
async def signal(
    execution_id: ExecutionId,
    name: Annotated[str, Path(min_length=1, max_length=200, description="The signal's name.")],
    api: Api,
    body: SignalIn | None = None,
) -> SignalOut:
    body = body or SignalIn()
    receipt = await api.executions.signal(
        execution_id, name, outcome=body.outcome, data_json=codec.to_json(body.data) or b"null"
    )
    return SignalOut.of(receipt)


@router.get(
    "/api/v1/executions/{execution_id}/events",
    response_model=EventPage,
    summary="One execution's timeline",
)
async def execution_events(
    execution_id: ExecutionId,
    api: Api,
    since: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> EventPage:
    await api.executions.get(execution_id)
    events = await api.events.history(
        EventQuery(execution_id=execution_id), after=since, limit=limit
    )
    return EventPage(
        events=[EventOut.of(e) for e in events],
        last_sequence=events[-1].sequence if events else since,
    )


@router.get("/api/v1/engines", response_model=EngineList, tags=["engines"], summary="Engines")
async def engines(api: Api) -> EngineList:
    return EngineList(engines=[EngineOut.of(engine) for engine in api.engines()])
