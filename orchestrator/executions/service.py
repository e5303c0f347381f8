"""``ExecutionService``: the execution operations both APIs (and the trigger scheduler) call.

* ``start`` validates (the version exists and is not deprecated, the inputs match its
  declaration, the queue has room), creates, and returns once the new execution is durable. With
  an idempotency key, the same key returns the execution the first call created — also after a
  restart and after it finished — and the same key with other arguments is ``AlreadyExists``;
  concurrent calls with one key are serialised.
* ``get`` finds an execution in memory, else reads it back from the store (not kept in memory).
* ``list_executions`` and ``counts`` read the store after everything written so far is
  committed.
* ``retry`` makes a new execution of an ended one's version and inputs that reuses what the
  original finished (``engine.state.reuse``) and runs the rest, and links the two both ways
  (docs/retry.md). One retry per execution: a second one is refused naming the first (two
  retries of one execution would repeat the same side effects concurrently); retry the retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from engine.definition.values import resolve_inputs
from engine.errors import InputError, Issue
from engine.state.events import ExecutionStatus, NodeResult
from engine.state.result import ExecutionResult
from engine.state.reuse import ReusePlan, plan_reuse
from orchestrator.errors import AlreadyExists, FailedPrecondition, NotFound, NotRetryable
from orchestrator.executions.record import ExecutionRecord
from orchestrator.executions.table import ExecutionTable
from orchestrator.journal import Journal
from orchestrator.lifecycle import Lifecycle
from orchestrator.placement import Placement
from orchestrator.recovery import pinned
from orchestrator.registry import Registry, WorkflowVersion
from orchestrator.rows import from_row, node_result
from orchestrator.store import ExecutionRow, Store
from orchestrator.waits.receipt import SignalReceipt
from orchestrator.waits.signals import Signals

MAX_PAGE = 1000
"""The most executions one list call returns."""


class ExecutionService:
    """Start, read, list, cancel and wait for executions; see the module docstring."""

    def __init__(
        self,
        *,
        registry: Registry,
        store: Store,
        table: ExecutionTable,
        lifecycle: Lifecycle,
        placement: Placement,
        journal: Journal,
        signals: Signals | None = None,
    ) -> None:
        self._registry = registry
        self._signals = signals
        self._store = store
        self._table = table
        self._lifecycle = lifecycle
        self._placement = placement
        self._journal = journal
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._retry_locks: dict[str, asyncio.Lock] = {}

    async def start(
        self,
        workflow: str,
        version: str = "",
        inputs: Mapping[str, Any] | None = None,
        *,
        routing_key: str = "",
        idempotency_key: str = "",
    ) -> ExecutionRecord:
        """Validate, persist and queue a new execution; returns once it is durable.

        Raises NotFound, InputError, FailedPrecondition (deprecated version), QueueFull, or
        AlreadyExists (the idempotency key was used for another request).
        """
        if not idempotency_key:
            record = self._create(workflow, version, inputs, routing_key, None)
            await self._journal.durable()
            return record
        lock = self._key_locks.setdefault(idempotency_key, asyncio.Lock())
        try:
            async with lock:
                found = await self._by_idempotency_key(idempotency_key)
                if found is not None:
                    self._check_same(found, idempotency_key, workflow, version, inputs)
                    record = found
                else:
                    record = self._create(workflow, version, inputs, routing_key, idempotency_key)
                await self._journal.durable()
                return record
        finally:
            if not lock.locked():
                self._key_locks.pop(idempotency_key, None)

    def _create(
        self,
        workflow: str,
        version: str,
        inputs: Mapping[str, Any] | None,
        routing_key: str,
        idempotency_key: str | None,
    ) -> ExecutionRecord:
        wf = self._registry.get(workflow, version)
        if wf.deprecated:
            raise FailedPrecondition(
                f"workflow {wf.name} version {wf.version} is deprecated: start another version"
            )
        resolved = resolve_inputs(wf.definition, inputs or {})
        self._placement.check_room()
        return self._lifecycle.create(
            wf, resolved, routing_key=routing_key, idempotency_key=idempotency_key
        )

    async def _by_idempotency_key(self, key: str) -> ExecutionRecord | None:
        record = self._table.by_idempotency_key(key)
        if record is not None:
            return record
        row = await self._store.find_execution(idempotency_key=key)
        return None if row is None else self._read_back(row)

    def _read_back(self, row: ExecutionRow) -> ExecutionRecord:
        return from_row(row, pinned(self._registry, row.workflow, row.version))

    def _check_same(
        self,
        record: ExecutionRecord,
        key: str,
        workflow: str,
        version: str,
        inputs: Mapping[str, Any] | None,
    ) -> None:
        same = record.name == workflow and (not version or version == record.version)
        if same and record.wf is not None:
            try:
                same = resolve_inputs(record.wf.definition, inputs or {}) == record.inputs
            except Exception:
                same = False
        if not same:
            raise AlreadyExists(
                f"idempotency key {key!r} already started execution {record.id} "
                f"({record.name} {record.version}) with other arguments"
            )

    async def get(self, execution_id: str) -> ExecutionRecord:
        """Raises NotFound."""
        record = self._table.get(execution_id)
        if record is not None:
            return record
        row = await self._store.get_execution(execution_id)
        if row is None:
            raise NotFound(f"execution {execution_id!r} not found")
        return self._read_back(row)

    def result(self, record: ExecutionRecord) -> ExecutionResult:
        """The result as it stands: final, or rebuilt from the checkpoint."""
        return self._lifecycle.result(record)

    async def list_executions(
        self,
        *,
        workflow: str = "",
        version: str = "",
        status: ExecutionStatus | None = None,
        parent_id: str = "",
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
        summary: bool = False,
    ) -> list[ExecutionRow]:
        """Newest first, from the store (after everything written so far is committed);
        ``before`` is the (created_at, id) of the last row of the previous page, and
        ``created_after`` / ``created_before`` bound ``created_at`` (Unix seconds, strictly).
        With ``summary`` the rows have no inputs or result (``Store.list_executions``)."""
        await self._journal.durable()
        return await self._store.list_executions(
            workflow=workflow,
            version=version,
            status=str(status) if status is not None else "",
            parent_id=parent_id,
            created_after=created_after,
            created_before=created_before,
            limit=max(1, min(limit, MAX_PAGE)),
            before=before,
            summary=summary,
        )

    async def counts(self, since: float, workflow: str = "") -> dict[str, int]:
        """How many executions (of ``workflow``, when given) were created at or after
        ``since`` (Unix seconds), by status, from the store once everything written so far is
        committed; a status none has is left out."""
        await self._journal.durable()
        return await self._store.count_executions(since=since, workflow=workflow)

    async def cancel(self, execution_id: str, reason: str = "") -> ExecutionRecord:
        """Ask an execution and its children to stop; a finished one is returned as it is."""
        record = await self.get(execution_id)
        if not record.finished:
            self._lifecycle.cancel(record, reason or "cancelled by request")
        return record

    async def signal(
        self, execution_id: str, name: str, *, outcome: str = "", data_json: bytes = b"null"
    ) -> SignalReceipt:
        """Send a signal: the first ``wait`` node waiting for ``name`` takes it (its output the
        data, its outcome routing ``next``), or it is kept until one does. Returns once durable.

        Raises NotFound, FailedPrecondition (a finished execution), InvalidSignal (no ``wait``
        node of its workflow waits for that name), CodecError (data that is not JSON).
        """
        assert self._signals is not None, "signals are not wired"
        record = await self.get(execution_id)
        receipt = self._signals.send(record, name, outcome, data_json or b"null")
        await self._journal.durable()
        return receipt

    async def retry(self, execution_id: str, from_node: str | None = None) -> ExecutionRecord:
        """A new execution of an ended one's version and inputs that reuses the results of
        every node that finished well in it and runs the rest: from the nodes that did not, and
        from ``from_node`` (and what follows it) when given. Returns once the retry, its reused
        records and the original's link to it are durable; it is queued then.

        Raises NotFound, NotRetryable (still running, already retried, version deleted,
        completed without ``from_node``, nothing to run again), InputError (no such node) or
        QueueFull.
        """
        lock = self._retry_locks.setdefault(execution_id, asyncio.Lock())
        try:
            async with lock:
                await self._journal.durable()  # an earlier retry's link is readable now
                original = await self.get(execution_id)
                wf, plan = await self._plan_retry(original, from_node)
                self._placement.check_room()
                record = self._lifecycle.create_retry(original, wf, plan)
                original.retried_by = record.id
                self._journal.save(original)
                await self._journal.durable()
                self._lifecycle.enqueue(record)
                return record
        finally:
            if not lock.locked():
                self._retry_locks.pop(execution_id, None)

    async def _plan_retry(
        self, original: ExecutionRecord, from_node: str | None
    ) -> tuple[WorkflowVersion, ReusePlan]:
        """Check that ``original`` can be retried and plan what its retry reuses."""
        what = f"execution {original.id}"
        if not original.finished:
            raise NotRetryable(
                f"{what} is still {original.status}: only an ended execution can be retried "
                "(wait for it, or cancel it first)"
            )
        if original.retried_by is not None:
            raise NotRetryable(
                f"{what} was already retried by execution {original.retried_by}: "
                "retry that one instead"
            )
        wf = pinned(self._registry, original.name, original.version)
        if wf is None:
            raise NotRetryable(
                f"{what} cannot be retried: its workflow {original.name} version "
                f"{original.version} was deleted"
            )
        if from_node is not None and from_node not in wf.definition.by_id:
            raise InputError(
                [Issue("from", f"workflow {wf.name} {wf.version} has no node {from_node!r}")]
            )
        if original.status is ExecutionStatus.COMPLETED and from_node is None:
            raise NotRetryable(
                f'{what} completed: name the node to run again from with --from (REST: "from")'
            )
        journal = original.checkpoint.runs or await self._stored_journal(original.id)
        plan = plan_reuse(wf.definition, journal, original.id, from_node)
        if not plan.start:
            raise NotRetryable(
                f"every node of {what} completed, so a retry would only repeat it: name the "
                "node to run again from with --from"
            )
        return wf, plan

    async def _stored_journal(self, execution_id: str) -> list[NodeResult]:
        rows = (await self._store.node_runs([execution_id])).get(execution_id, [])
        return [node_result(row) for row in rows]

    async def wait(self, execution_id: str) -> ExecutionRecord:
        """Return once the execution's end is durable."""
        record = await self.get(execution_id)
        await record.done.wait()
        return record
