"""``TaskService``: what the APIs (REST, gRPC, the CLI through them) do with tasks and workers.

Completing, failing and heart-beating by token go through the ``TaskBoard`` exactly as a
worker's stream does; a verdict becomes an error here (``NotFound``, ``TaskEnded``) or the task as
it stands. ``DUPLICATE`` is not an error: the same answer sent twice gets the same reply twice.
Lists wait for what is queued to be committed, read the store, and overlay the board's
unfinished tasks (a heartbeat's time is not written each time).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from engine.definition.schema import QUEUE_PATTERN
from engine.errors import InputError, Issue
from engine.server import codec
from orchestrator.errors import NotFound, TaskEnded
from orchestrator.store import TASK_STATUSES, Store, TaskRow
from orchestrator.tasks.board import Answered, TaskBoard, Verdict
from orchestrator.tasks.workers import WorkerHub, WorkerSession, WorkerSnapshot

MAX_TASKS = 1000
MAX_SLOTS = 10_000


class TaskService:
    """Tasks and workers for the APIs; see the module docstring."""

    def __init__(self, board: TaskBoard, hub: WorkerHub, store: Store) -> None:
        self._board = board
        self._hub = hub
        self._store = store

    async def list_tasks(
        self, *, queue: str = "", status: str = "", execution_id: str = "", limit: int = 100
    ) -> list[TaskRow]:
        """Tasks, newest first; ``status`` one of ``TASK_STATUSES`` (or empty: any)."""
        if status and status not in TASK_STATUSES:
            raise codec.CodecError(
                f"status: unknown task status {status!r} (one of {', '.join(TASK_STATUSES)})"
            )
        limit = max(1, min(limit, MAX_TASKS))
        await self._board.durable()  # the store's copy of every task as it stands now
        rows = {
            row.token: row
            for row in await self._store.list_tasks(
                queue=queue, status=status, execution_id=execution_id, limit=limit
            )
        }
        for row in self._board.open_tasks():  # fresher, and perhaps not committed yet
            if (
                (not queue or row.queue == queue)
                and (not status or row.status == status)
                and (not execution_id or row.execution_id == execution_id)
            ):
                rows[row.token] = row
            elif row.token in rows:  # its status changed since the store's copy
                del rows[row.token]
        ordered = sorted(rows.values(), key=lambda r: (-r.created_at, r.token))
        return ordered[:limit]

    async def get(self, token: str) -> TaskRow:
        row = self._board.get(token) or await self._store.get_task(token)
        if row is None:
            raise NotFound(f"no task with token {token!r}")
        return row

    async def complete(self, token: str, output_json: bytes, outcome: str = "") -> TaskRow:
        """Complete the task with the node's output (JSON); ``outcome``, or else an
        ``outcome`` key of the output, routes ``next``."""
        codec.from_json(output_json, "output")
        return _settled(await self._board.complete(token, output_json, outcome))

    async def fail(
        self, token: str, message: str, *, kind: str = "", retryable: bool = True
    ) -> TaskRow:
        if not message.strip():
            raise codec.CodecError("message: say why the task failed")
        return _settled(await self._board.fail(token, message, kind=kind, retryable=retryable))

    async def heartbeat(self, token: str, details_json: bytes | None = None) -> TaskRow:
        if details_json:
            codec.from_json(details_json, "details")
        return _settled(await self._board.heartbeat(token, details_json))

    def workers(self) -> list[WorkerSnapshot]:
        return self._hub.snapshot()

    # --- what a worker's stream does ---------------------------------------------------------

    def join(
        self,
        worker_id: str,
        queues: Sequence[str],
        slots: int,
        *,
        running: Sequence[str] = (),
        peer: str = "",
        sdk_version: str = "",
    ) -> WorkerSession:
        """A worker said hello: its session (an older stream of the same id is closed)."""
        issues = [Issue("hello.worker_id", "is required")] if not worker_id.strip() else []
        if len(worker_id) > 200:
            issues.append(Issue("hello.worker_id", "is longer than 200 characters"))
        if not queues:
            issues.append(Issue("hello.queues", "name at least one queue"))
        issues += [
            Issue(f"hello.queues[{i}]", f"{q!r} is not a queue name ({QUEUE_PATTERN})")
            for i, q in enumerate(queues)
            if not re.fullmatch(QUEUE_PATTERN, q)
        ]
        if not 1 <= slots <= MAX_SLOTS:
            issues.append(Issue("hello.slots", f"must be 1 to {MAX_SLOTS}, got {slots}"))
        if issues:
            raise InputError(issues)
        session, old = self._hub.connect(
            worker_id, queues, slots, peer=peer, sdk_version=sdk_version
        )
        self._board.worker_joined(session, old, running)
        return session

    def leave(self, session: WorkerSession, why: str) -> None:
        """The worker's stream ended: what it ran is offered to others at once."""
        self._hub.disconnect(session, why)
        self._board.worker_left(session)

    def release(self, session: WorkerSession, tokens: Sequence[str]) -> None:
        self._board.release(session, tokens)

    def drain(self, session: WorkerSession) -> None:
        """The worker stops: it takes no new task."""
        session.draining = True

    async def answer(
        self,
        token: str,
        *,
        output_json: bytes | None = None,
        message: str = "",
        kind: str = "",
        retryable: bool = True,
    ) -> Answered:
        """A worker's result: a completion (``output_json``) or a failure (``message``)."""
        if output_json is not None:
            return await self._board.complete(token, output_json)
        return await self._board.fail(token, message, kind=kind, retryable=retryable)

    async def beat(self, token: str, details_json: bytes | None) -> Answered:
        return await self._board.heartbeat(token, details_json)

    async def durable(self) -> None:
        """Return once what was written so far is committed (before answering a caller)."""
        await self._board.durable()

    def when_durable(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once what was written so far is committed (acks to workers)."""
        self._board.when_durable(callback)


def _settled(answered: Answered) -> TaskRow:
    if answered.verdict is Verdict.NOT_FOUND or answered.task is None:
        raise NotFound(answered.message or "no such task")
    if answered.verdict is Verdict.REFUSED:
        raise TaskEnded(answered.message)
    return answered.task
