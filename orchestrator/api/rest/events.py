"""``GET /api/v1/events``: the event log as JSON pages, or live as Server-Sent Events.

With ``Accept: text/event-stream`` the answer is a stream: each event is one SSE message whose
``id`` is its sequence number and whose ``data`` is the event as JSON. A client that reconnects
with ``Last-Event-ID`` (browsers' ``EventSource`` does so by itself) or ``?since=N`` first gets
what the log holds after that sequence, then live events: it misses nothing. A client that
reads too slowly gets ``event: lagged`` (its ``id`` is the resume point) and the stream ends;
reconnecting resumes from the log. A comment line every ``KEEPALIVE`` seconds keeps idle
connections open through proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from engine.errors import InputError, Issue
from orchestrator.api.rest.common import ERROR_RESPONSES, services_of
from orchestrator.api.rest.models import EventOut, EventPage
from orchestrator.monitor import MonitorEvent, Severity
from orchestrator.services import Services
from orchestrator.watch import MAX_LIMIT, EventLog, EventQuery, LaggedNotice

router = APIRouter(tags=["events"], responses=ERROR_RESPONSES)

Api = Annotated[Services, Depends(services_of)]
KEEPALIVE = 15.0
SSE_RESPONSE = {
    200: {
        "description": "JSON page; with `Accept: text/event-stream`, a Server-Sent Events stream.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def _sse_message(event: MonitorEvent) -> str:
    data = EventOut.of(event).model_dump(mode="json")
    return f"id: {event.sequence}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def sse_stream(
    log: EventLog, query: EventQuery, after: int | None, keepalive: float
) -> AsyncIterator[bytes]:
    """The SSE bytes of ``query``'s events after ``after`` (None: from now), then live ones."""
    yield b"retry: 2000\n\n"
    items = log.watch(query, after=after)
    pending: asyncio.Future[list[MonitorEvent] | LaggedNotice] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(items))
            done, _ = await asyncio.wait({pending}, timeout=keepalive)
            if not done:
                yield b": keepalive\n\n"
                continue
            with contextlib.suppress(StopAsyncIteration):
                item = pending.result()
                pending = None
                if isinstance(item, LaggedNotice):
                    notice = json.dumps({"resume_after": item.resume_after})
                    yield f"event: lagged\nid: {item.resume_after}\ndata: {notice}\n\n".encode()
                    return
                yield "".join(map(_sse_message, item)).encode()
                continue
            return
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await items.aclose()


def resume_point(last_event_id: str | None, since: int | None) -> int | None:
    """Where a stream resumes: ``Last-Event-ID`` (an ``EventSource`` reconnecting), or
    ``since``."""
    if last_event_id is None or not last_event_id.strip():
        return since
    try:
        value = int(last_event_id)
    except ValueError:
        raise InputError([Issue("Last-Event-ID", "is not an event sequence number")]) from None
    if value < 0:
        raise InputError([Issue("Last-Event-ID", "is not an event sequence number")])
    return value


@router.get(
    "/api/v1/events",
    response_model=EventPage,
    summary="Events: a page of the log, or a live Server-Sent Events stream",
    responses=SSE_RESPONSE,  # type: ignore[arg-type]
)
async def events(
    request: Request,
    api: Api,
    since: Annotated[
        int | None, Query(ge=0, description="Events after this sequence number.")
    ] = None,
    execution: Annotated[str, Query(max_length=200)] = "",
    workflow: Annotated[str, Query(max_length=63)] = "",
    type: Annotated[
        list[str],
        Query(description="Event types or prefixes (`node.`, `trigger.*`); repeatable."),
    ] = [],  # noqa: B006 - FastAPI copies defaults
    severity: Literal["debug", "info", "warning", "error"] = "debug",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="JSON pages only.")] = 100,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
) -> EventPage | StreamingResponse:
    query = EventQuery.of(
        execution_id=execution,
        workflow=workflow,
        types=type,
        min_severity=Severity[severity.upper()],
    )
    if "text/event-stream" in request.headers.get("accept", ""):
        after = resume_point(last_event_id, since)
        return StreamingResponse(
            sse_stream(api.events, query, after, request.app.state.keepalive),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    found = await api.events.history(query, after=since or 0, limit=limit, newest=since is None)
    return EventPage(
        events=[EventOut.of(e) for e in found],
        last_sequence=found[-1].sequence if found else (since or 0),
    )
