"""``/ui/events``: the live event stream with filters, and ``/ui/stream``, the UI's SSE.

The page shows the newest events that match its filters, then follows them through
``/ui/stream`` from the last one shown. ``/ui/stream`` is ``GET /api/v1/events`` as a stream,
authorised by the UI's session cookie (``EventSource`` cannot send a bearer token): a browser
that reconnects sends ``Last-Event-ID`` and gets what it missed from the log first, so the page
has no gap however long it was away (``docs/api.md``, Server-Sent Events).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import HTMLResponse, StreamingResponse

from engine.errors import InputError, Issue
from orchestrator.api.rest.events import resume_point, sse_stream
from orchestrator.monitor import Severity
from orchestrator.ui.web import PREFIX, Page, UiRoute
from orchestrator.watch import EventQuery

router = APIRouter(prefix=PREFIX, route_class=UiRoute, include_in_schema=False)

RECENT = 100
SEVERITIES = ("debug", "info", "warning", "error")
Types = Annotated[list[str], Query(max_length=20)]


def _query(execution: str, workflow: str, types: list[str], severity: str) -> EventQuery:
    if severity not in SEVERITIES:
        raise InputError([Issue("severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")])
    return EventQuery.of(
        execution_id=execution,
        workflow=workflow,
        types=[t for text in types for t in text.split(",")],
        min_severity=Severity[severity.upper()],
    )


@router.get("/events")
async def events(
    page: Page,
    execution: Annotated[str, Query(max_length=200)] = "",
    workflow: Annotated[str, Query(max_length=63)] = "",
    type: Types = [],  # noqa: B006 - FastAPI copies defaults
    severity: Annotated[str, Query(max_length=10)] = "debug",
) -> HTMLResponse:
    query = _query(execution, workflow, type, severity)
    found = await page.services.events.history(query, limit=RECENT, newest=True)
    return page.render(
        "events.html",
        events=found,
        show_execution=True,
        last_sequence=max((e.sequence for e in found), default=0),
        execution=execution,
        workflow=workflow,
        types=",".join(type),
        severity=severity,
        severities=SEVERITIES,
    )


@router.get("/stream")
async def stream(
    page: Page,
    execution: Annotated[str, Query(max_length=200)] = "",
    workflow: Annotated[str, Query(max_length=63)] = "",
    type: Types = [],  # noqa: B006
    severity: Annotated[str, Query(max_length=10)] = "debug",
    since: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
) -> StreamingResponse:
    query = _query(execution, workflow, type, severity)
    after = resume_point(last_event_id, since)
    response = StreamingResponse(
        sse_stream(page.services.events, query, after, page.request.app.state.keepalive),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    page.keep_session(response)
    return response
