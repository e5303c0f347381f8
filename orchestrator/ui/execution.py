"""``/ui/executions/{id}``: one execution with its live graph, timeline, node panel and events.

The page is rendered whole on the server: the graph (``orchestrator.ui.graph`` lays the
definition out, ``orchestrator.ui.svg`` draws it with every node's status), the header, the
actions and the newest events. It then follows the execution's events (``/ui/stream``, Server-
Sent Events that resume without a gap): each node event appends a row to the event list and
asks, at most a few times a second, for ``/status`` -- every node's status, attempts and visits
as the orchestrator knows them -- which the page's script applies to the nodes'
``data-status``. The page never infers a status from the events itself, so it cannot drift from
what the API answers.

Layouts come from the UI's cache (``orchestrator.ui.layouts``): a 1,000-node graph is laid out
once per version, not on every load.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from engine.definition.model import WaitTask
from engine.errors import InputError, Issue
from engine.state.result import ExecutionResult
from orchestrator.executions.record import ExecutionRecord
from orchestrator.monitor import MonitorEvent
from orchestrator.services import Services
from orchestrator.store import TaskRow
from orchestrator.ui.graph import Graph, executor_kind
from orchestrator.ui.layouts import Layouts
from orchestrator.ui.svg import NodeView, group_summary, render_graph
from orchestrator.ui.timeline import build_timeline, render_timeline
from orchestrator.ui.web import PREFIX, Action, Page, UiRoute
from orchestrator.watch import EventQuery

router = APIRouter(prefix=PREFIX, route_class=UiRoute, include_in_schema=False)

ExecutionId = Annotated[str, Path(min_length=1, max_length=200)]
Expand = Annotated[list[str] | None, Query(max_length=100)]
ALL = "all"
"""``?expand=all``: every group drawn (the same as ``?expand_all=true``)."""
RECENT_EVENTS = 200
TIMELINE_EVENTS = 20_000


def views_of(result: ExecutionResult) -> dict[str, NodeView]:
    return {
        node: NodeView(str(s.status), s.attempts, s.visits, s.outcome)
        for node, s in result.nodes.items()
    }


def _graph(
    layouts: Layouts,
    record: ExecutionRecord,
    views: Mapping[str, NodeView],
    expand: list[str] | None,
    expand_all: bool,
) -> tuple[Graph | None, Any]:
    if record.wf is None:
        return None, ""
    expand_all = expand_all or ALL in (expand or ())
    graph = layouts.of(record.wf, frozenset(expand or ()), expand_all)
    url = f"{PREFIX}/executions/{record.id}/nodes/"
    return graph, render_graph(graph, views, link=lambda node: url + node)


ANSWERABLE = frozenset({"worker", "callback"})
"""Task kinds a person can complete or fail from the page: a signal is sent with its own form,
and a timer ends by itself."""


async def _answerable(api: Services, execution_id: str) -> list[TaskRow]:
    """The execution's open worker and callback tasks, newest first."""
    found = []
    for status in ("running", "pending"):
        rows = await api.tasks.list_tasks(execution_id=execution_id, status=status, limit=50)
        found += [row for row in rows if row.kind in ANSWERABLE]
    return found


def _unsettled(result: ExecutionResult) -> bool:
    """Whether a node still shows running: an execution's end can be known a moment before the
    engine's final result with every node's last status (the page then keeps following)."""
    return any(str(s.status) == "running" for s in result.nodes.values())


def _waits(record: ExecutionRecord, result: ExecutionResult) -> list[tuple[str, str]]:
    """``(node, signal)`` of every ``wait`` node running now: what a signal would answer."""
    if record.wf is None or record.finished:
        return []
    found = []
    for node in record.wf.definition.nodes:
        summary = result.nodes.get(node.id)
        if isinstance(node.executor, WaitTask) and summary and str(summary.status) == "running":
            found.append((node.id, node.executor.signal))
    return found


async def _events(api: Services, execution_id: str, limit: int) -> list[MonitorEvent]:
    return await api.events.history(
        EventQuery(execution_id=execution_id), after=0, limit=limit, newest=True
    )


