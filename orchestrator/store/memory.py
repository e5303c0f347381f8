"""``MemoryStore``: the store in dictionaries, for tests and benchmarks' baseline.

Same semantics as ``SqlStore`` (latest put wins, a task or a signal keeps the identity of its first
put, a duplicate node run or task key is ignored, newest-first listing, pruning in batches) except
that writes are visible at once and nothing survives the process. Rows are copied in and out, so
callers may mutate what they get. There is no group commit, so ``committed`` is there for the wiring
to connect to but is never emitted.

Node runs and events, the bulk of it, are kept as plain tuples of their fields rather than row
objects. Their fields are all strings, numbers, bytes or None, so the garbage collector stops
tracking them: a long benchmark's history would otherwise make every full collection scan
hundreds of thousands of rows (pauses of 100-400 ms on the benchmark machine, the p99 latency).
"""

from __future__ import annotations

import bisect
import collections
import copy
import dataclasses
import operator
from collections.abc import Sequence
from typing import Any

from engine.state.events import TERMINAL_EXECUTION_STATUSES
from orchestrator.signals import Signal
from orchestrator.store.base import (
    TASK_IDENTITY,
    UNFINISHED_TASK_STATUSES,
    EventRow,
    ExecutionRow,
    NodeRunRow,
    SignalRow,
    StoreError,
    TaskRow,
    TriggerRow,
    WorkflowRow,
)

_EVENT = operator.attrgetter(*(f.name for f in dataclasses.fields(EventRow)))
_NODE_RUN = operator.attrgetter(*(f.name for f in dataclasses.fields(NodeRunRow)))
"""A row's fields as a tuple, in the order its constructor takes them."""
_SEQ, _AT, _WORKFLOW, _EXECUTION = (
    [f.name for f in dataclasses.fields(EventRow)].index(name)
    for name in ("seq", "at", "workflow", "execution_id")
)
_POSITION = [f.name for f in dataclasses.fields(NodeRunRow)].index("position")
_TASK_PROGRESS = tuple(f.name for f in dataclasses.fields(TaskRow) if f.name not in TASK_IDENTITY)
"""What a later put of a task changes."""


_TaskKey = tuple[str, str, int, int | None, int]
"""(execution, node, visit, item, attempt)."""


def _task_key(row: TaskRow) -> _TaskKey:
    return row.execution_id, row.node, row.visit, row.item, row.attempt


