"""``TaskBoard``: durable tasks of ``task`` nodes, from the engine's request to their answer.

A ``task`` node's attempt asks its engine, which asks the orchestrator (``TaskRequested``). The
board finds the task of that (execution, node, visit, item, attempt) (``rows.py``; ``item`` for a
node with ``map``) — in memory, or in the store for an execution older than this process — so a
request re-sent after a reconnect or a failover re-joins the same task; otherwise it creates one
with a fresh token, writes it, and offers it to workers only once it is durable. Each token's
task moves::

    pending --a worker takes it--> running --answer--> completed | failed
       ^                              |
       +--the worker's stream broke---+        any unfinished --> timed_out | cancelled

A completion or failure is taken once (by a worker's stream or by anyone holding the token over
REST or gRPC); the same answer again is a ``DUPLICATE`` answered the same way, anything else for
an ended task is ``REFUSED`` (a superseded attempt, a timeout, a cancellation). The engine
running the execution hears the end once it is durable (``TaskAnswer``); an execution not placed
at that moment asks again wherever it runs next and is answered at once.

Deadlines (``schedule_to_start`` from the time the task became pending, ``timeout`` from the
time a worker took it, ``heartbeat`` from its last heartbeat) end the task ``timed_out`` with a
message naming which; the node's ``retry`` decides what follows. When an execution ends, its
unfinished tasks are cancelled and their workers told.

Other kinds of task (``docs/waits.md``) are never offered to workers: a ``callback`` (its
engine is told the token — ``TaskTicket`` — sends the request and reports whether it was
accepted: ``delivered``), a ``signal`` wait (``Signals`` hands it a signal: ``complete_now``) and
a ``timer`` (its deadline completes it). Their ``timeout`` counts from creation, and every kind
ends at its node's deadline too. A task of a *parked* execution that ends wakes it (``wake``),
in the same commit as the end.

An orchestrator restart loads every unfinished task (``load``); those that were running go back
to pending, and a worker that reconnects still running one claims it in its hello.

The module is past 600 lines: it is the one owner of every task's state (indexes, queues,
deadlines), and splitting it would mean parts reading each other's indexes.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from weir.proto.v1 import worker_pb2 as wpb

from engine.state.events import ExecutionStatus
from orchestrator.engines.messages import Delivered, TaskRequested
from orchestrator.executions.record import ExecutionRecord
from orchestrator.executions.table import ExecutionTable
from orchestrator.journal import Journal
from orchestrator.monitor import Monitor
from orchestrator.placement import Placement
from orchestrator.signals import Signal
from orchestrator.store import Store, TaskRow
from orchestrator.supervise import Supervisor
from orchestrator.tasks import deadlines
from orchestrator.tasks.events import TaskEvents
from orchestrator.tasks.rows import (
    EndedTasks,
    TaskKey,
    answer,
    describe,
    new_task,
    request_key,
    task_key,
    ticket,
    what,
)
from orchestrator.tasks.workers import WorkerHub, WorkerSession, task_to_pb

log = logging.getLogger(__name__)

SCHEDULE_TO_START = deadlines.Deadline.SCHEDULE_TO_START
TIMEOUT = deadlines.Deadline.TIMEOUT
HEARTBEAT = deadlines.Deadline.HEARTBEAT
FINISHED_KEPT = 10_000
RELEASE_PAUSE = 1.0
"""Seconds a worker that gave tasks back gets no new ones."""
"""Ended tasks kept in memory (answers to duplicates and re-asks without a store read)."""


class Verdict(enum.Enum):
    """What became of an answer (completion, failure, heartbeat) sent for a token."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class Answered:
    """The verdict on an answer, the task as it stands after it, and why when refused."""

    verdict: Verdict
    task: TaskRow | None
    message: str = ""


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue's tasks in memory now."""

    queue: str
    pending: int
    running: int