@router.get("/executions/{execution_id}")
async def execution(
    page: Page,
    execution_id: ExecutionId,
    expand: Expand = None,
    expand_all: bool = False,
) -> HTMLResponse:
    api = page.services
    record = await api.executions.get(execution_id)
    result = api.executions.result(record)
    views = views_of(result)
    graph, svg = _graph(page.ui.layouts, record, views, expand, expand_all)
    events = await _events(api, record.id, RECENT_EVENTS)
    tasks = [] if record.finished else await _answerable(api, record.id)
    return page.render(
        "execution.html",
        record=record,
        result=result,
        graph=graph,
        svg=svg,
        expand=expand or [],
        expand_all=expand_all,
        events=events,
        last_sequence=max((e.sequence for e in events), default=0),
        finished=record.finished,
        live=not record.finished or _unsettled(result),
        waits=_waits(record, result),
        tasks=tasks,
        now=time.time(),
    )


@router.get("/executions/{execution_id}/graph")
async def graph_fragment(
    page: Page,
    execution_id: ExecutionId,
    expand: Expand = None,
    expand_all: bool = False,
) -> HTMLResponse:
    record = await page.services.executions.get(execution_id)
    views = views_of(page.services.executions.result(record))
    graph, svg = _graph(page.ui.layouts, record, views, expand, expand_all)
    return page.render(
        "_graph.html",
        record=record,
        graph=graph,
        svg=svg,
        expand=expand or [],
        expand_all=expand_all,
    )


@router.get("/executions/{execution_id}/status")
async def status(
    page: Page,
    execution_id: ExecutionId,
    expand: Expand = None,
    expand_all: bool = False,
) -> JSONResponse:
    """Every node's ``[status, attempts, visits]`` and every collapsed group's summary."""
    record = await page.services.executions.get(execution_id)
    result = page.services.executions.result(record)
    views = views_of(result)
    groups: dict[str, list[str]] = {}
    if record.wf is not None:
        expand_all = expand_all or ALL in (expand or ())
        graph = page.ui.layouts.of(record.wf, frozenset(expand or ()), expand_all)
        for group in graph.groups:
            if group.collapsed:
                groups[group.id] = list(group_summary(group.members, views))
    body = {
        "status": str(record.status),
        "finished": record.finished,
        "nodes": {node: [v.status, v.attempts, v.visits] for node, v in views.items()},
        "groups": groups,
    }
    response = JSONResponse(body, headers={"Cache-Control": "no-store"})
    page.keep_session(response)
    return response


@router.get("/executions/{execution_id}/nodes")
async def node_table(page: Page, execution_id: ExecutionId) -> HTMLResponse:
    """Every node as a table row (loaded when the page's "Nodes" section is opened)."""
    record = await page.services.executions.get(execution_id)
    result = page.services.executions.result(record)
    return page.render("_node_table.html", record=record, result=result)


@router.get("/executions/{execution_id}/header")
async def header(page: Page, execution_id: ExecutionId) -> HTMLResponse:
    record = await page.services.executions.get(execution_id)
    result = page.services.executions.result(record)
    return page.render(
        "_execution_header.html",
        record=record,
        result=result,
        finished=record.finished,
        waits=_waits(record, result),
        tasks=[],
        now=time.time(),
    )


@router.get("/executions/{execution_id}/timeline")
async def timeline(page: Page, execution_id: ExecutionId) -> HTMLResponse:
    record = await page.services.executions.get(execution_id)
    events = await page.services.events.history(
        EventQuery(execution_id=record.id), after=0, limit=TIMELINE_EVENTS
    )
    line = build_timeline(events, now=record.finished_at or time.time())
    return page.render(
        "_timeline.html", svg=render_timeline(line), truncated=len(events) >= TIMELINE_EVENTS
    )


