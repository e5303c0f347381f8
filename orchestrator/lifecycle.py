"""``Lifecycle``: what happens to an execution between its start and its end.

It creates executions, applies what engines report about them (the ``LinkHandler`` of every
engine link), fails them over when an engine goes, cancels them, and ends them. It alone writes
an execution's checkpoint, status and result (see ``executions/record.py`` for who writes what).

* **Reports.** Every report carries the lease of the placement it comes from; one with an older
  lease, or from an engine the execution is no longer on, is ignored and counted
  (``stale_reports``), and a node run already in the checkpoint is ignored too. A node run is
  appended to the checkpoint and journaled, and the engine's message is acknowledged
  (``ToEngine.ack``) only once the journal says it is durable: until then the engine keeps it
  and re-sends it after a reconnect.
* **Failover.** When an engine's stream breaks (or its health check fails, or it leaves
  discovery), its executions go back to the front of the queue and are placed elsewhere with
  their checkpoints: finished nodes are replayed, never run again; nodes that were running start
  over. When an engine reconnects it lists the executions it kept (``held``): one whose lease is
  still current is attached again instead of being re-placed; a stale one is cancelled. One
  with a *newer* lease than the store's is the placement a crash kept from being saved: it is
  adopted (the lease is taken over) and attached, never placed again under the same lease.
* **Retries.** ``create_retry`` makes a new execution of a finished one's version and inputs
  whose checkpoint starts with the records a ``ReusePlan`` reuses, journaled with it; it is
  queued (``enqueue``) only once that is durable, so a crash never places a retry whose reused
  records are lost. Its engine replays them like any checkpoint (docs/retry.md).
* **Ends.** An execution ends when its engine reports its result, or here when no engine runs
  it (cancelled while queued, refused as invalid, its version deleted): ``end_here`` builds the
  result from the checkpoint. Either way it gets exactly one end event, its unfinished children
  are cancelled, and its waiters are woken and its parent told only once its result is durable.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from engine.server import codec
from engine.state.events import Cancel, ExecutionStatus, NodeResult
from engine.state.machine import ExecutionState
from engine.state.result import ExecutionResult, ResultError
from engine.state.reuse import ReusePlan
from orchestrator.children import SubWorkflows
from orchestrator.engines.messages import (
    ChildRequested,
    Delivered,
    EnginePort,
    EngineReport,
    Held,
    Parked,
    RefusalReason,
    Refused,
    TaskRequested,
)
from orchestrator.executions.record import ExecutionRecord, ParentLink, Where, announce
from orchestrator.executions.table import ExecutionTable
from orchestrator.journal import Journal
from orchestrator.monitor import TERMINAL_EVENTS, Monitor
from orchestrator.placement import EngineDirectory, Placement
from orchestrator.registry import WorkflowVersion
from orchestrator.signals import Signal
from orchestrator.supervise import Supervisor

log = logging.getLogger(__name__)

_STARTED = frozenset({"execution.started", "execution.resumed"})


class Lifecycle:
    """Creates, follows, fails over, cancels and ends executions; see the module docstring."""

    def __init__(
        self,
        *,
        table: ExecutionTable,
        placement: Placement,
        engines: EngineDirectory,
        journal: Journal,
        monitor: Monitor,
        children: SubWorkflows,
        supervisor: Supervisor,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._placement = placement
        self._engines = engines
        self._journal = journal
        self._monitor = monitor
        self._children = children
        self._supervisor = supervisor
        self._clock = clock
        self.stale_reports = 0
        """Reports ignored because they came from an older lease or another engine."""
        self.node_recorded: Signal[[ExecutionRecord, NodeResult]] = Signal("node recorded")
        """A node run not seen before was added to the checkpoint (it is journaled next)."""
        self.refused: Signal[[RefusalReason]] = Signal("placement refused")
        self.ended: Signal[[ExecutionRecord]] = Signal("execution ended")
        self.task_requested: Signal[[ExecutionRecord, TaskRequested]] = Signal("task requested")
        self.task_delivered: Signal[[ExecutionRecord, Delivered]] = Signal("callback delivered")
        """How a callback task's request went (the wiring connects the task board)."""
        self.parked: Signal[[ExecutionRecord]] = Signal("execution parked")
        """An engine gave the execution back because it only waits (its status is WAITING)."""
        """A ``task`` node attempt of a placed execution asks for its durable task (the wiring
        connects the task board)."""
        """Once per execution: its status, result and ``finished_at`` are final."""

    # --- creating ----------------------------------------------------------------------------

    def create(
        self,
        wf: WorkflowVersion,
        inputs: dict[str, Any],
        *,
        routing_key: str = "",
        idempotency_key: str | None = None,
        parent: ParentLink | None = None,
        depth: int = 0,
    ) -> ExecutionRecord:
        """A new execution of ``wf`` (``inputs`` already checked), journaled and queued."""
        record = ExecutionRecord(
            id=str(uuid.uuid4()),
            name=wf.name,
            version=wf.version,
            wf=wf,
            inputs=inputs,
            inputs_json=codec.to_json(inputs),
            routing_key=routing_key,
            created_at=self._clock(),
            idempotency_key=idempotency_key,
            parent=parent,
            depth=depth,
        )
        self._table.add(record)
        self._journal.save(record)
        where = f" as a child of {parent.execution_id} ({parent.node})" if parent else ""
        announce(
            self._monitor,
            record,
            "execution.queued",
            message=f"{wf.name} {wf.version} queued{where}",
        )
        self._placement.enqueue(record)
        return record

    def create_retry(
        self, original: ExecutionRecord, wf: WorkflowVersion, plan: ReusePlan
    ) -> ExecutionRecord:
        """A retry of ``original`` (finished, pinned to ``wf``): a new execution with the same
        inputs and routing key whose checkpoint starts with ``plan.records``, journaled with
        them and announced (``execution.queued``, a ``node.reused`` per reused node), but not
        queued: the caller queues it with ``enqueue`` once it is durable."""
        record = ExecutionRecord(
            id=str(uuid.uuid4()),
            name=wf.name,
            version=wf.version,
            wf=wf,
            inputs=original.inputs,
            inputs_json=original.inputs_json,
            routing_key=original.routing_key,
            created_at=self._clock(),
            retry_of=original.id,
        )
        self._table.add(record)
        self._journal.save(record)
        last: dict[str, NodeResult] = {}
        for result in plan.records:
            if record.checkpoint.add(result):
                self._journal.node_run(record, result, None)
            if result.item is None:
                last[result.node] = result
        reused = ", ".join(plan.reused) or "none"
        partial = f"; completed items of {', '.join(plan.partial)}" if plan.partial else ""
        announce(
            self._monitor,
            record,
            "execution.queued",
            message=f"{wf.name} {wf.version} queued as a retry of {original.id} "
            f"(reused: {reused}{partial})",
            data={
                "retry_of": original.id,
                "reused": list(plan.reused),
                "partial": list(plan.partial),
                "records": len(plan.records),
            },
        )
        for node_id in plan.reused:
            r = last[node_id]
            announce(
                self._monitor,
                record,
                "node.reused",
                node=node_id,
                visit=r.visit,
                attempt=r.attempt,
                message=f"{r.status} in {r.reused_from}",
                data={"reused_from": r.reused_from, "status": str(r.status), "outcome": r.outcome},
            )
        return record

    def enqueue(self, record: ExecutionRecord) -> None:
        """Queue an execution ``create_retry`` made (unless it ended meanwhile)."""
        if not record.finished:
            self._placement.enqueue(record)

    def resume(self, record: ExecutionRecord) -> None:
        """Carry on with an unfinished execution read back from the store (a restart)."""
        if record.wf is None:
            self.end_here(record, "", error=f"workflow {record.name} {record.version} was deleted")
        elif record.cancel_reason is not None:
            self.end_here(record, record.cancel_reason)
        elif record.status is ExecutionStatus.WAITING:
            self.parked(record)  # parking arms its timer; a task's end wakes it
        elif record.placement.placements and record.placement.engine:
            self._placement.await_reattach(record)  # its engine may still run it
        else:
            self._placement.enqueue(record)

    def reattach_expired(self, timeout: float) -> None:
        """The engines that ran executions before a restart had ``timeout`` seconds to say
        they still do; re-place what they did not claim."""
        for record in self._placement.awaiting():
            if not record.finished:
                self._fail_over_one(
                    record,
                    f"engine {record.placement.engine} did not re-attach it within "
                    f"{timeout:g}s; re-placing from the checkpoint",
                )

    # --- what engine links say (FleetHandler) ------------------------------------------------

    def connected(self, link: EnginePort, held: Sequence[Held]) -> None:
        kept = set()
        for h in held:
            record = self._table.get(h.execution_id)
            if record is None:
                continue  # not ours (another orchestrator's store), or long finished
            state = record.placement
            if h.lease > state.lease and not record.finished and state.where is not Where.ENGINE:
                # The placement the store missed: sent, then the orchestrator died before the
                # lease was durable. That engine runs the newest lease there is: adopt it rather
                # than cancel it and place the same lease again (which the engine would refuse).
                state.lease = h.lease
                state.placements += 1
            if record.finished or h.lease != state.lease:
                link.cancel(h.execution_id, h.lease, "superseded by a newer placement")
                continue
            if record.status is ExecutionStatus.WAITING:
                link.cancel(h.execution_id, h.lease, "parked: its report was taken")
                continue
            if state.where is Where.ENGINE and state.engine != link.id:
                continue  # the current lease runs elsewhere (cannot happen with unique leases)
            self._placement.attach(record, link)
            link.attach(record.id, state.lease)
            kept.add(record.id)
            announce(
                self._monitor,
                record,
                "execution.reattached",
                engine_id=link.name,
                message=f"engine {link.id} still runs it; attached again",
            )
        for record in self._placement.awaiting_on(link.id):
            if record.id not in kept:  # that engine no longer has it: re-place it now
                self._requeue(record)

    def ready(self, link: EnginePort) -> None:
        self._placement.engine_ready(link.id)
        self._publish_engine(link, "engine.joined", f"at {link.address} ready")

    def unready(self, link: EnginePort) -> None:
        self._placement.engine_unready(link.id)
        kind = "engine.draining" if link.draining else "engine.unhealthy"
        self._publish_engine(link, kind, "takes no work")

    def lost(self, link: EnginePort, reason: str) -> None:
        self._publish_engine(link, "engine.left", reason)
        self._fail_over(link, "lost")

    def removed(self, link: EnginePort, why: str) -> None:
        self._fail_over(link, why)

    def _publish_engine(self, link: EnginePort, type_: str, what: str) -> None:
        """An ``engine.*`` event: ``engine_id`` is the engine's own id (``ENGINE_ID``), the data
        has the link (discovery id, what metrics label by) and the address."""
        self._monitor.publish(
            type_,
            engine_id=link.name,
            message=f"engine {link.name}: {what}",
            data={"link": link.id, "address": link.address},
        )

    def _fail_over(self, link: EnginePort, what: str) -> None:
        """Re-place every execution that was on ``link``, oldest first, ahead of new ones."""
        for record in self._placement.engine_gone(link.id):
            if not record.finished:
                message = f"engine {link.id} {what}; re-placing from the checkpoint"
                self._fail_over_one(record, message, engine_id=link.name)

    def _fail_over_one(self, record: ExecutionRecord, message: str, engine_id: str = "") -> None:
        """Announce ``execution.failover`` and re-queue ``record``."""
        announce(self._monitor, record, "execution.failover", engine_id=engine_id, message=message)
        self._requeue(record)

    def _requeue(self, record: ExecutionRecord) -> None:
        """Back to the front of the queue, unless a cancel was asked for meanwhile."""
        if record.cancel_reason is not None:
            self._placement.release(record)
            self.end_here(record, record.cancel_reason)
        else:
            self._placement.enqueue(record, front=True)

    def report(self, link: EnginePort, report: EngineReport) -> None:
        table = self._table
        durable_news = False
        for n in report.nodes:
            record = table.get(n.execution_id)
            if record is None or not self._current(record, link, n.lease):
                continue
            if not record.checkpoint.add(n.result):
                continue
            self.node_recorded(record, n.result)
            self._journal.node_run(record, n.result, n.output_json)
            durable_news = True
        for e in report.events:
            record = table.get(e.execution_id)
            if record is None or not self._current(record, link, e.lease):
                continue
            if e.type in _STARTED and record.status is not ExecutionStatus.RUNNING:
                record.status = ExecutionStatus.RUNNING
                self._journal.save(record)
            if e.type == "execution.resumed" and record.unparked:
                record.unparked = False  # the same resumption ``unpark`` announced
                continue
            if e.type in TERMINAL_EVENTS:
                record.end_published = True
            announce(
                self._monitor,
                record,
                e.type,
                at=e.at,
                node=e.node,
                visit=e.visit,
                attempt=e.attempt,
                engine_id=link.name,
                data=e.data,
                data_json=e.data_json,
            )
        for f in report.ended:
            durable_news = True
            record = table.get(f.execution_id)
            if record is None or not self._current(record, link, f.lease):
                continue
            self._placement.release(record)
            if f.result is None:
                self.end_here(record, "", error=f.problem)
            else:
                self.finish(record, f.result)
        for r in report.refused:
            record = table.get(r.execution_id)
            if record is not None and self._current(record, link, r.lease):
                self._on_refused(record, link, r)
        for h in report.handed_back:
            record = table.get(h.execution_id)
            if record is None or not self._current(record, link, h.lease):
                continue
            self._placement.release(record)
            message = f"engine {link.id} handed it back while draining"
            self._fail_over_one(record, message, engine_id=link.name)
        for c in report.children:
            record = table.get(c.execution_id)
            if record is not None and self._current(record, link, c.lease):
                self._child_requested(record, c)
        for t in report.tasks:
            record = table.get(t.execution_id)
            if record is not None and self._current(record, link, t.lease):
                self.task_requested(record, t)
        for d in report.deliveries:
            record = table.get(d.execution_id)
            if record is not None and self._current(record, link, d.lease):
                self.task_delivered(record, d)
        for p in report.parked:
            durable_news = True  # the engine keeps its report until acknowledged
            record = table.get(p.execution_id)
            if record is not None and self._current(record, link, p.lease):
                self._park(record, link, p)
        if durable_news:
            seq, stream = report.seq, report.stream
            self._journal.after_durable(lambda: link.ack(seq, stream))
        self._placement.schedule()

    # --- parking -----------------------------------------------------------------------------

    def _park(self, record: ExecutionRecord, link: EnginePort, p: Parked) -> None:
        """The engine gave ``record`` back because it only waits: no engine holds it now."""
        self._placement.release(record)
        if record.cancel_reason is not None:
            self.end_here(record, record.cancel_reason)
            return
        record.status = ExecutionStatus.WAITING
        record.wake_at = p.wake_at or None
        self._journal.save(record)
        data: dict[str, Any] = {"waiting": p.waiting}
        if p.wake_at:
            data["wake_at"] = p.wake_at
        announce(
            self._monitor,
            record,
            "execution.parked",
            engine_id=link.name,
            message=f"parked: {p.waiting} waiting, engine {link.name} released it",
            data=data,
        )
        self.parked(record)

    def unpark(self, record: ExecutionRecord, why: str) -> None:
        """A wait of a parked execution ended (or its timer is due): place it again from its
        checkpoint, once that is durable."""
        if record.status is not ExecutionStatus.WAITING:
            return
        record.status = ExecutionStatus.PENDING
        record.wake_at = None
        record.unparked = True
        self._journal.save(record)
        announce(
            self._monitor,
            record,
            "execution.resumed",
            message=f"resumed: {why}",
            data={"reason": why},
        )
        self._journal.after_durable(lambda: self._place_again(record))

    def _place_again(self, record: ExecutionRecord) -> None:
        # not if it ended meanwhile (a cancel of an unplaced execution ends it at once)
        if not record.finished and record.placement.where is Where.NOWHERE:
            self._placement.enqueue(record, front=True)

    def _current(self, record: ExecutionRecord, link: EnginePort, lease: int) -> bool:
        state = record.placement
        if state.lease == lease and state.engine == link.id and not record.finished:
            return True
        self.stale_reports += 1
        return False

    def _on_refused(self, record: ExecutionRecord, link: EnginePort, r: Refused) -> None:
        self._placement.release(record)
        self.refused(r.reason)
        if r.reason is RefusalReason.DUPLICATE:
            return  # that lease already runs there
        if r.reason is RefusalReason.INVALID:
            log.warning("engine %s refused %s: %s", link.id, record.id, r.message)
            self.end_here(record, "", error=f"engine {link.id} refused it: {r.message}")
            return
        if r.reason is RefusalReason.UNKNOWN_DEFINITION:
            link.forget_definition(record.workflow.digest)
        elif r.reason is RefusalReason.FULL:
            link.assume_full()
        self._requeue(record)

    def _child_requested(self, parent: ExecutionRecord, request: ChildRequested) -> None:
        if not self._children.known(parent, request):
            self._supervisor.spawn("sub-workflow request", self._start_child(parent, request))

    async def _start_child(self, parent: ExecutionRecord, request: ChildRequested) -> None:
        plan = await self._children.plan(parent, request)
        if plan is not None:
            self.create(plan.wf, plan.inputs, parent=plan.parent, depth=plan.depth)

    # --- cancelling and ending ---------------------------------------------------------------

    def cancel(self, record: ExecutionRecord, reason: str) -> None:
        """Ask an unfinished execution (and its children) to stop."""
        if record.finished:
            return
        record.cancel_reason = reason
        self._journal.save(record)
        self._cancel_children(record, f"parent {record.id} cancelled: {reason}")
        link = self._engines.get(record.placement.engine)
        if link is not None and self._placement.is_on(record, link.id):
            link.cancel(record.id, record.placement.lease, reason)  # it ends when reported
        else:  # queued, or waiting for its engine to re-attach after a restart
            self._placement.release(record)
            self.end_here(record, reason)

    def _cancel_children(self, record: ExecutionRecord, reason: str) -> None:
        for child in list(self._table.children_of(record)):
            if not child.finished:
                self.cancel(child, reason)

    def finish(self, record: ExecutionRecord, result: ExecutionResult) -> None:
        """End ``record`` with ``result`` (an engine's, or ``end_here``'s)."""
        now = self._clock()
        if not record.end_published:
            # The engine's own end event was lost with a broken stream (the final result is
            # re-sent after a re-attach; its events are not): every execution gets one.
            error = result.error
            announce(
                self._monitor,
                record,
                f"execution.{result.status}",
                message=error.message if error else "",
                data={"reason": error.message} if error else None,
            )
        if record.children:
            self._cancel_children(record, f"parent {record.id} ended ({result.status})")
        linked = result.with_links(*self._children.links(record))
        record.end(linked.with_retries(record.retry_of, record.retried_by), now)
        self._placement.release(record)
        self._journal.save(record)
        self.ended(record)
        self._journal.after_durable(lambda: self._ended_durably(record))

    def _ended_durably(self, record: ExecutionRecord) -> None:
        record.done.set()
        if record.parent is not None:
            self._children.tell_parent(record)
        self._table.ended(record)

    def end_here(self, record: ExecutionRecord, reason: str, *, error: str = "") -> None:
        """End an execution that no engine is running (cancelled while queued, refused)."""
        now = self._clock()
        state = self.replay(record)
        if self._ran(record) and not error:
            state.handle(Cancel(now, reason))  # nodes that were running show cancelled
        status = ExecutionStatus.FAILED if error else ExecutionStatus.CANCELLED
        result = ExecutionResult.of(
            state,
            record.inputs,
            status=status,
            error=ResultError(None, error or reason),
            finished_at=now,
        )
        record.end_published = True
        announce(
            self._monitor,
            record,
            f"execution.{status}",
            message=error or reason,
            data={"reason": error or reason},
        )
        self.finish(record, result)

    # --- reading -----------------------------------------------------------------------------

    @staticmethod
    def _ran(record: ExecutionRecord) -> bool:
        """Whether it was placed, or has a checkpoint to replay (a retry not yet placed)."""
        return bool(record.placement.placements or record.checkpoint.runs)

    @classmethod
    def replay(cls, record: ExecutionRecord) -> ExecutionState:
        """The execution's state rebuilt from its checkpoint (untouched if it never ran)."""
        state = ExecutionState(record.workflow.definition, record.id)
        if cls._ran(record):
            state.resume(record.checkpoint.runs, record.placement.started_at or record.created_at)
        return state

    def result(self, record: ExecutionRecord) -> ExecutionResult:
        """The result as it stands: final, or rebuilt from the checkpoint; with its links."""
        if record.result is not None:
            result = record.result
        else:
            current = ExecutionResult.of(self.replay(record), record.inputs, status=record.status)
            result = current.with_links(*self._children.links(record))
        return result.with_retries(record.retry_of, record.retried_by)
