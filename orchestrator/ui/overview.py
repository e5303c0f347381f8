"""``/ui``: the overview -- engines, workers and their queues, executions by status over the
last hour, and the latest failures."""

from __future__ import annotations

import time
from collections import Counter

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from engine.state.events import ExecutionStatus
from orchestrator.ui.web import PREFIX, Page, UiRoute

router = APIRouter(prefix=PREFIX, route_class=UiRoute, include_in_schema=False)

HOUR = 3600.0
FAILURES = 10


@router.get("")
@router.get("/")
async def overview(page: Page) -> HTMLResponse:
    api = page.services
    counts = await api.executions.counts(since=time.time() - HOUR)
    failures = await api.executions.list_executions(
        status=ExecutionStatus.FAILED, limit=FAILURES, summary=True
    )
    workers = api.tasks.workers()
    queues: Counter[str] = Counter()
    for worker in workers:
        for queue in worker.queues:
            queues[queue] += worker.slots - worker.running
    pending = await api.tasks.list_tasks(status="pending", limit=1000)
    depth = Counter(task.queue for task in pending if task.queue)
    return page.render(
        "overview.html",
        engines=api.engines(),
        workers=workers,
        queues=sorted(set(queues) | set(depth)),
        free_slots=queues,
        depth=depth,
        depth_capped=len(pending) >= 1000,
        counts=counts,
        statuses=[str(s) for s in ExecutionStatus],
        total=sum(counts.values()),
        failures=failures,
        workflows=len(api.workflows.summaries()),
    )
