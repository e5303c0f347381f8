"""``ExecutionService``: the execution operations both APIs (and the trigger scheduler) call.

* ``start`` validates (the version exists and is not deprecated, the inputs match its
  declaration, the queue has room), creates, and returns once the new execution is durable. With
  an idempotency key, the same key returns the execution the first call created — also after a
  restart and after it finished — and the same key with other arguments is ``AlreadyExists``;
  concurrent calls with one key are serialised.
* ``get`` finds an execution in memory, else reads it back from the store (not kept in memory).
* ``list_executions`` reads the store after everything written so far is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from engine.definition.values import resolve_inputs
from engine.state.events import ExecutionStatus
from engine.state.result import ExecutionResult
from orchestrator.errors import AlreadyExists, FailedPrecondition, NotFound
from orchestrator.executions.record import ExecutionRecord
from orchestrator.executions.table import ExecutionTable
from orchestrator.journal import Journal
from orchestrator.lifecycle import Lifecycle
from orchestrator.placement import Placement
from orchestrator.recovery import pinned
from orchestrator.registry import Registry
from orchestrator.rows import from_row
from orchestrator.store import ExecutionRow, Store

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
    ) -> None:
        self._registry = registry
        self._store = store
        self._table = table
        self._lifecycle = lifecycle
        self._placement = placement
        self._journal = journal
        self._key_locks: dict[str, asyncio.Lock] = {}

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
        status: ExecutionStatus | None = None,
        parent_id: str = "",
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[ExecutionRow]:
        """Newest first, from the store (after everything written so far is committed);
        ``before`` is the (created_at, id) of the last row of the previous page."""
        await self._journal.durable()
        return await self._store.list_executions(
            workflow=workflow,
            status=str(status) if status is not None else "",
            parent_id=parent_id,
            limit=max(1, min(limit, MAX_PAGE)),
            before=before,
        )

    async def cancel(self, execution_id: str, reason: str = "") -> ExecutionRecord:
        """Ask an execution and its children to stop; a finished one is returned as it is."""
        record = await self.get(execution_id)
        if not record.finished:
            self._lifecycle.cancel(record, reason or "cancelled by request")
        return record

    async def wait(self, execution_id: str) -> ExecutionRecord:
        """Return once the execution's end is durable."""
        record = await self.get(execution_id)
        await record.done.wait()
        return record