class MemoryStore:
    """The store in dictionaries; see the module docstring."""

    url = "memory://"

    def __init__(self) -> None:
        self.committed: Signal[[float, int]] = Signal("committed")
        """Never emitted: writes apply at once, there is no group commit."""
        self._workflows: dict[tuple[str, str], WorkflowRow] = {}
        self._executions: dict[str, ExecutionRow] = {}
        self._by_idempotency_key: dict[str, str] = {}
        self._by_child_key: dict[str, str] = {}
        self._node_runs: dict[str, dict[tuple[str, int, int | None, int], tuple[Any, ...]]] = {}
        """Each execution's node runs by (node, visit, item, attempt)."""
        self._events: list[tuple[Any, ...]] = []  # EventRow fields, ordered by seq
        self._seqs: list[int] = []
        self._triggers: dict[tuple[str, str], TriggerRow] = {}
        self._tasks: dict[str, TaskRow] = {}
        self._task_tokens: dict[_TaskKey, str] = {}
        """Each task's token by its key (execution, node, visit, item, attempt)."""
        self._signals: dict[str, SignalRow] = {}

    def __repr__(self) -> str:
        return "MemoryStore()"

    async def open(self) -> None:
        pass

    async def claim(self, owner: str) -> None:
        """Nothing to claim: the memory store lives and dies with its one orchestrator."""

    async def close(self) -> None:
        pass

    # --- writes -------------------------------------------------------------------------------

    def put_execution(self, row: ExecutionRow) -> None:
        old = self._executions.get(row.id)
        if old is not None:
            if old.idempotency_key is not None:
                self._by_idempotency_key.pop(old.idempotency_key, None)
            if old.child_key is not None:
                self._by_child_key.pop(old.child_key, None)
        self._executions[row.id] = copy.copy(row)
        if row.idempotency_key is not None:
            self._by_idempotency_key[row.idempotency_key] = row.id
        if row.child_key is not None:
            self._by_child_key[row.child_key] = row.id

    def put_task(self, row: TaskRow) -> None:
        stored = self._tasks.get(row.token)
        if stored is not None:
            for name in _TASK_PROGRESS:
                setattr(stored, name, getattr(row, name))
            return
        key = _task_key(row)
        if key in self._task_tokens:
            return  # another token holds that key: ignored, as in the SQL store
        self._task_tokens[key] = row.token
        self._tasks[row.token] = copy.copy(row)

    def put_signal(self, row: SignalRow) -> None:
        stored = self._signals.get(row.id)
        if stored is None:
            self._signals[row.id] = row.copy()
        else:  # only its consumption changes
            stored.consumed_by = row.consumed_by
            stored.consumed_at = row.consumed_at

    def add_node_run(self, row: NodeRunRow) -> None:
        journal = self._node_runs.setdefault(row.execution_id, {})
        journal.setdefault((row.node, row.visit, row.item, row.attempt), _NODE_RUN(row))

    def add_events(self, rows: Sequence[EventRow]) -> None:
        seqs = self._seqs
        for row in rows:
            if not seqs or row.seq > seqs[-1]:  # the usual case: the next event
                seqs.append(row.seq)
                self._events.append(_EVENT(row))
                continue
            i = bisect.bisect_left(seqs, row.seq)
            if i < len(seqs) and seqs[i] == row.seq:
                continue  # already stored, as the SQL store ignores it
            seqs.insert(i, row.seq)
            self._events.insert(i, _EVENT(row))

    async def durable(self) -> None:
        pass

    # --- workflows ----------------------------------------------------------------------------

    async def save_workflow(self, row: WorkflowRow) -> None:
        key = (row.name, row.version)
        if key in self._workflows:
            raise StoreError(
                f"store {self.url}: workflow {row.name} {row.version} is already stored"
            )
        self._workflows[key] = copy.copy(row)

    async def set_deprecated(self, name: str, version: str, deprecated: bool) -> None:
        row = self._workflows.get((name, version))
        if row is not None:
            row.deprecated = deprecated

    async def delete_workflow(self, name: str, version: str) -> None:
        self._workflows.pop((name, version), None)

    async def load_workflows(self) -> list[WorkflowRow]:
        return [copy.copy(row) for row in self._workflows.values()]

    # --- executions ---------------------------------------------------------------------------

    async def get_execution(self, execution_id: str) -> ExecutionRow | None:
        row = self._executions.get(execution_id)
        return None if row is None else copy.copy(row)

    async def find_execution(
        self, *, idempotency_key: str | None = None, child_key: str | None = None
    ) -> ExecutionRow | None:
        if idempotency_key is None and child_key is None:
            return None
        ids = set()
        if idempotency_key is not None:
            ids.add(self._by_idempotency_key.get(idempotency_key))
        if child_key is not None:
            ids.add(self._by_child_key.get(child_key))
        if len(ids) != 1:
            return None
        (execution_id,) = ids
        return None if execution_id is None else await self.get_execution(execution_id)

    async def list_executions(
        self,
        *,
        workflow: str = "",
        version: str = "",
        status: str = "",
        parent_id: str = "",
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
        summary: bool = False,
    ) -> list[ExecutionRow]:
        rows = [
            row
            for row in self._executions.values()
            if (not workflow or row.workflow == workflow)
            and (not version or row.version == version)
            and (not status or row.status == status)
            and (not parent_id or row.parent_id == parent_id)
            and (created_after is None or row.created_at > created_after)
            and (created_before is None or row.created_at < created_before)
            and (before is None or (row.created_at, row.id) < before)
        ]
        rows.sort(key=lambda row: (row.created_at, row.id), reverse=True)
        page = [copy.copy(row) for row in rows[: max(limit, 0)]]
        if summary:
            for row in page:
                row.inputs_json, row.result_json = b"", None
        return page

    async def count_executions(self, *, since: float, workflow: str = "") -> dict[str, int]:
        counts = collections.Counter(
            row.status
            for row in self._executions.values()
            if row.created_at >= since and (not workflow or row.workflow == workflow)
        )
        return dict(counts)

    async def unfinished_executions(self) -> list[ExecutionRow]:
        rows = [
            row
            for row in self._executions.values()
            if row.status not in TERMINAL_EXECUTION_STATUSES
        ]
        rows.sort(key=lambda row: (row.created_at, row.id))
        return [copy.copy(row) for row in rows]

    async def node_runs(self, execution_ids: Sequence[str]) -> dict[str, list[NodeRunRow]]:
        journals: dict[str, list[NodeRunRow]] = {}
        for execution_id in execution_ids:
            runs = self._node_runs.get(execution_id)
            if runs:
                ordered = sorted(runs.values(), key=operator.itemgetter(_POSITION))
                journals[execution_id] = [NodeRunRow(*row) for row in ordered]
        return journals

    async def prune(self, finished_before: float, batch: int) -> int:
        doomed = sorted(
            (
                row
                for row in self._executions.values()
                if row.status in TERMINAL_EXECUTION_STATUSES
                and row.finished_at is not None
                and row.finished_at < finished_before
            ),
            key=lambda row: row.finished_at or 0.0,
        )[: max(batch, 0)]
        ids = {row.id for row in doomed}
        if ids:
            for task in [task for task in self._tasks.values() if task.execution_id in ids]:
                del self._tasks[task.token]
                del self._task_tokens[_task_key(task)]
            for signal in [s for s in self._signals.values() if s.execution_id in ids]:
                del self._signals[signal.id]
        for row in doomed:
            del self._executions[row.id]
            self._node_runs.pop(row.id, None)
            if row.idempotency_key is not None:
                self._by_idempotency_key.pop(row.idempotency_key, None)
            if row.child_key is not None:
                self._by_child_key.pop(row.child_key, None)
        unattached = {
            event[_SEQ]
            for event in self._events
            if not event[_EXECUTION] and event[_AT] < finished_before
        }
        unattached = set(sorted(unattached)[: max(batch, 0)])
        if ids or unattached:
            kept = [
                event
                for event in self._events
                if event[_EXECUTION] not in ids and event[_SEQ] not in unattached
            ]
            if len(kept) != len(self._events):
                self._events = kept
                self._seqs = [event[_SEQ] for event in kept]
        return len(doomed)

    # --- tasks --------------------------------------------------------------------------------

    async def get_task(self, token: str) -> TaskRow | None:
        row = self._tasks.get(token)
        return None if row is None else copy.copy(row)

    async def find_task(
        self, execution_id: str, node: str, visit: int, attempt: int, *, item: int | None = None
    ) -> TaskRow | None:
        token = self._task_tokens.get((execution_id, node, visit, item, attempt))
        return None if token is None else await self.get_task(token)

    async def list_tasks(
        self, *, queue: str = "", status: str = "", execution_id: str = "", limit: int = 100
    ) -> list[TaskRow]:
        rows = [
            row
            for row in self._tasks.values()
            if (not queue or row.queue == queue)
            and (not status or row.status == status)
            and (not execution_id or row.execution_id == execution_id)
        ]
        rows.sort(key=lambda row: (row.created_at, row.token), reverse=True)
        return [copy.copy(row) for row in rows[: max(limit, 0)]]

    async def unfinished_tasks(self) -> list[TaskRow]:
        rows = [row for row in self._tasks.values() if row.status in UNFINISHED_TASK_STATUSES]
        rows.sort(key=lambda row: (row.created_at, row.token))
        return [copy.copy(row) for row in rows]

    # --- signals ------------------------------------------------------------------------------

    async def unconsumed_signals(self) -> list[SignalRow]:
        executions = self._executions
        rows = [
            row
            for row in self._signals.values()
            if row.consumed_by is None
            and (execution := executions.get(row.execution_id)) is not None
            and not execution.finished
        ]
        rows.sort(key=lambda row: (row.sent_at, row.id))
        return [row.copy() for row in rows]

    async def list_signals(self, execution_id: str) -> list[SignalRow]:
        rows = [row for row in self._signals.values() if row.execution_id == execution_id]
        rows.sort(key=lambda row: (row.sent_at, row.id))
        return [row.copy() for row in rows]

    # --- events -------------------------------------------------------------------------------

    async def last_event_seq(self) -> int:
        return self._seqs[-1] if self._seqs else 0

    async def events(
        self,
        *,
        after: int = 0,
        execution_id: str = "",
        workflow: str = "",
        limit: int = 1000,
        newest: bool = False,
        before: int | None = None,
    ) -> list[EventRow]:
        found: list[EventRow] = []
        if limit <= 0:
            return found
        end = len(self._seqs) if before is None else bisect.bisect_left(self._seqs, before)
        candidates = self._events[bisect.bisect_right(self._seqs, after) : end]
        for event in reversed(candidates) if newest else candidates:
            if (not execution_id or event[_EXECUTION] == execution_id) and (
                not workflow or event[_WORKFLOW] == workflow
            ):
                found.append(EventRow(*event))
                if len(found) >= limit:
                    break
        if newest:
            found.reverse()
        return found

    # --- triggers -----------------------------------------------------------------------------

    async def trigger_states(self, workflow: str = "") -> list[TriggerRow]:
        rows = [row for row in self._triggers.values() if not workflow or row.workflow == workflow]
        rows.sort(key=lambda row: (row.workflow, row.trigger))
        return [copy.copy(row) for row in rows]

    async def save_trigger_state(self, row: TriggerRow) -> None:
        self._triggers[(row.workflow, row.trigger)] = copy.copy(row)

    async def claim_trigger(
        self,
        workflow: str,
        trigger: str,
        *,
        expected_next: float | None,
        new_next: float,
        schedule: str,
        owner: str,
        fired_at: float | None = None,
    ) -> bool:
        row = self._triggers.get((workflow, trigger))
        if row is None and expected_next is None:
            row = self._triggers[(workflow, trigger)] = TriggerRow(workflow, trigger)
        if row is None or row.next_fire_at != expected_next:
            return False
        row.next_fire_at = new_next
        row.schedule = schedule
        row.owner = owner
        if fired_at is not None:
            row.last_fire_at = fired_at
        return True

    async def set_trigger_execution(self, workflow: str, trigger: str, execution_id: str) -> None:
        row = self._triggers.get((workflow, trigger))
        if row is not None:
            row.last_execution_id = execution_id

    async def delete_trigger_state(self, workflow: str, trigger: str) -> bool:
        return self._triggers.pop((workflow, trigger), None) is not None
