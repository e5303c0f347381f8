"""The orchestrator's service layer: workflows, executions, recovery and retention.

Both APIs (gRPC now, REST in issue 5) call ``Orchestrator``; it never sees protobuf of the public
API. The moving parts (placement, engine reports, failover, sub-workflows) are in
``dispatch.py``; this module adds the public operations and the lifecycle:

* **start**: open the store (migrations run there), load workflow versions, resume every
  unfinished execution (see ``_recover``), then discover engines.
* **restart**: an execution that was placed before the restart waits up to
  ``reattach_timeout`` for its engine to connect and list it as held; then it is attached again
  (nothing is re-run). If its engine connects without it, or never connects, it is re-placed from
  its checkpoint.
* **retention**: finished executions older than ``retention`` seconds are deleted, with their
  node runs and events, in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.definition.diff import DefinitionDiff, diff_definitions
from engine.definition.values import resolve_inputs
from engine.state.events import ExecutionStatus
from engine.state.result import execution_result
from orchestrator.discovery import Discovery, EngineEndpoint
from orchestrator.dispatch import Dispatcher
from orchestrator.errors import AlreadyExists, FailedPrecondition, NotFound, QueueFull
from orchestrator.links import EngineLink
from orchestrator.metrics import OrchestratorMetrics
from orchestrator.monitor import Monitor
from orchestrator.records import ExecutionRecord, from_row
from orchestrator.registry import Registry, WorkflowVersion
from orchestrator.ring import Balancer
from orchestrator.store import ExecutionRow, MemoryStore, Store, WorkflowRow
from orchestrator.triggers import TriggerInfo, TriggerScheduler
from orchestrator.triggers.scheduler import DEFAULT_TRIGGER_INTERVAL

log = logging.getLogger(__name__)

MAX_PAGE = 1000
"""The most executions one list call returns."""


@dataclass(frozen=True, slots=True)
class WorkflowSummary:
    name: str
    latest_version: str
    versions: tuple[str, ...]
    description: str


PRUNE_BATCH = 500


class Orchestrator(Dispatcher):
    """``async with Orchestrator(...)``: the store, discovery, engine links and executions."""

    def __init__(
        self,
        *,
        orchestrator_id: str,
        discovery: Discovery,
        balancer: Balancer,
        store: Store | None = None,
        registry: Registry | None = None,
        monitor: Monitor | None = None,
        health_interval: float = 10.0,
        health_timeout: float = 2.0,
        max_queued: int = 10_000,
        max_depth: int = 10,
        retention: float = 7 * 86400.0,
        reattach_timeout: float = 15.0,
        triggers_enabled: bool = True,
        trigger_interval: float = DEFAULT_TRIGGER_INTERVAL,
    ) -> None:
        super().__init__(
            orchestrator_id=orchestrator_id,
            store=store or MemoryStore(),
            balancer=balancer,
            registry=registry,
            monitor=monitor,
            max_depth=max_depth,
        )
        self._discovery = discovery
        self._health_interval = health_interval
        self._health_timeout = health_timeout
        self._max_queued = max_queued
        self._retention = retention
        self._reattach_timeout = reattach_timeout
        self._keys: dict[str, asyncio.Lock] = {}
        self._by_key: dict[str, str] = {}
        self._background: list[asyncio.Task[None]] = []
        self._started = False
        self._triggers_enabled = triggers_enabled
        self.triggers = TriggerScheduler(self, interval=trigger_interval)
        """Cron triggers: the loop (when enabled) and the API's trigger operations."""
        self.metrics = OrchestratorMetrics(self)
        """Prometheus metrics in a registry of this orchestrator's own: ``metrics.render()``."""

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and resume; raises ``StoreError`` when the store is unusable."""
        if self._started:
            return
        await self.store.open()
        self._started = True
        self.monitor.resume_after(await self.store.last_event_seq())
        await self._load_workflows()
        await self._recover()
        self._background = [
            asyncio.create_task(self._discover(), name="discovery"),
            asyncio.create_task(self._prune_loop(), name="retention"),
        ]
        if self._triggers_enabled:
            self._background.append(asyncio.create_task(self.triggers.run(), name="triggers"))
        if self._orphans:
            self._background.append(
                asyncio.create_task(self._reattach_deadline(), name="reattach deadline")
            )

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, *self._tasks, return_exceptions=True)
        self._background = []
        self.triggers.close()
        await asyncio.gather(*(link.stop() for link in self._links.values()))
        self._links.clear()
        self.monitor.close()
        if self._started:
            self._started = False
            with contextlib.suppress(Exception):
                await self.store.durable()
            await self.store.close()

    async def __aenter__(self) -> Orchestrator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _discover(self) -> None:
        async for endpoints in self._discovery.updates():
            await self._apply_membership(endpoints)

    async def _apply_membership(self, endpoints: Iterable[EngineEndpoint]) -> None:
        wanted = {e.id: e for e in endpoints}
        for link_id in [i for i in self._links if i not in wanted]:
            link = self._links.pop(link_id)
            await link.stop()
            self._balancer.remove(link.id)
            self._evacuate(link, "left discovery")
        for link_id, endpoint in wanted.items():
            current = self._links.get(link_id)
            if current is not None and current.address == endpoint.address:
                continue
            if current is not None:  # same id, new address (a restarted pod)
                await current.stop()
                self._balancer.remove(current.id)
                self._evacuate(current, "moved")
            link = EngineLink(
                endpoint,
                self,
                orchestrator_id=self.id,
                health_interval=self._health_interval,
                health_timeout=self._health_timeout,
            )
            self._links[link_id] = link
            log.info("discovered engine %s at %s", link_id, endpoint.address)
            await link.start()

    # --- recovery ----------------------------------------------------------------------------

    async def _load_workflows(self) -> None:
        rows = await self.store.load_workflows()
        for row in rows:
            self.registry.load(
                row.source, registered_at=row.registered_at, deprecated=row.deprecated
            )
        if rows:
            log.info("loaded %d workflow versions from %s", len(rows), self.store.url)

    async def _recover(self) -> None:
        """Rebuild every unfinished execution from the store and decide where it goes."""
        rows = await self.store.unfinished_executions()
        if not rows:
            return
        journals = await self.store.node_runs([r.id for r in rows if r.placements])
        recovered: list[ExecutionRecord] = []
        for row in rows:
            wf = self._pinned(row)
            record = from_row(row, wf, journals.get(row.id))
            self._remember(record)
            if record.idempotency_key:
                self._by_key[record.idempotency_key] = record.id
            recovered.append(record)
        for record in recovered:
            if record.wf is not None and record.wf.uses:
                for child in await self.store.list_executions(parent_id=record.id, limit=10_000):
                    if child.id not in self._records and child.finished:
                        self._remember(self._child_view(child))
                        self._forget_finished(self._records[child.id])
        for record in recovered:  # oldest first
            if record.wf is None:
                gone = f"workflow {record.name} {record.version} was deleted"
                self._finish_here(record, "", error=gone)
            elif record.cancel_reason is not None:
                self._finish_here(record, record.cancel_reason)
            elif record.placements and record.engine:
                self._orphans[record.id] = record
            else:
                self._enqueue(record)
        log.info(
            "resumed %d unfinished executions: %d wait for their engine to re-attach",
            len(recovered),
            len(self._orphans),
        )

    def _pinned(self, row: ExecutionRow) -> WorkflowVersion | None:
        try:
            return self.registry.get(row.workflow, row.version)
        except NotFound:
            return None

    def _child_view(self, row: ExecutionRow) -> ExecutionRecord:
        return from_row(row, self._pinned(row))

    async def _reattach_deadline(self) -> None:
        await asyncio.sleep(self._reattach_timeout)
        left = sorted(self._orphans.values(), key=lambda r: r.created_at, reverse=True)
        self._orphans.clear()
        for record in left:
            if not record.finished:
                self._publish(
                    record,
                    "execution.failover",
                    message=f"engine {record.engine} did not re-attach it within "
                    f"{self._reattach_timeout:g}s; re-placing from the checkpoint",
                )
                self._enqueue(record, front=True)

    async def _prune_loop(self) -> None:
        interval = min(max(self._retention / 10, 1.0), 300.0)
        while True:
            await self.prune()
            await asyncio.sleep(interval)

    async def prune(self, now: float | None = None) -> int:
        """Delete finished executions older than the retention period; return how many."""
        cutoff = (time.time() if now is None else now) - self._retention
        total = 0
        while True:
            deleted = await self.store.prune(cutoff, PRUNE_BATCH)
            total += deleted
            if deleted < PRUNE_BATCH:
                break
        for execution_id in list(self._recent):
            record = self._records.get(execution_id)
            if record is None or (record.finished_at or 0) >= cutoff:
                break
            self._recent.pop(execution_id)
            self._records.pop(execution_id, None)
        if total:
            log.info("retention: deleted %d executions finished before %s", total, cutoff)
        return total

    # --- workflows ---------------------------------------------------------------------------

    async def register_workflow(self, source: str) -> tuple[WorkflowVersion, bool]:
        """Validate, persist and add a version; see ``Registry`` for the rules."""
        registration = self.registry.prepare(source)
        version = registration.version
        if not registration.created:
            return version, False
        await self.store.save_workflow(
            WorkflowRow(
                name=version.name,
                version=version.version,
                source=version.source,
                document_json=version.snapshot,
                digest=version.digest,
                registered_at=version.registered_at,
            )
        )
        self.registry.add(version)
        self.monitor.publish(
            "workflow.registered",
            workflow=version.name,
            version=version.version,
            message=f"{version.name} {version.version} registered",
        )
        return version, True

    async def deprecate_workflow(
        self, name: str, version: str, deprecated: bool = True
    ) -> WorkflowVersion:
        wf = self.registry.get(name, version)
        await self.store.set_deprecated(wf.name, wf.version, deprecated)
        wf = self.registry.deprecate(name, version, deprecated)
        self.monitor.publish(
            "workflow.deprecated" if deprecated else "workflow.undeprecated",
            workflow=wf.name,
            version=wf.version,
            message=f"{wf.name} {wf.version} {'deprecated' if deprecated else 'in use again'}",
        )
        return wf

    async def delete_workflow(self, name: str, version: str) -> None:
        """Raises FailedPrecondition while a running execution or a dependent uses it."""
        wf = self.registry.get(name, version)
        self.registry.check_delete(name, version, running=self.running_on(wf))
        await self.store.delete_workflow(wf.name, wf.version)
        self.registry.remove(name, version)
        self.monitor.publish(
            "workflow.deleted",
            workflow=wf.name,
            version=wf.version,
            message=f"{wf.name} {wf.version} deleted",
        )

    def workflow_summaries(self) -> list[WorkflowSummary]:
        """Every registered workflow name with its versions, oldest first."""
        out = []
        for name in self.registry.names():
            versions = self.registry.versions(name)
            out.append(
                WorkflowSummary(
                    name=name,
                    latest_version=versions[-1].version,
                    versions=tuple(v.version for v in versions),
                    description=versions[-1].definition.description or "",
                )
            )
        return out

    def workflow_versions(self, name: str) -> list[WorkflowVersion]:
        """Raises NotFound for a name with no version."""
        versions = self.registry.versions(name)
        if not versions:
            raise NotFound(f"workflow {name!r} is not registered")
        return versions

    # --- triggers (orchestrator/triggers/scheduler.py) ----------------------------------------

    async def list_triggers(self, workflow: str = "") -> list[TriggerInfo]:
        return await self.triggers.list_triggers(workflow)

    async def put_trigger(self, workflow: str, name: str, spec: Mapping[str, Any]) -> TriggerInfo:
        return await self.triggers.put_trigger(workflow, name, spec)

    async def delete_trigger(self, workflow: str, name: str) -> None:
        await self.triggers.delete_trigger(workflow, name)

    def diff_workflow(self, name: str, old: str, new: str) -> DefinitionDiff:
        return diff_definitions(
            self.registry.get(name, old).definition, self.registry.get(name, new).definition
        )

    # --- executions --------------------------------------------------------------------------

    async def start_execution(
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
            record = self._start(workflow, version, inputs, routing_key, None)
            await self.store.durable()
            return record
        lock = self._keys.setdefault(idempotency_key, asyncio.Lock())
        try:
            async with lock:
                found = await self._by_idempotency_key(idempotency_key)
                if found is not None:
                    self._check_same(found, idempotency_key, workflow, version, inputs)
                    record = found
                else:
                    record = self._start(workflow, version, inputs, routing_key, idempotency_key)
                    self._by_key[idempotency_key] = record.id
                await self.store.durable()
                return record
        finally:
            if not lock.locked():
                self._keys.pop(idempotency_key, None)

    def _start(
        self,
        workflow: str,
        version: str,
        inputs: Mapping[str, Any] | None,
        routing_key: str,
        idempotency_key: str | None,
    ) -> ExecutionRecord:
        wf = self.registry.get(workflow, version)
        if wf.deprecated:
            raise FailedPrecondition(
                f"workflow {wf.name} version {wf.version} is deprecated: start another version"
            )
        resolved = resolve_inputs(wf.definition, inputs or {})
        if len(self._queue) >= self._max_queued:
            raise QueueFull(
                f"{len(self._queue)} executions are already waiting for an engine "
                f"(MAX_QUEUED_EXECUTIONS={self._max_queued}); try again later"
            )
        return self._new_record(
            wf, resolved, routing_key=routing_key, idempotency_key=idempotency_key
        )

    async def _by_idempotency_key(self, key: str) -> ExecutionRecord | None:
        execution_id = self._by_key.get(key)
        if execution_id is not None and execution_id in self._records:
            return self._records[execution_id]
        row = await self.store.find_execution(idempotency_key=key)
        return None if row is None else self._child_view(row)

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
        record = self._records.get(execution_id)
        if record is not None:
            return record
        row = await self.store.get_execution(execution_id)
        if row is None:
            raise NotFound(f"execution {execution_id!r} not found")
        return self._child_view(row)

    def result_of(self, record: ExecutionRecord) -> dict[str, Any]:
        """The result object as it stands: final, or rebuilt from the checkpoint."""
        if record.result is not None:
            return record.result
        result = execution_result(self.replay(record), record.inputs)
        result["status"] = str(record.status)
        self.add_links(record, result)
        return result

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
        await self.store.durable()
        return await self.store.list_executions(
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
            self.cancel_record(record, reason or "cancelled by request")
        return record

    async def wait(self, execution_id: str) -> ExecutionRecord:
        record = await self.get(execution_id)
        await record.done.wait()
        return record

    def engines(self) -> list[dict[str, Any]]:
        return [link.info() for link in sorted(self._links.values(), key=lambda x: x.id)]