class TaskBoard:
    """Every unfinished task, its workers and its deadlines; see the module docstring."""

    def __init__(
        self,
        *,
        store: Store,
        journal: Journal,
        monitor: Monitor,
        table: ExecutionTable,
        placement: Placement,
        hub: WorkerHub,
        supervisor: Supervisor,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._journal = journal
        self._announce = TaskEvents(monitor, table)
        self._table = table
        self._placement = placement
        self._hub = hub
        self._supervisor = supervisor
        self._clock = clock
        self.base_url = ""
        """The orchestrator's HTTP base URL, without a trailing ``/``, for callback URLs (set by
        the server once its port is bound: ``OrchestratorSettings.callback_base``)."""
        self._open: dict[str, TaskRow] = {}
        """Unfinished tasks by token."""
        self._by_key: dict[TaskKey, TaskRow] = {}
        """Unfinished and kept finished tasks by (execution, node, visit, item, attempt)."""
        self._by_execution: dict[str, set[str]] = {}
        """Tokens of each execution's unfinished tasks."""
        self._finished: collections.OrderedDict[str, TaskRow] = collections.OrderedDict()
        self._pending: dict[str, collections.deque[str]] = {}
        """Per queue, tokens in the order they are offered (entries no longer pending are
        skipped when reached)."""
        self._pending_since: dict[str, float] = {}
        self._deadlines = deadlines.Deadlines(clock)
        self._lookups: set[TaskKey] = set()
        self._forgot: set[str] = set()
        """Executions with an ended task that left memory: a request of theirs missing in
        memory may be in the store (cleared when the execution ends)."""
        self._loaded_at = clock()
        self.unseen = EndedTasks()
        """Tasks that ended (not cancelled) while their execution ran: parking asks whether its
        engine heard of each."""
        self.scheduled: Signal[[TaskRow]] = Signal("task scheduled")
        self.started: Signal[[TaskRow, float]] = Signal("task started")
        """A worker took the task, after waiting that many seconds in the queue."""
        self.ended: Signal[[TaskRow]] = Signal("task ended")
        self.refused: Signal[[str, str]] = Signal("task answer refused")
        """An answer for an ended task: its queue and what was answered."""
        self.wake: Signal[[ExecutionRecord, str]] = Signal("parked execution woken")
        """A task of a parked execution ended (why, for the event): place it again."""

    # --- reading -----------------------------------------------------------------------------

    def get(self, token: str) -> TaskRow | None:
        """The task in memory (unfinished, or ended recently)."""
        return self._open.get(token) or self._finished.get(token)

    def open_tasks(self) -> Iterable[TaskRow]:
        return self._open.values()

    def queue_stats(self) -> list[QueueStats]:
        counts: dict[str, list[int]] = {}
        for row in self._open.values():
            if row.kind != "worker":
                continue
            pair = counts.setdefault(row.queue, [0, 0])
            pair[row.status == "running"] += 1
        return [QueueStats(q, p, r) for q, (p, r) in sorted(counts.items())]

    # --- start -------------------------------------------------------------------------------

    async def load(self, reclaim: float = 0.0) -> int:
        """Take up the store's unfinished tasks (at start); those of executions that ended are
        cancelled. Returns how many were taken up.

        A task that was running is most likely still running on its worker, which reconnects
        and claims it in its hello: it is offered to others only after ``reclaim`` seconds, so
        that it is not done twice (the engines' re-attach window, for workers).
        """
        self._loaded_at = self._clock()
        count = 0
        were_running: list[TaskRow] = []
        for row in await self._store.unfinished_tasks():
            record = self._table.get(row.execution_id)
            if record is None or record.finished:
                row.status = "cancelled"
                row.error = "its execution ended while the orchestrator was down"
                row.finished_at = self._clock()
                self._journal.task(row.copy())
                continue
            self._add(row)
            count += 1
            self._arm(row)
            if row.kind != "worker":
                continue  # nobody takes it: it waits for its answer or its time
            if row.status == "running" and reclaim > 0:
                row.status = "pending"  # its worker's stream died with the old process
                row.started_at = None
                were_running.append(row)
                continue
            row.status = "pending"
            row.started_at = None
            self._make_pending(row)
        if were_running:
            asyncio.get_running_loop().call_later(reclaim, self._unclaimed, were_running)
        return count

    def _unclaimed(self, rows: list[TaskRow]) -> None:
        """The reclaim window after a restart is over: offer what no worker claimed."""
        for row in rows:
            if self._open.get(row.token) is row and row.status == "pending":
                self._make_pending(row)

    # --- requests from engines ---------------------------------------------------------------

    def requested(self, record: ExecutionRecord, request: TaskRequested) -> None:
        """A ``task`` node attempt of ``record`` (placed where the request came from) asks."""
        key = request_key(record.id, request)
        row = self._by_key.get(key)
        if row is not None:
            if row.finished:
                self._tell(row)  # asked again: its answer may have been lost with an engine
            elif row.kind == "callback":
                self._ticket(row)  # the token the request carries, and whether it was accepted
            return
        if key in self._lookups:
            return
        if record.created_at < self._loaded_at or record.id in self._forgot:
            # its task may have ended before this process started, or left memory since
            self._lookups.add(key)
            self._supervisor.spawn("task lookup", self._look_up(record, request, key))
            return
        self._create(record, request)

    async def _look_up(self, record: ExecutionRecord, request: TaskRequested, key: TaskKey) -> None:
        execution_id, node, visit, item, attempt = key
        try:
            row = await self._store.find_task(execution_id, node, visit, attempt, item=item)
        finally:
            self._lookups.discard(key)
        if key in self._by_key or record.finished:
            return
        if row is None:
            self._create(record, request)
            return
        if row.finished:
            self._keep_finished(row)
            self._by_key[key] = row
            self._tell(row)
        else:  # not loaded at start (it cannot be): take it up
            self._add(row)
            self._arm(row)
            if row.kind == "worker":
                self._make_pending(row)
            elif row.kind == "callback":
                self._ticket(row)

    def _create(self, record: ExecutionRecord, request: TaskRequested) -> None:
        row = new_task(record.id, record.name, request, self._clock())
        self._add(row)
        self._journal.task(row.copy())
        self._announce.task(row, "task.scheduled", f"{what(row)} scheduled")
        self._arm(row)
        self.scheduled(row)  # a signal wait may be answered at once by a kept signal
        if row.kind == "worker":
            self._journal.after_durable(lambda: self._offer(row))
        elif row.kind == "callback":
            self._journal.after_durable(lambda: self._ticket(row))

    def _arm(self, row: TaskRow) -> None:
        """Push the deadlines a task has from its creation (its node's; a callback's, signal
        wait's or timer's own)."""
        for at, kind in deadlines.first(row):
            self._deadlines.push(at, row.token, kind)

    def _ticket(self, row: TaskRow) -> None:
        """Tell the engine running a callback task's execution its token and URLs."""
        record = self._table.get(row.execution_id)
        link = self._placement.engine_of(record) if record is not None else None
        if record is not None and link is not None and self._open.get(row.token) is row:
            link.task_scheduled(ticket(row, record.placement.lease, self.base_url))

    def delivered(self, record: ExecutionRecord, d: Delivered) -> None:
        """How a callback task's request went: accepted (the task runs: the service has it),
        or refused (the task fails with the engine's message; retry decides)."""
        row = self._open.get(d.token)
        if row is None or row.execution_id != record.id or row.kind != "callback":
            return  # ended already (a callback came before the accept answer), or not ours
        if not d.ok:
            self._end(
                row, "failed", d.error or "the request was not accepted", retryable=d.retryable
            )
            return
        if row.status == "pending":
            row.status = "running"
            row.started_at = self._clock()
            row.deliveries += 1
            self._journal.task(row.copy())
            self._announce.task(row, "task.started", "the service accepted the request")

    def _add(self, row: TaskRow) -> None:
        self._open[row.token] = row
        self._by_key[task_key(row)] = row
        self._by_execution.setdefault(row.execution_id, set()).add(row.token)

    def _offer(self, row: TaskRow) -> None:
        """The task is durable: workers may have it."""
        if self._open.get(row.token) is row and row.status == "pending":
            self._make_pending(row)

    def _make_pending(self, row: TaskRow, *, first: bool = False) -> None:
        queue = self._pending.setdefault(row.queue, collections.deque())
        if first:
            queue.appendleft(row.token)
        else:
            queue.append(row.token)
        now = self._clock()
        self._pending_since[row.token] = now
        if row.schedule_to_start_s:
            self._deadlines.push(now + row.schedule_to_start_s, row.token, SCHEDULE_TO_START)
        self.pump(row.queue)

    # --- workers -----------------------------------------------------------------------------

    def pump(self, queue: str) -> None:
        """Hand ``queue``'s pending tasks to its workers while they have free slots."""
        pending = self._pending.get(queue)
        while pending:
            session = self._hub.pick(queue)
            if session is None:
                return
            token = pending.popleft()
            row = self._open.get(token)
            if row is not None and row.status == "pending":
                self._start(row, session)
        if pending is not None and not pending:
            del self._pending[queue]

    def _start(self, row: TaskRow, session: WorkerSession, *, push: bool = True) -> None:
        now = self._clock()
        waited = now - self._pending_since.pop(row.token, now)
        row.status = "running"
        row.worker = session.worker_id
        row.started_at = now
        row.heartbeat_at = None
        row.deliveries += 1
        session.running.add(row.token)
        self._journal.task(row.copy())
        if row.timeout_s:
            self._deadlines.push(now + row.timeout_s, row.token, TIMEOUT)
        if row.heartbeat_s:
            self._deadlines.push(now + row.heartbeat_s, row.token, HEARTBEAT)
        self._announce.task(row, "task.started", f"worker {session.worker_id} took it", worker=True)
        self.started(row, waited)
        if push:
            session.push(task_to_pb(row))

    def worker_joined(
        self, session: WorkerSession, old: WorkerSession | None, running: Iterable[str]
    ) -> None:
        """A worker said hello (``old``: the stream of the same id it replaces), still running
        ``running`` from before: those that are still its own, or waiting for anyone, stay or
        become its own; the rest of the old stream's are offered again."""
        claimed = set(running)
        for token in claimed:
            row = self._open.get(token)
            if row is not None and row.status == "pending":
                self._start(row, session, push=False)
            elif row is not None and row.worker == session.worker_id:
                session.running.add(token)
            else:  # ended, or another worker has it now: the worker drops it
                session.ack(token, wpb.VERDICT_REFUSED, "no longer yours: it ended or moved on")
        if old is not None:
            left = old.running - claimed
            old.running.clear()
            self._requeue(left, f"worker {old.worker_id} reconnected without it")
        for queue in session.queues:
            self.pump(queue)

    def worker_left(self, session: WorkerSession) -> None:
        """A worker's stream ended: its tasks are offered again at once."""
        tokens, session.running = session.running, set()
        self._requeue(tokens, f"worker {session.worker_id} went away")

    def release(self, session: WorkerSession, tokens: Iterable[str]) -> None:
        """The worker gives tasks back without an answer: it is stopping, or it had no free
        slot after all (a cancelled sync handler still runs). Unless it drains, it gets no new
        task for ``RELEASE_PAUSE`` seconds, so a task does not bounce between it and the board."""
        mine = [t for t in tokens if t in session.running]
        session.running.difference_update(mine)
        if mine and not session.draining and not session.paused:
            session.paused = True
            asyncio.get_running_loop().call_later(RELEASE_PAUSE, self._unpause, session)
        self._requeue(mine, f"worker {session.worker_id} released it")

    def _unpause(self, session: WorkerSession) -> None:
        session.paused = False
        if not session.closed:
            self.slot_freed(session)

    def _requeue(self, tokens: Iterable[str], why: str) -> None:
        for token in tokens:
            row = self._open.get(token)
            if row is None or row.status != "running":
                continue
            row.status = "pending"
            row.started_at = None
            self._journal.task(row.copy())
            log.info(
                "%s of %s (%s): offered again, %s", describe(row), row.execution_id, row.queue, why
            )
            self._make_pending(row, first=True)  # which hands it on, if a worker is free

    def slot_freed(self, session: WorkerSession) -> None:
        for queue in session.queues:
            self.pump(queue)

    async def durable(self) -> None:
        await self._journal.durable()

    def when_durable(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything written so far is committed."""
        self._journal.after_durable(callback)

    # --- answers -----------------------------------------------------------------------------

    async def complete(self, token: str, output_json: bytes, outcome: str = "") -> Answered:
        """A completion by token (``outcome``, if given, routes ``next``); see the module
        docstring for the verdicts."""
        return await self._answer(token, "completed", output_json=output_json, outcome=outcome)

    def complete_now(self, row: TaskRow, output_json: bytes, outcome: str) -> None:
        """Complete an unfinished task in memory at once (a signal for a wait)."""
        row.output_json = output_json
        row.outcome = outcome or None
        self._end(row, "completed", None, retryable=False)

    async def fail(
        self, token: str, message: str, *, kind: str = "", retryable: bool = True
    ) -> Answered:
        """A failure by token: the node attempt fails with ``message`` (``kind``: the error's
        type, for people); ``retryable`` False fails the node without retry."""
        error = f"{kind}: {message}" if kind else message
        return await self._answer(token, "failed", error=error, retryable=retryable)

    async def _answer(
        self,
        token: str,
        status: str,
        *,
        output_json: bytes | None = None,
        error: str | None = None,
        retryable: bool = False,
        outcome: str = "",
    ) -> Answered:
        """End the task ``status`` with that output or error; for an ended task, the same
        answer again is a duplicate, any other is refused."""
        row = await self._find(token)
        if row is None:
            return Answered(Verdict.NOT_FOUND, None, f"no task with token {token!r}")
        if row.finished:
            same = row.status == status and row.output_json == output_json and row.error == error
            if same and (row.outcome or "") == outcome:
                return Answered(Verdict.DUPLICATE, row)
            return self._refuse(row, "complete" if status == "completed" else "fail")
        row.output_json = output_json
        row.outcome = outcome or None
        self._end(row, status, error, retryable=retryable)
        return Answered(Verdict.ACCEPTED, row)

    async def heartbeat(self, token: str, details_json: bytes | None) -> Answered:
        """A sign of life (with optional progress details) for a running task."""
        row = await self._find(token)
        if row is None:
            return Answered(Verdict.NOT_FOUND, None, f"no task with token {token!r}")
        if row.finished:
            return self._refuse(row, "heartbeat")
        row.heartbeat_at = self._clock()
        if details_json and details_json != row.details_json:
            row.details_json = details_json
            self._journal.task(row.copy())
        if row.heartbeat_s and row.status == "running":
            self._deadlines.push(row.heartbeat_at + row.heartbeat_s, row.token, HEARTBEAT)
        return Answered(Verdict.ACCEPTED, row)

    async def _find(self, token: str) -> TaskRow | None:
        row = self.get(token)
        if row is None and token:
            row = await self._store.get_task(token)
            if row is not None and row.finished:
                self._keep_finished(row)
            elif row is not None:  # not loaded: it cannot be unfinished and unknown
                row = self.get(token) or row
        return row

    def _refuse(self, row: TaskRow, what: str) -> Answered:
        self.refused(row.queue, what)
        why = f": {row.error}" if row.error and row.status != "failed" else ""
        return Answered(
            Verdict.REFUSED,
            row,
            f"{describe(row)} (attempt {row.attempt}) of execution {row.execution_id} is "
            f"already {row.status.replace('_', ' ')}{why}",
        )

    def _end(self, row: TaskRow, status: str, error: str | None, *, retryable: bool) -> None:
        """The task ends now: written, its worker's slot freed, its engine told once durable."""
        row.status = status
        row.error = error
        row.retryable = retryable
        row.finished_at = self._clock()
        del self._open[row.token]
        self._pending_since.pop(row.token, None)
        tokens = self._by_execution.get(row.execution_id)
        if tokens is not None:
            tokens.discard(row.token)
            if not tokens:
                del self._by_execution[row.execution_id]
        self._keep_finished(row)
        session = self._hub.get(row.worker) if row.worker else None
        if session is not None and row.token in session.running:
            session.running.discard(row.token)
            if status in ("cancelled", "timed_out"):
                session.cancel(row.token, error or status)
            self.slot_freed(session)
        self._journal.task(row.copy())
        message = f"{what(row)} {status.replace('_', ' ')}"
        self._announce.task(row, f"task.{status}", f"{message}: {error}" if error else message)
        self.ended(row)
        if status != "cancelled":
            self.unseen.add(row)
            record = self._table.get(row.execution_id)
            if record is not None and record.status is ExecutionStatus.WAITING:
                # parked: woken in the same commit as this end, so a crash loses neither
                self.wake(record, f"{what(row)} {row.node} {status.replace('_', ' ')}")
            self._journal.after_durable(lambda: self._tell(row))

    def _keep_finished(self, row: TaskRow) -> None:
        kept = self._finished
        kept[row.token] = row
        kept.move_to_end(row.token)
        while len(kept) > FINISHED_KEPT:
            _, old = kept.popitem(last=False)
            running = self._table.get(old.execution_id)
            if running is not None and not running.finished:  # it may ask for it again
                self._forgot.add(old.execution_id)
            key = task_key(old)
            if self._by_key.get(key) is old:
                del self._by_key[key]

    def _tell(self, row: TaskRow) -> None:
        """Send an ended task's answer to the engine running its execution, if it is placed."""
        record = self._table.get(row.execution_id)
        link = self._placement.engine_of(record) if record is not None else None
        if record is None or link is None:
            # ended, or not placed now: its engine asks again when it gets there (a parked
            # one was woken by ``_end``, or is by parking's ``EndedTasks`` check)
            return
        link.task_finished(answer(row, record.placement.lease))

    # --- parked executions -------------------------------------------------------------------

    def has_open(self, execution_id: str) -> bool:
        """Whether the execution has an unfinished task."""
        return execution_id in self._by_execution

    def waiting_for(self, execution_id: str, signal: str) -> TaskRow | None:
        """The oldest unfinished wait of the execution for that signal, if any."""
        found: TaskRow | None = None
        for token in self._by_execution.get(execution_id, ()):
            row = self._open[token]
            if (
                row.kind == "signal"
                and row.queue == signal
                and (found is None or (row.created_at, row.token) < (found.created_at, found.token))
            ):
                found = row
        return found

    # --- executions that end -----------------------------------------------------------------

    def execution_ended(self, record: ExecutionRecord) -> None:
        """Cancel the execution's unfinished tasks (their workers are told)."""
        self._forgot.discard(record.id)
        self.unseen.forget(record.id)
        tokens = self._by_execution.get(record.id)
        if not tokens:
            return
        why = f"execution {record.id} {record.status}"
        if record.status is ExecutionStatus.CANCELLED and record.cancel_reason:
            why += f": {record.cancel_reason}"
        for token in list(tokens):
            row = self._open.get(token)
            if row is not None:
                self._end(row, "cancelled", why, retryable=False)

    # --- deadlines ---------------------------------------------------------------------------

    def expire(self) -> int:
        """End the tasks whose deadline has passed; returns how many."""
        count = 0
        for token, kind, now in self._deadlines.passed():
            row = self._open.get(token)
            if row is None:
                continue
            at = deadlines.due(row, kind, self._pending_since.get(token))
            if at is None:
                continue
            if at > now:  # moved (a heartbeat came, it was taken again): look again then
                self._deadlines.push(at, token, kind)
                continue
            if row.kind == "timer" and kind is TIMEOUT:
                self.complete_now(row, row.args_json or b"null", "")  # the sleep is over
                continue
            self._end(row, "timed_out", deadlines.message(row, kind), retryable=True)
            count += 1
        return count

    async def run(self) -> None:
        """End tasks as their deadlines pass, until cancelled (the wiring supervises it)."""
        await self._deadlines.run(self.expire)
