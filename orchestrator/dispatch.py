"""Placement, engine reports, failover and sub-workflows: the orchestrator's moving parts.

``Dispatcher`` holds the executions in memory (every unfinished one, plus a bounded cache of
finished ones), places them on engines and applies what engines report. ``Orchestrator``
(``core.py``) builds the public operations on top of it.

Placement: an execution is queued, then placed on an engine chosen by the balancer among engines
that are ready and have room (``max(placed here, engine-reported in flight) < capacity``). When
none has room it stays queued; it is never dropped. Every placement gets a new ``lease``; reports
carrying an older lease, or from an engine the execution is no longer on, are ignored.

Durability: every change is written to the store through its group commit. A node result is
appended to the checkpoint, written, and acknowledged to its engine (``ToEngine.ack``) only once
the store says it is durable; until then the engine keeps it and re-sends it after a reconnect.
Likewise a finished execution's waiters are woken, and its parent told, only once its result is
durable. If the store cannot commit, the orchestrator stops (``failed``): a restart resumes from
what is durable, and engines re-send what was not acknowledged.

Failover: when an engine's stream breaks (or its health check fails, or it leaves discovery), its
executions go back to the front of the queue and are placed elsewhere with their checkpoints:
finished nodes are replayed, never run again; nodes that were running start over. When an engine
reconnects it lists the executions it kept (``held``): one whose lease is still current is
attached again instead of being re-placed; a stale one is cancelled.

Sub-workflows: a ``workflow`` node's attempt sends ``start_child``; the child is an ordinary
execution with a ``ParentLink`` (found again by that link, so a re-sent request gets the same
child), placed on its own. When it ends the parent's engine gets ``child_finished``. Cancelling
or ending a parent cancels its unfinished children.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from engine.definition.values import resolve_inputs
from engine.proto.v1 import engine_pb2 as pb
from engine.server import codec
from engine.state.events import Cancel, ExecutionStatus, NodeResult
from engine.state.machine import ExecutionState
from engine.state.result import execution_result, iso
from orchestrator.links import EngineLink, LinkHandler
from orchestrator.monitor import TERMINAL_EVENTS, Monitor, MonitorEvent
from orchestrator.records import (
    ExecutionRecord,
    ParentLink,
    event_row,
    from_row,
    node_run_row,
    to_row,
)
from orchestrator.registry import Registry, WorkflowVersion
from orchestrator.ring import Balancer
from orchestrator.store import Store, StoreError

log = logging.getLogger(__name__)

TERMINAL = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})
FINISHED_CACHE = 2_000
"""Finished executions kept in memory; older ones are read back from the store."""
Reason = pb.ExecutionRejected.Reason


class DispatchObserver:
    """Told what the dispatcher does, synchronously (the metrics); this one ignores it all.

    Every method runs on the hot path: it must be cheap and must not raise.
    """

    def placed(self, record: ExecutionRecord, waited: float) -> None:
        """Sent to an engine after ``waited`` seconds in the queue (again after a failover)."""

    def node_result(self, record: ExecutionRecord, result: NodeResult) -> None:
        """An engine reported a node run not seen before; it is persisted next."""

    def rejected(self, reason: pb.ExecutionRejected.Reason.ValueType) -> None:
        """An engine refused a placement."""

    def finished(self, record: ExecutionRecord) -> None:
        """The execution ended: ``status`` and ``finished_at`` are final."""


class Dispatcher(LinkHandler):
    """Executions in memory, the placement queue, engine links and their reports."""

    def __init__(
        self,
        *,
        orchestrator_id: str,
        store: Store,
        balancer: Balancer,
        registry: Registry | None = None,
        monitor: Monitor | None = None,
        max_depth: int = 10,
    ) -> None:
        self.id = orchestrator_id
        self.store = store
        self.registry = registry or Registry()
        self.monitor = monitor or Monitor()
        self.monitor.sink = self._persist_event
        self.max_depth = max_depth
        self._balancer = balancer
        self._links: dict[str, EngineLink] = {}
        self._records: dict[str, ExecutionRecord] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._by_child_key: dict[str, str] = {}
        self._child_lookups: set[str] = set()
        self._queue: deque[ExecutionRecord] = deque()
        self._queued: set[str] = set()
        self._orphans: dict[str, ExecutionRecord] = {}
        """After a restart: executions placed before it, waiting for their engine's hello."""
        self._place_scheduled = False
        self._callbacks: list[Callable[[], None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failed = asyncio.Event()
        """Set when the store cannot commit: the process must stop (see the module docs)."""
        self.failure: Exception | None = None
        self.stale_reports = 0
        """Reports ignored because they came from an older lease or another engine."""
        self.observer = DispatchObserver()
        """Told of placements, node results, refusals and ends (``OrchestratorMetrics``)."""

    # --- persistence -------------------------------------------------------------------------

    def _save(self, record: ExecutionRecord) -> None:
        self.store.put_execution(to_row(record))

    def _persist_event(self, event: MonitorEvent, data_json: bytes | None) -> None:
        self.store.add_events([event_row(event, data_json)])

    def _after_durable(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything written so far is committed."""
        self._callbacks.append(callback)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="after-durable")

    async def _flush(self) -> None:
        try:
            while self._callbacks:
                batch, self._callbacks = self._callbacks, []
                try:
                    await self.store.durable()
                except StoreError as exc:
                    self._store_failed(exc)
                    return
                for callback in batch:
                    try:
                        callback()
                    except Exception:  # one bad callback must not stop the others
                        log.exception("after-commit callback failed")
        finally:
            self._flusher = None

    def _store_failed(self, exc: Exception) -> None:
        log.critical("the store failed (%s); stopping so that a restart resumes from it", exc)
        if self.failure is None:
            self.failure = StoreError(f"store {self.store.url}: {exc}")
        self.failed.set()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- records -----------------------------------------------------------------------------

    def _new_record(
        self,
        wf: WorkflowVersion,
        inputs: dict[str, Any],
        *,
        routing_key: str = "",
        idempotency_key: str | None = None,
        parent: ParentLink | None = None,
        depth: int = 0,
    ) -> ExecutionRecord:
        record = ExecutionRecord(
            id=str(uuid.uuid4()),
            name=wf.name,
            version=wf.version,
            wf=wf,
            inputs=inputs,
            inputs_json=codec.to_json(inputs),
            routing_key=routing_key,
            created_at=time.time(),
            idempotency_key=idempotency_key,
            parent=parent,
            depth=depth,
        )
        self._remember(record)
        self._save(record)
        where = f" as a child of {parent.execution_id} ({parent.node})" if parent else ""
        self._publish(record, "execution.queued", message=f"{wf.name} {wf.version} queued{where}")
        self._enqueue(record)
        return record

    def _remember(self, record: ExecutionRecord) -> None:
        self._records[record.id] = record
        if record.parent is not None:
            self._by_child_key[record.parent.key] = record.id
            parent = self._records.get(record.parent.execution_id)
            if parent is not None and record.id not in parent.children:
                parent.children.append(record.id)

    def _forget_finished(self, record: ExecutionRecord) -> None:
        self._recent[record.id] = None
        while len(self._recent) > FINISHED_CACHE:
            old_id, _ = self._recent.popitem(last=False)
            old = self._records.pop(old_id, None)
            if old is not None and old.parent is not None:
                self._by_child_key.pop(old.parent.key, None)

    def running_on(self, wf: WorkflowVersion) -> int:
        """Unfinished executions pinned to ``wf``."""
        return sum(1 for r in self._records.values() if r.wf is wf and not r.finished)

    # --- placement ---------------------------------------------------------------------------

    def _enqueue(self, record: ExecutionRecord, *, front: bool = False) -> None:
        if record.id in self._queued:
            return
        self._queued.add(record.id)
        record.queued_at = time.time()
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
            if record.id not in self._queued or record.finished:  # attached again, or ended
                queue.popleft()
                self._queued.discard(record.id)
                continue
            if record.cancel_reason is not None:
                queue.popleft()
                self._queued.discard(record.id)
                self._finish_here(record, record.cancel_reason)
                continue
            link_id = self._balancer.choose(record.routing_key or record.id, self._has_room)
            if link_id is None:
                return  # every engine is full or none is ready: wait for room
            queue.popleft()
            self._queued.discard(record.id)
            self._send(record, self._links[link_id])

    def _assign(self, record: ExecutionRecord, link: EngineLink) -> None:
        record.engine = link.id
        record.engine_name = link.engine_id or link.id
        link.assigned.add(record.id)
        self._queued.discard(record.id)
        self._orphans.pop(record.id, None)

    def _send(self, record: ExecutionRecord, link: EngineLink) -> None:
        now = time.time()
        record.lease += 1
        record.placements += 1
        self._assign(record, link)
        self.observer.placed(record, now - record.queued_at)
        wf = record.workflow
        if record.started_at is None:
            record.started_at = now
            if wf.definition.timeout is not None:
                record.deadline = now + wf.definition.timeout
        self._save(record)
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
                engine_id=link.engine_id or link.id,
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
                engine_id=link.engine_id or link.id,
                message=f"engine {link.id} {reason}; re-placing from the checkpoint",
            )
            self._enqueue(record, front=True)

    # --- LinkHandler -------------------------------------------------------------------------

    def link_connected(self, link: EngineLink, held: list[pb.HeldExecution]) -> None:
        kept = set()
        for h in held:
            record = self._records.get(h.execution_id)
            if record is None:
                continue  # not ours (another orchestrator's store), or long finished
            if record.finished or h.lease != record.lease:
                link.cancel(h.execution_id, h.lease, "superseded by a newer placement")
                continue
            placed = self._links.get(record.engine)
            if placed is not None and placed is not link and record.id in placed.assigned:
                continue  # the current lease runs elsewhere (cannot happen with unique leases)
            self._assign(record, link)
            link.attach(record.id, record.lease)
            kept.add(record.id)
            self._publish(
                record,
                "execution.reattached",
                engine_id=link.engine_id or link.id,
                message=f"engine {link.id} still runs it; attached again",
            )
        for record in [r for r in self._orphans.values() if r.engine == link.id]:
            if record.id not in kept:  # that engine no longer has it: re-place it now
                self._orphans.pop(record.id, None)
                self._enqueue(record, front=True)

    def link_ready(self, link: EngineLink) -> None:
        self._balancer.add(link.id)
        self._publish_engine(link, "engine.joined", f"at {link.address} ready")
        self._schedule_placement()

    def link_unready(self, link: EngineLink) -> None:
        self._balancer.remove(link.id)
        kind = "engine.draining" if link.draining else "engine.unhealthy"
        self._publish_engine(link, kind, "takes no work")

    def link_lost(self, link: EngineLink, reason: str) -> None:
        self._balancer.remove(link.id)
        self._publish_engine(link, "engine.left", reason)
        self._evacuate(link, "lost")

    def _publish_engine(self, link: EngineLink, type_: str, what: str) -> None:
        """An ``engine.*`` event: ``engine_id`` is the engine's own id (``ENGINE_ID``), the data
        has the link (discovery id, what metrics label by) and the address."""
        self.monitor.publish(
            type_,
            engine_id=link.engine_id or link.id,
            message=f"engine {link.engine_id or link.id}: {what}",
            data={"link": link.id, "address": link.address},
        )

    def link_message(self, link: EngineLink, message: pb.FromEngine) -> None:
        records = self._records
        store = self.store
        durable_news = False
        for m in message.node_results:
            record = records.get(m.execution_id)
            if record is None or not self._current(record, link, m.lease):
                continue
            if (m.node, m.visit, m.attempt) in record.seen:
                continue
            try:
                result = codec.result_from_pb(m)
            except codec.CodecError as exc:
                log.warning("engine %s sent a bad node result: %s", link.id, exc)
                continue
            record.add_result(result)
            self.observer.node_result(record, result)
            store.add_node_run(
                node_run_row(record.id, len(record.journal) - 1, result, m.output_json)
            )
            durable_news = True
        for e in message.events:
            record = records.get(e.execution_id)
            if record is None or not self._current(record, link, e.lease):
                continue
            if (
                e.type in ("execution.started", "execution.resumed")
                and record.status is not ExecutionStatus.RUNNING
            ):
                record.status = ExecutionStatus.RUNNING
                self._save(record)
            try:
                data = codec.from_json(e.data_json, "event data")
            except codec.CodecError:
                data = None
            if e.type in TERMINAL_EVENTS:
                record.end_published = True
            self._publish(
                record,
                e.type,
                at=codec.seconds(e.at),
                node=e.node if e.HasField("node") else None,
                visit=e.visit,
                attempt=e.attempt,
                engine_id=link.engine_id or link.id,
                data=data,
                data_json=e.data_json if data is not None else None,
            )
        for f in message.finished:
            durable_news = True
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
                engine_id=link.engine_id or link.id,
                message=f"engine {link.id} handed it back while draining",
            )
            self._enqueue(record, front=True)
        for sc in message.start_child:
            record = records.get(sc.execution_id)
            if record is None or not self._current(record, link, sc.lease):
                continue
            self._start_child(record, link, sc)
        if durable_news:
            seq, stream = message.seq, link.stream_number
            self._after_durable(lambda: link.ack(seq, stream))
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
        self.observer.rejected(r.reason)
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

    # --- sub-workflows -----------------------------------------------------------------------

    def _start_child(self, parent: ExecutionRecord, link: EngineLink, sc: pb.StartChild) -> None:
        at = ParentLink(parent.id, sc.node, sc.visit, sc.attempt)
        child_id = self._by_child_key.get(at.key)
        if child_id is not None:
            child = self._records[child_id]
            if child.done.is_set():
                self._tell_parent(child)
            return  # the parent hears when it ends
        if at.key in self._child_lookups:
            return
        self._child_lookups.add(at.key)
        self._spawn(self._start_child_async(parent, at, sc), f"start child {at.key}")

    async def _start_child_async(
        self, parent: ExecutionRecord, at: ParentLink, sc: pb.StartChild
    ) -> None:
        try:
            row = await self.store.find_execution(child_key=at.key)
            if row is not None:  # started before a restart, finished since, evicted from memory
                child = from_row(row, None)
                self._remember(child)
                if child.finished:
                    self._forget_finished(child)
                    self._tell_parent(child)
                return
            error = self._child_error(parent)
            if error is None:
                try:
                    wf = self.registry.resolve(sc.workflow, sc.version_range)
                    inputs = codec.from_json(sc.inputs_json, "inputs_json") or {}
                    resolved = resolve_inputs(wf.definition, inputs)
                except Exception as exc:  # NotFound, InputError, CodecError: the node fails
                    error = f"sub-workflow {sc.workflow}@{sc.version_range}: {exc}"
            if error is not None:
                self._answer_parent(parent, at, "", ExecutionStatus.FAILED, None, error)
                return
            self._new_record(wf, resolved, parent=at, depth=parent.depth + 1)
        except StoreError as exc:
            self._store_failed(exc)
        finally:
            self._child_lookups.discard(at.key)

    def _child_error(self, parent: ExecutionRecord) -> str | None:
        if parent.finished or parent.cancel_reason is not None:
            return f"parent {parent.id} is ending"
        if parent.depth + 1 > self.max_depth:
            return (
                f"sub-workflows nested deeper than {self.max_depth} levels "
                "(MAX_SUBWORKFLOW_DEPTH): is a workflow calling itself?"
            )
        return None

    def _tell_parent(self, child: ExecutionRecord) -> None:
        """Send a finished child's result to its parent's engine (if it is placed)."""
        assert child.parent is not None and child.result is not None
        result = child.result
        error = result.get("error") or {}
        message = ""
        if child.status is not ExecutionStatus.COMPLETED:
            where = f"node {error.get('node')}: " if error.get("node") else ""
            message = f"{where}{error.get('message') or child.status}"
        self._answer_parent(
            None, child.parent, child.id, child.status, result.get("outputs"), message
        )

    def _answer_parent(
        self,
        parent: ExecutionRecord | None,
        at: ParentLink,
        child_id: str,
        status: ExecutionStatus,
        outputs: Any,
        error: str,
    ) -> None:
        parent = parent or self._records.get(at.execution_id)
        if parent is None or parent.finished:
            return
        link = self._links.get(parent.engine)
        if link is None or parent.id not in link.assigned:
            return  # not placed now: its engine asks again when it gets there
        link.child_finished(
            pb.ChildFinished(
                execution_id=parent.id,
                lease=parent.lease,
                node=at.node,
                visit=at.visit,
                attempt=at.attempt,
                child_id=child_id,
                status=codec.EXECUTION_STATUS_TO_PB[str(status)],
                outputs_json=codec.to_json(outputs) if outputs is not None else b"",
                error=error,
            )
        )

    def add_links(self, record: ExecutionRecord, result: dict[str, Any]) -> None:
        """Put the result's ``parent`` (for a child) and ``children`` (for a parent) in."""
        if record.parent is not None:
            result["parent"] = {"execution": record.parent.execution_id, "node": record.parent.node}
        if record.children:
            result["children"] = self.children_of(record)

    def children_of(self, record: ExecutionRecord) -> list[dict[str, Any]]:
        """The children known in memory, for the result's ``children`` list."""
        out = []
        for child_id in record.children:
            child = self._records.get(child_id)
            if child is None or child.parent is None:
                continue
            out.append(
                {
                    "id": child.id,
                    "workflow": child.name,
                    "version": child.version,
                    "status": str(child.status),
                    "node": child.parent.node,
                }
            )
        return out

    def _cancel_children(self, record: ExecutionRecord, reason: str) -> None:
        for child_id in record.children:
            child = self._records.get(child_id)
            if child is not None and not child.finished:
                self.cancel_record(child, reason)

    def cancel_record(self, record: ExecutionRecord, reason: str) -> None:
        """Ask an unfinished execution (and its children) to stop."""
        if record.finished:
            return
        record.cancel_reason = reason
        self._save(record)
        self._cancel_children(record, f"parent {record.id} cancelled: {reason}")
        link = self._links.get(record.engine)
        if record.engine and link is not None and record.id in link.assigned:
            link.cancel(record.id, record.lease, reason)  # it ends when the engine reports
        else:  # queued, or waiting for its engine to re-attach after a restart
            self._queued.discard(record.id)
            self._finish_here(record, reason)

    # --- ends --------------------------------------------------------------------------------

    def _finish(self, record: ExecutionRecord, result: dict[str, Any]) -> None:
        record.status = ExecutionStatus(result.get("status", "failed"))
        record.finished_at = time.time()
        if not record.end_published:
            # The engine's own end event was lost with a broken stream (the final result is
            # re-sent after a re-attach; its events are not): every execution gets one.
            error = result.get("error") or {}
            self._publish(
                record,
                f"execution.{record.status}",
                message=str(error.get("message") or ""),
                data={"reason": error.get("message")} if error else None,
            )
        if record.children:
            self._cancel_children(record, f"parent {record.id} ended ({record.status})")
        self.add_links(record, result)
        record.result = result
        link = self._links.get(record.engine)
        if link is not None:
            link.assigned.discard(record.id)
        self._orphans.pop(record.id, None)
        self._save(record)
        self.observer.finished(record)
        self._after_durable(lambda: self._finished_durably(record))

    def _finished_durably(self, record: ExecutionRecord) -> None:
        record.done.set()
        if record.parent is not None:
            self._tell_parent(record)
        self._forget_finished(record)

    def _finish_here(self, record: ExecutionRecord, reason: str, *, error: str = "") -> None:
        """End an execution that no engine is running (cancelled while queued, refused)."""
        now = time.time()
        state = self.replay(record)
        if record.placements and not error:
            state.handle(Cancel(now, reason))  # nodes that were running show cancelled
        result = execution_result(state, record.inputs)
        result["status"] = str(ExecutionStatus.FAILED if error else ExecutionStatus.CANCELLED)
        result["error"] = {"node": None, "message": error or reason}
        result["finished_at"] = iso(now)
        record.end_published = True
        self._publish(
            record,
            "execution.failed" if error else "execution.cancelled",
            message=error or reason,
            data={"reason": error or reason},
        )
        self._finish(record, result)

    @staticmethod
    def replay(record: ExecutionRecord) -> ExecutionState:
        """The execution's state rebuilt from its checkpoint (untouched if it never ran)."""
        state = ExecutionState(record.workflow.definition, record.id)
        if record.placements:
            state.resume(record.journal, record.started_at or record.created_at)
        return state

    def _publish(self, record: ExecutionRecord, type_: str, **fields: Any) -> MonitorEvent:
        return self.monitor.publish(
            type_,
            workflow=record.name,
            version=record.version,
            execution_id=record.id,
            **fields,
        )
