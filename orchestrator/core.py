"""The orchestrator's service layer: workflows, executions, placement and failover.

Both APIs (gRPC now, REST in issue 5) call this class; it never sees protobuf of the public API.

An execution is queued, then placed on an engine chosen by the balancer among engines that are
ready and have room (``max(placed here, engine-reported in flight) < capacity``). When none has
room it stays queued; it is never dropped. Every placement gets a new ``lease`` number; reports
carrying an older lease, or arriving from an engine the execution is no longer on, are ignored.

Node results stream in as they happen and form the execution's checkpoint. When an engine's
stream breaks (or its health check fails, or it leaves discovery), its executions go back to the
front of the queue and are placed elsewhere with their checkpoints: finished nodes are replayed,
never run again; nodes that were running start over (at-least-once per node).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.definition.values import resolve_inputs
from engine.proto.v1 import engine_pb2 as pb
from engine.server import codec
from engine.state.events import Cancel, ExecutionStatus, NodeResult
from engine.state.machine import ExecutionState
from engine.state.result import execution_result, iso
from orchestrator.discovery import Discovery, EngineEndpoint
from orchestrator.errors import NotFound, QueueFull
from orchestrator.links import EngineLink, LinkHandler
from orchestrator.monitor import Monitor, MonitorEvent
from orchestrator.registry import Registry, WorkflowVersion
from orchestrator.ring import Balancer

log = logging.getLogger(__name__)

TERMINAL_EVENTS = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})
_EVENTS_PER_EXECUTION = 10_000
Reason = pb.ExecutionRejected.Reason


@dataclass(slots=True, eq=False)
class ExecutionRecord:
    """What the orchestrator knows about one execution."""

    id: str
    workflow: WorkflowVersion
    inputs: dict[str, Any]
    inputs_json: bytes
    routing_key: str
    created_at: float
    depth: int = 0
    status: ExecutionStatus = ExecutionStatus.PENDING
    engine: str = ""
    """The link it is placed on (empty while queued), or the last one it ran on."""
    engine_name: str = ""
    """That engine's own id (``ENGINE_ID``), for people."""
    lease: int = 0
    placements: int = 0
    journal: list[NodeResult] = field(default_factory=list)
    seen: set[tuple[str, int, int]] = field(default_factory=set)
    result: dict[str, Any] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    deadline: float | None = None
    cancel_reason: str | None = None
    events: deque[MonitorEvent] = field(default_factory=lambda: deque(maxlen=_EVENTS_PER_EXECUTION))
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def finished(self) -> bool:
        return self.result is not None