@router.get("/executions/{execution_id}/nodes/{node}")
async def node_panel(
    page: Page, execution_id: ExecutionId, node: Annotated[str, Path(max_length=63)]
) -> HTMLResponse:
    record = await page.services.executions.get(execution_id)
    result = page.services.executions.result(record)
    summary = result.nodes.get(node)
    if summary is None:
        raise InputError([Issue("node", f"execution {record.id!r} has no node {node!r}")])
    definition_node = record.wf.definition.by_id.get(node) if record.wf is not None else None
    document = _node_document(record, node)
    events = [
        e
        for e in await page.services.events.history(
            EventQuery(execution_id=record.id), after=0, limit=TIMELINE_EVENTS
        )
        if e.node == node
    ]
    engines = sorted({e.engine_id for e in events if e.engine_id})
    tasks = [
        row
        for row in await page.services.tasks.list_tasks(execution_id=record.id, limit=200)
        if row.node == node
    ]
    children = [c for c in result.children if c.node == node]
    return page.render(
        "_node_panel.html",
        record=record,
        node=node,
        summary=summary,
        kind=executor_kind(definition_node.executor) if definition_node else "",
        document=document,
        events=events[-100:],
        engines=engines,
        children=children,
        tasks=tasks,
    )


def _node_document(record: ExecutionRecord, node: str) -> Any:
    """The node as its definition was submitted (its executor, ``args``, ``next``…)."""
    if record.wf is None:
        return None
    for item in record.wf.definition.document.get("nodes", ()):
        if isinstance(item, Mapping) and item.get("id") == node:
            return item
    return None


@router.get("/executions/{execution_id}/events")
async def events_fragment(page: Page, execution_id: ExecutionId) -> HTMLResponse:
    record = await page.services.executions.get(execution_id)
    events = await _events(page.services, record.id, RECENT_EVENTS)
    return page.render("_event_rows.html", events=events, show_execution=False)


# --- actions ----------------------------------------------------------------------------------


@router.post("/executions/{execution_id}/cancel")
async def cancel(act: Action, execution_id: ExecutionId) -> Response:
    record = await act.services.executions.cancel(
        execution_id, act.field("reason") or "cancelled from the UI"
    )
    return act.redirect(f"{PREFIX}/executions/{record.id}")


@router.post("/executions/{execution_id}/rerun")
async def rerun(act: Action, execution_id: ExecutionId) -> Response:
    """A new execution of the same version with the same inputs."""
    record = await act.services.executions.get(execution_id)
    new = await act.services.executions.start(
        record.name, record.version, record.inputs, routing_key=record.routing_key
    )
    return act.redirect(f"{PREFIX}/executions/{new.id}")


@router.post("/executions/{execution_id}/retry")
async def retry(act: Action, execution_id: ExecutionId) -> Response:
    """Retry from failure (docs/retry.md): reuse what finished, run the rest."""
    new = await act.services.executions.retry(execution_id, act.field("from") or None)
    return act.redirect(f"{PREFIX}/executions/{new.id}")


def _json_field(act: Action, name: str) -> bytes:
    text = act.field(name).strip()
    if not text:
        return b"null"
    try:
        json.loads(text)
    except ValueError as exc:
        raise InputError([Issue(name, f"is not JSON: {exc}")]) from None
    return text.encode()


@router.post("/executions/{execution_id}/signal")
async def signal(act: Action, execution_id: ExecutionId) -> Response:
    name = act.field("name").strip()
    if not name:
        raise InputError([Issue("name", "say which signal to send")])
    data = _json_field(act, "data")
    await act.services.executions.signal(
        execution_id, name, outcome=act.field("outcome").strip(), data_json=data
    )
    return act.redirect(f"{PREFIX}/executions/{execution_id}")


Token = Annotated[str, Path(max_length=200)]


@router.post("/executions/{execution_id}/tasks/{token}/{answer}")
async def answer_task(
    act: Action, execution_id: ExecutionId, token: Token, answer: Literal["complete", "fail"]
) -> Response:
    """Complete (output, outcome) or fail (why, may it be retried) one of its open tasks."""
    task = await act.services.tasks.get(token)
    if task.execution_id != execution_id:
        raise InputError([Issue("token", f"the task is not one of execution {execution_id!r}")])
    if answer == "complete":
        output = _json_field(act, "output")
        await act.services.tasks.complete(token, output, act.field("outcome").strip())
    else:
        retryable = act.field("retryable") == "on"
        await act.services.tasks.fail(token, act.field("message"), retryable=retryable)
    return act.redirect(f"{PREFIX}/executions/{execution_id}")
