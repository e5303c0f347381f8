"""``/ui/executions``: the execution list, filtered and paged on the server by keyset.

A page is the newest ``PAGE`` executions matching the filters (workflow, version, status,
parent, a time window); ``a[rel=next]`` carries the last row's ``(created_at, id)`` as
``before``, so a page deep in a list of 100,000 costs what the first one does (an index range,
no ``OFFSET``). htmx swaps only the table when a filter changes (``HX-Request``), and the URL
follows, so a filtered list can be bookmarked and reloaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from engine.errors import InputError, Issue
from engine.state.events import ExecutionStatus
from orchestrator.store import ExecutionRow
from orchestrator.ui.web import PREFIX, Page, UiRoute
from orchestrator.watch import EventQuery

router = APIRouter(prefix=PREFIX, route_class=UiRoute, include_in_schema=False)

PAGE = 50
STATUSES = tuple(str(s) for s in ExecutionStatus)
WINDOWS = {"15m": 900.0, "1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
"""The time windows the filter offers: created within the last …"""


@dataclass(frozen=True, slots=True)
class Filters:
    """The list's filters as the query string gives them (validated)."""

    workflow: str = ""
    version: str = ""
    status: str = ""
    parent: str = ""
    window: str = ""
    after: str = ""
    """Created after this UTC time (``YYYY-MM-DDTHH:MM``, as ``datetime-local`` sends)."""
    until: str = ""
    """Created before this UTC time."""

    def query(self, **extra: str) -> str:
        pairs = {k: getattr(self, k) for k in self.__slots__ if getattr(self, k)}
        pairs.update({k: v for k, v in extra.items() if v})
        return urlencode(pairs)

    def times(self, now: float) -> tuple[float | None, float | None]:
        """``(created_after, created_before)`` in epoch seconds."""
        after = _moment("after", self.after)
        if self.window:
            start = now - WINDOWS[self.window]
            after = start if after is None else max(after, start)
        return after, _moment("until", self.until)


def _moment(name: str, text: str) -> float | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        raise InputError([Issue(name, f"{text!r} is not a time like 2026-12-03T15:04")]) from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def keyset(row: ExecutionRow) -> str:
    """The ``before`` value that continues after ``row``."""
    return f"{row.created_at!r}~{row.id}"


def _before(text: str) -> tuple[float, str] | None:
    if not text:
        return None
    at, _, ident = text.partition("~")
    try:
        return float(at), ident
    except ValueError:
        raise InputError([Issue("before", "is not a position this page gave out")]) from None


Text = Annotated[str, Query(max_length=200)]


@router.get("/executions")
async def executions(
    page: Page,
    workflow: Annotated[str, Query(max_length=63)] = "",
    version: Annotated[str, Query(max_length=256)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    parent: Text = "",
    window: Annotated[str, Query(max_length=5)] = "",
    after: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    before: Annotated[str, Query(max_length=300)] = "",
) -> HTMLResponse:
    issues = []
    if status and status not in STATUSES:
        issues.append(Issue("status", f"{status!r} is not one of {', '.join(STATUSES)}"))
    if window and window not in WINDOWS:
        issues.append(Issue("window", f"{window!r} is not one of {', '.join(WINDOWS)}"))
    if issues:
        raise InputError(issues)
    filters = Filters(workflow, version, status, parent, window, after, until)
    created_after, created_before = filters.times(time.time())
    rows = await page.services.executions.list_executions(
        workflow=workflow,
        version=version,
        status=ExecutionStatus(status) if status else None,
        parent_id=parent,
        created_after=created_after,
        created_before=created_before,
        limit=PAGE,
        before=_before(before),
        summary=True,
    )
    next_url = (
        f"{PREFIX}/executions?{filters.query(before=keyset(rows[-1]))}" if len(rows) == PAGE else ""
    )
    context: dict[str, Any] = {
        "rows": rows,
        "filters": filters,
        "next_url": next_url,
        "first_url": f"{PREFIX}/executions?{filters.query()}" if before else "",
        "statuses": STATUSES,
        "windows": WINDOWS,
        "workflows": [s.name for s in page.services.workflows.summaries()],
    }
    if page.fragment and page.request.headers.get("hx-target") == "executions":
        return page.render("_execution_rows.html", **context)
    # The page follows execution events from the newest one now, so none is missed between
    # this render and its stream's start.
    newest = await page.services.events.history(EventQuery(), limit=1, newest=True)
    context["since"] = newest[-1].sequence if newest else 0
    return page.render("executions.html", **context)