class Orchestrator(LinkHandler):
    """``async with Orchestrator(...)``: discovery, engine links, the queue and the records."""

    def __init__(
        self,
        *,
        orchestrator_id: str,
        discovery: Discovery,
        balancer: Balancer,
        registry: Registry | None = None,
        monitor: Monitor | None = None,
        health_interval: float = 10.0,
        health_timeout: float = 2.0,
        max_queued: int = 10_000,
        retention: int = 10_000,
    ) -> None:
        self.id = orchestrator_id
        self.registry = registry or Registry()
        self.monitor = monitor or Monitor()
        self._discovery = discovery
        self._balancer = balancer
        self._health_interval = health_interval
        self._health_timeout = health_timeout
        self._max_queued = max_queued
        self._retention = retention
        self._links: dict[str, EngineLink] = {}
        self._records: dict[str, ExecutionRecord] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._queue: deque[ExecutionRecord] = deque()
        self._place_scheduled = False
        self._discovery_task: asyncio.Task[None] | None = None
        self.stale_reports = 0
        """Reports ignored because they came from an older lease or another engine."""

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._discovery_task is None:
            self._discovery_task = asyncio.create_task(self._discover(), name="discovery")

    async def stop(self) -> None:
        if self._discovery_task is not None:
            self._discovery_task.cancel()
            await asyncio.gather(self._discovery_task, return_exceptions=True)
        await asyncio.gather(*(link.stop() for link in self._links.values()))
        self._links.clear()
        self.monitor.close()

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

    # --- workflows ---------------------------------------------------------------------------

    def register_workflow(self, source: str) -> tuple[WorkflowVersion, bool]:
        version, created = self.registry.register(source)
        if created:
            self.monitor.publish(
                "workflow.registered",
                workflow=version.name,
                version=version.version,
                message=f"{version.name} {version.version} registered",
            )
        return version, created

    # --- executions --------------------------------------------------------------------------

    def start_execution(
        self,
        workflow: str,
        version: str = "",
        inputs: Mapping[str, Any] | None = None,
        *,
        routing_key: str = "",
    ) -> ExecutionRecord:
        """Validate and queue a new execution; raises NotFound, InputError or QueueFull."""
        wf = self.registry.get(workflow, version)
        resolved = resolve_inputs(wf.definition, inputs or {})
        if len(self._queue) >= self._max_queued:
            raise QueueFull(
                f"{len(self._queue)} executions are already waiting for an engine "
                f"(MAX_QUEUED_EXECUTIONS={self._max_queued}); try again later"
            )
        record = ExecutionRecord(
            str(uuid.uuid4()), wf, resolved, codec.to_json(resolved), routing_key, time.time()
        )
        self._records[record.id] = record
        self._publish(record, "execution.queued", message=f"{wf.name} {wf.version} queued")
        self._enqueue(record)
        return record

    def get(self, execution_id: str) -> ExecutionRecord:
        record = self._records.get(execution_id)
        if record is None:
            raise NotFound(f"execution {execution_id!r} not found")
        return record

    def result_of(self, record: ExecutionRecord) -> dict[str, Any]:
        """The result object as it stands: final, or rebuilt from the checkpoint."""
        if record.result is not None:
            return record.result
        result = execution_result(self._replay(record), record.inputs)
        result["status"] = str(record.status)
        return result

    def list_executions(
        self, *, workflow: str = "", status: ExecutionStatus | None = None, limit: int = 100
    ) -> list[ExecutionRecord]:
        """Newest first."""
        found = []
        for record in reversed(self._records.values()):
            if workflow and record.workflow.name != workflow:
                continue
            if status is not None and record.status is not status:
                continue
            found.append(record)
            if len(found) >= limit:
                break
        return found

    def cancel(self, execution_id: str, reason: str = "") -> ExecutionRecord:
        """Ask an execution to stop; a finished one is returned as it is."""
        record = self.get(execution_id)
        if record.finished:
            return record
        reason = reason or "cancelled by request"
        record.cancel_reason = reason
        link = self._links.get(record.engine)
        if record.engine and link is not None and record.id in link.assigned:
            link.cancel(record.id, record.lease, reason)
        else:
            self._finish_here(record, reason)
        return record

    async def wait(self, execution_id: str) -> ExecutionRecord:
        record = self.get(execution_id)
        await record.done.wait()
        return record

    async def execution_events(self, execution_id: str) -> AsyncIterator[MonitorEvent]:
        """The execution's events so far, then live ones until it has finished."""
        record = self.get(execution_id)
        with self.monitor.subscribe(lambda e: e.execution_id == execution_id) as sub:
            backlog = list(record.events)
            last = 0
            for event in backlog:
                last = event.sequence
                yield event
            if record.finished:
                return
            async for event in sub:
                if event.sequence <= last:
                    continue
                yield event
                if event.type in TERMINAL_EVENTS:
                    return

    def engines(self) -> list[dict[str, Any]]:
        return [link.info() for link in sorted(self._links.values(), key=lambda x: x.id)]

    # --- placement ---------------------------------------------------------------------------

    def _enqueue(self, record: ExecutionRecord, *, front: bool = False) -> None:
        if front:
            self._queue.appendleft(record)
        else:
            self._queue.append(record)
        self._schedule_placement()

    def _schedule_placement(self) -> None:
        if not self._place_scheduled and self._queue:
            self._place_scheduled = True
            asyncio.get_running_loop().call_soon(self._place)

    def _has_room(self, link_id: str) -> bool:
        link = self._links.get(link_id)
        return (
            link is not None
            and link.usable
            and max(len(link.assigned), link.reported_in_flight) < link.capacity
        )

    def _place(self) -> None:
        self._place_scheduled = False
        queue = self._queue
        while queue:
            record = queue[0]
            if record.finished:
                queue.popleft()
                continue
            if record.cancel_reason is not None:
                queue.popleft()
                self._finish_here(record, record.cancel_reason)
                continue
            link_id = self._balancer.choose(record.routing_key or record.id, self._has_room)
            if link_id is None:
                return  # every engine is full or none is ready: wait for room
            queue.popleft()
            self._send(record, self._links[link_id])

    def _send(self, record: ExecutionRecord, link: EngineLink) -> None:
        now = time.time()
        record.lease += 1
        record.placements += 1
        record.engine = link.id
        record.engine_name = link.engine_id or link.id
        link.assigned.add(record.id)
        wf = record.workflow
        if record.started_at is None:
            record.started_at = now
            if wf.definition.timeout is not None:
                record.deadline = now + wf.definition.timeout
        m = pb.Execute(
            execution_id=record.id,
            lease=record.lease,
            definition_digest=wf.digest,
            inputs_json=record.inputs_json,
            depth=record.depth,
        )
        if wf.digest not in link.sent_digests:
            m.definition_json = wf.snapshot
            link.sent_digests.add(wf.digest)
        if record.journal:
            add = m.checkpoint.add
            for result in record.journal:
                codec.fill_result(add(), record.id, record.lease, result)
        if record.deadline is not None:
            m.timeout.FromNanoseconds(int(max(record.deadline - now, 0.001) * 1e9))
        link.execute(m)
        if record.placements > 1:
            self._publish(
                record,
                "execution.placed",
                engine_id=link.id,
                message=f"re-placed on {link.id} with {len(record.journal)} finished node runs",
                data={"placement": record.placements, "checkpoint": len(record.journal)},
            )

    def _evacuate(self, link: EngineLink, reason: str) -> None:
        """Re-place every execution that was on ``link``, oldest first, ahead of new ones."""
        records = [self._records[i] for i in link.assigned if i in self._records]
        link.assigned.clear()
        link.sent_digests.clear()
        records.sort(key=lambda r: r.created_at, reverse=True)
        for record in records:
            if record.finished:
                continue
            self._publish(
                record,
                "execution.failover",
                engine_id=link.id,
                message=f"engine {link.id} {reason}; re-placing from the checkpoint",
            )
            self._enqueue(record, front=True)

    # --- LinkHandler -------------------------------------------------------------------------

    def link_ready(self, link: EngineLink) -> None:
        self._balancer.add(link.id)
        self.monitor.publish(
            "engine.joined", engine_id=link.id, message=f"engine {link.id} at {link.address} ready"
        )
        self._schedule_placement()

    def link_unready(self, link: EngineLink) -> None:
        self._balancer.remove(link.id)
        kind = "engine.draining" if link.draining else "engine.unhealthy"
        self.monitor.publish(kind, engine_id=link.id, message=f"engine {link.id} takes no work")

    def link_lost(self, link: EngineLink, reason: str) -> None:
        self._balancer.remove(link.id)
        self.monitor.publish(
            "engine.left", engine_id=link.id, message=f"engine {link.id}: {reason}"
        )
        self._evacuate(link, "lost")

    def link_message(self, link: EngineLink, message: pb.FromEngine) -> None:
        records = self._records
        for m in message.node_results:
            record = records.get(m.execution_id)
            if record is None or not self._current(record, link, m.lease):
                continue
            key = (m.node, m.visit, m.attempt)
            if key in record.seen:
                continue
            try:
                result = codec.result_from_pb(m)
            except codec.CodecError as exc:
                log.warning("engine %s sent a bad node result: %s", link.id, exc)
                continue
            record.seen.add(key)
            record.journal.append(result)
        for e in message.events:
            record = records.get(e.execution_id)
            if record is None or not self._current(record, link, e.lease):
                continue
            if e.type in ("execution.started", "execution.resumed"):
                record.status = ExecutionStatus.RUNNING
            try:
                data = codec.from_json(e.data_json, "event data")
            except codec.CodecError:
                data = None
            self._publish(
                record,
                e.type,
                at=codec.seconds(e.at),
                node=e.node if e.HasField("node") else None,
                visit=e.visit,
                attempt=e.attempt,
                engine_id=link.id,
                data=data,
            )
        for f in message.finished:
            record = records.get(f.execution_id)
            if record is None or not self._current(record, link, f.lease):
                continue
            try:
                final = codec.from_json(f.result_json, "result")
            except codec.CodecError as exc:
                log.warning("engine %s sent a bad result for %s: %s", link.id, record.id, exc)
                final = None
            link.assigned.discard(record.id)
            if not isinstance(final, dict):
                self._finish_here(record, "", error="engine sent an unreadable result")
            else:
                self._finish(record, final)
        for r in message.rejected:
            record = records.get(r.execution_id)
            if record is None or not self._current(record, link, r.lease):
                continue
            self._on_rejected(record, link, r)
        for h in message.handed_back:
            record = records.get(h.execution_id)
            if record is None or not self._current(record, link, h.lease):
                continue
            link.assigned.discard(record.id)
            self._publish(
                record,
                "execution.failover",
                engine_id=link.id,
                message=f"engine {link.id} handed it back while draining",
            )
            self._enqueue(record, front=True)
        if message.finished or message.rejected or message.handed_back or message.load:
            self._schedule_placement()

    def _current(self, record: ExecutionRecord, link: EngineLink, lease: int) -> bool:
        if record.lease == lease and record.engine == link.id and not record.finished:
            return True
        self.stale_reports += 1
        return False

    def _on_rejected(
        self, record: ExecutionRecord, link: EngineLink, r: pb.ExecutionRejected
    ) -> None:
        link.assigned.discard(record.id)
        if r.reason == Reason.REASON_DUPLICATE:
            return
        if r.reason == Reason.REASON_INVALID:
            log.warning("engine %s refused %s: %s", link.id, record.id, r.message)
            self._finish_here(record, "", error=f"engine {link.id} refused it: {r.message}")
            return
        if r.reason == Reason.REASON_UNKNOWN_DEFINITION:
            link.sent_digests.discard(record.workflow.digest)
        elif r.reason == Reason.REASON_FULL:
            link.reported_in_flight = max(link.reported_in_flight, link.capacity)
        self._enqueue(record, front=True)

    # --- ends --------------------------------------------------------------------------------

    def _finish(self, record: ExecutionRecord, result: dict[str, Any]) -> None:
        record.result = result
        record.status = ExecutionStatus(result.get("status", "failed"))
        record.finished_at = time.time()
        record.done.set()
        self._finished[record.id] = None
        while len(self._finished) > self._retention:
            old, _ = self._finished.popitem(last=False)
            self._records.pop(old, None)

    def _finish_here(self, record: ExecutionRecord, reason: str, *, error: str = "") -> None:
        """End an execution that no engine is running (cancelled while queued, refused)."""
        now = time.time()
        state = self._replay(record)
        if record.placements and not error:
            state.handle(Cancel(now, reason))  # nodes that were running show cancelled
        result = execution_result(state, record.inputs)
        result["status"] = str(ExecutionStatus.FAILED if error else ExecutionStatus.CANCELLED)
        result["error"] = {"node": None, "message": error or reason}
        result["finished_at"] = iso(now)
        self._publish(
            record,
            "execution.failed" if error else "execution.cancelled",
            message=error or reason,
            data={"reason": error or reason},
        )
        self._finish(record, result)

    @staticmethod
    def _replay(record: ExecutionRecord) -> ExecutionState:
        """The execution's state rebuilt from its checkpoint (untouched if it never ran)."""
        state = ExecutionState(record.workflow.definition, record.id)
        if record.placements:
            state.resume(record.journal, record.started_at or record.created_at)
        return state

    def _publish(self, record: ExecutionRecord, type_: str, **fields: Any) -> None:
        event = self.monitor.publish(
            type_,
            workflow=record.workflow.name,
            version=record.workflow.version,
            execution_id=record.id,
            **fields,
        )
        record.events.append(event)
