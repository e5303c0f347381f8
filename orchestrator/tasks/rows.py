"""A task between the engine's messages and its ``TaskRow``: the row an engine's request makes,
the key it is found by, and the answer an ended one gives its engine.

A task is one attempt of one visit of one ``task`` node of one execution, and for a node with
``map``, of one item: its key is (execution, node, visit, item, attempt), ``item`` None for a
node without ``map``.
"""

from __future__ import annotations

import secrets
from collections.abc import Container

from orchestrator.engines.messages import TaskAnswer, TaskRequested, TaskTicket
from orchestrator.store import TaskRow

TaskKey = tuple[str, str, int, int | None, int]
"""(execution, node, visit, item, attempt)."""


def task_key(row: TaskRow) -> TaskKey:
    return row.execution_id, row.node, row.visit, row.item, row.attempt


def request_key(execution_id: str, request: TaskRequested) -> TaskKey:
    return execution_id, request.node, request.visit, request.item, request.attempt


def idempotency_key(execution_id: str, node: str, visit: int, item: int | None) -> str:
    """The same for every attempt of one visit of one node (of one item): ``execution/node/visit``,
    or ``execution/node/visit/item`` for an item of a node with ``map``."""
    key = f"{execution_id}/{node}/{visit}"
    return key if item is None else f"{key}/{item}"


def new_task(execution_id: str, workflow: str, request: TaskRequested, now: float) -> TaskRow:
    """A pending task with a fresh token for ``request``."""
    return TaskRow(
        token=secrets.token_hex(16),  # 128 bits; never starts with "-" (a CLI option)
        execution_id=execution_id,
        workflow=workflow,
        node=request.node,
        visit=request.visit,
        item=request.item,
        attempt=request.attempt,
        queue=request.queue,
        args_json=request.args_json,
        status="pending",
        created_at=now,
        idempotency_key=idempotency_key(execution_id, request.node, request.visit, request.item),
        schedule_to_start_s=request.schedule_to_start,
        timeout_s=request.timeout,
        heartbeat_s=request.heartbeat,
        kind=request.kind,
        deadline_at=request.deadline or None,
    )


def answer(row: TaskRow, lease: int) -> TaskAnswer:
    """What the engine running the ended task's execution (under ``lease``) is told."""
    return TaskAnswer(
        execution_id=row.execution_id,
        lease=lease,
        node=row.node,
        visit=row.visit,
        item=row.item,
        attempt=row.attempt,
        completed=row.status == "completed",
        output_json=row.output_json or b"null",
        error=row.error or "",
        retryable=row.retryable,
        outcome=row.outcome or "",
    )


def ticket(row: TaskRow, lease: int, base_url: str) -> TaskTicket:
    """What the engine sending a callback task's request is told: its token and URLs."""
    return TaskTicket(
        execution_id=row.execution_id,
        lease=lease,
        node=row.node,
        visit=row.visit,
        attempt=row.attempt,
        item=row.item,
        token=row.token,
        callback_url=f"{base_url}/api/v1/tasks/{row.token}",
        base_url=base_url,
        delivered=row.status == "running",
    )


def describe(row: TaskRow) -> str:
    """``task node`` or ``task node[item]``, for messages."""
    return f"task {row.node}" if row.item is None else f"task {row.node}[{row.item}]"


def what(row: TaskRow) -> str:
    """What the task is, for events: ``task on queue q``, ``callback``, ``wait for signal s``,
    ``timer``."""
    if row.kind == "signal":
        return f"wait for signal {row.queue}"
    if row.kind == "callback":
        return "callback"
    if row.kind == "timer":
        return "timer"
    return f"task on queue {row.queue}"


class EndedTasks:
    """Per unfinished execution, its tasks that ended (not cancelled): what parking asks when an
    engine parks an execution, since the end may have crossed the park report."""

    def __init__(self) -> None:
        self._rows: dict[str, list[TaskRow]] = {}

    def add(self, row: TaskRow) -> None:
        self._rows.setdefault(row.execution_id, []).append(row)

    def forget(self, execution_id: str) -> None:
        """The execution ended."""
        self._rows.pop(execution_id, None)

    def first_unseen(
        self, execution_id: str, seen: Container[tuple[str, int, int | None, int]]
    ) -> TaskRow | None:
        """A task of the execution that ended but whose node attempt is not in ``seen`` (its
        checkpoint's keys): its engine parked it before hearing of the end. Those seen are
        dropped."""
        rows = self._rows.get(execution_id)
        if not rows:
            return None
        rows[:] = [r for r in rows if (r.node, r.visit, r.item, r.attempt) not in seen]
        if not rows:
            del self._rows[execution_id]
            return None
        return rows[0]
