"""Per-stream outboxes, and what each execution keeps until the orchestrator acknowledges it.

``Session`` is one orchestrator's ``Connect`` stream. It numbers the ``FromEngine`` messages it
writes (``seq``: 1, 2, 3…; the hello is 1) and builds each one from what accumulated since the
last: node results, events, finished executions, rejections, hand-backs and ``start_child``
requests.

``Run`` is one execution placed on this engine: the service's one record of it. Its ``phase``
and ``session`` say where it is (the service moves it, ``service.py``). Its node results and its
final result are *kept* by the run, not by the stream: a result moves from ``unsent`` to ``kept``
(tagged with the seq of the message that carried it) when it is written, and is forgotten when
the stream's ``ToEngine.ack`` reaches that seq. While the run is held (``session is None``)
nothing is written; on attach everything kept goes back to ``unsent`` and is written again on the
new stream, in order, followed by the final result and the ``start_child`` and
``schedule_task`` requests still waiting. Events are never kept: one produced while held is dropped.

A session refers to runs only to order its outbox (``dirty``) and to know which runs each
message carried (``carried``); both are read through ``run.session is self``, so a run that was
detached, attached elsewhere or forgotten since is skipped there and needs no cleaning up.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from weir.proto.v1 import engine_pb2 as pb

from engine.driver import ExecutionDriver
from engine.server import codec
from engine.state.events import Event, NodeResult

log = logging.getLogger(__name__)

ChildKey = tuple[str, int, int | None, int]
"""A node attempt asking the orchestrator for something: (node, visit, item, attempt); ``item``
is the item's index for an item of a node with ``map``, else None."""
Request = TypeVar("Request", pb.StartChild, pb.ScheduleTask)
Answer = TypeVar("Answer", pb.ChildFinished, pb.TaskFinished)


class Phase(enum.Enum):
    """Where a run is in the service's table (``service.py`` draws how it moves)."""

    NEW = "new"
    """Built from an ``Execute``, not placed yet."""
    RUNNING = "running"
    """Its task runs; it counts against the capacity."""
    ENDED = "ended"
    """Finished; its final result is kept until the orchestrator acknowledges it."""
    GONE = "gone"
    """Settled or discarded: out of the table, nothing more is reported. Final."""


@dataclass(slots=True, eq=False)
class Asking(Generic[Request, Answer]):
    """A request to the orchestrator waiting for its answer: a ``start_child`` for its
    ``child_finished``, a ``schedule_task`` for its ``task_finished``."""

    request: Request
    answer: asyncio.Future[Answer]
    sent: bool = False
    """Written on the run's current stream (cleared on attach, so it is asked again)."""
    scheduled: asyncio.Future[pb.TaskScheduled] | None = None
    """A callback task's: its token and callback URL, answered before its end."""


ChildWait = Asking[pb.StartChild, pb.ChildFinished]
TaskWait = Asking[pb.ScheduleTask, pb.TaskFinished]


async def ask(
    run: Run,
    waits: dict[ChildKey, Asking[Request, Answer]],
    key: ChildKey,
    wait: Asking[Request, Answer],
) -> Answer:
    """Put ``wait``'s request on ``run`` (in ``waits``, one of its dicts) and wait for the
    answer; the request is forgotten however the wait ends."""
    waits[key] = wait
    if run.session is not None:
        run.session.mark(run)
    try:
        return await wait.answer
    finally:
        if waits.get(key) is wait:
            del waits[key]


def hand_over(wait: Asking[Request, Answer] | None, answer: Answer, what: str) -> bool:
    """Wake the attempt waiting in ``wait`` with ``answer``; False (logged) when nobody waits:
    the run is gone or moved to another lease, or it was answered already."""
    if wait is None or wait.answer.done():
        log.debug("%s: nobody waits for it", what)
        return False
    wait.answer.set_result(answer)
    return True


@dataclass(slots=True, eq=False)
class Run:
    """One execution placed here: its driver, its stream, and what it keeps until acknowledged."""

    id: str
    lease: int
    session: Session | None
    """The stream it reports on; None while held (detached) and once gone."""
    phase: Phase = Phase.NEW
    driver: ExecutionDriver = field(init=False)
    task: asyncio.Task[None] | None = None
    unsent: list[NodeResult] = field(default_factory=list)
    kept: deque[tuple[int, NodeResult]] = field(default_factory=deque)
    """Written but not acknowledged: (seq of the carrying message, result)."""
    final: pb.ExecutionFinished | None = None
    final_seq: int = 0
    """Seq of the message that carried ``final`` on the current stream; 0: not written yet."""
    children: dict[ChildKey, ChildWait] = field(default_factory=dict)
    task_waits: dict[ChildKey, TaskWait] = field(default_factory=dict)
    """``task`` nodes' attempts waiting for their durable task's end."""
    deliveries: list[pb.TaskDelivery] = field(default_factory=list)
    """How callback requests went, to write (not kept: a lost one only leaves the task shown
    as not yet accepted)."""
    waiting: int = 0
    """Node attempts now waiting only on the orchestrator (a task's end): parking counts them."""
    activity: int = 0
    """Counts what happened (results, waits begun and ended): parking needs a quiet stretch."""
    parked: pb.ExecutionParked | None = None
    """Set when the run is parked instead of finished: what ``final`` reports."""
    expiry: asyncio.TimerHandle | None = None
    """The detached timeout, while held."""

    @property
    def held(self) -> bool:
        """In the table with no stream: detached, waiting to be attached or to expire."""
        return self.session is None and (self.phase is Phase.RUNNING or self.phase is Phase.ENDED)

    @property
    def finished(self) -> bool:
        return self.phase is Phase.ENDED

    def add_result(self, result: NodeResult) -> None:
        self.activity += 1
        if self.phase is Phase.GONE:
            return
        self.unsent.append(result)
        if self.session is not None:
            self.session.mark(self)

    def add_event(self, event: Event) -> None:
        session = self.session
        if session is not None:
            session.events.append((self.lease, event))
            session.wake.set()

    def finish(self, final: pb.ExecutionFinished) -> None:
        self.final = final
        self.final_seq = 0
        if self.session is not None:
            self.session.mark(self)

    def park(self, parked: pb.ExecutionParked) -> None:
        """Report the run parked instead of finished (kept and re-sent like a final result)."""
        self.parked = parked
        self.final_seq = 0
        if self.session is not None:
            self.session.mark(self)

    def deliver(self, delivery: pb.TaskDelivery) -> None:
        self.deliveries.append(delivery)
        if self.session is not None:
            self.session.mark(self)

    def acked(self, seq: int) -> int:
        """Forget what messages up to ``seq`` carried; return how many records that was."""
        kept = self.kept
        count = 0
        while kept and kept[0][0] <= seq:
            kept.popleft()
            count += 1
        if self.final_seq and self.final_seq <= seq:
            self.final_seq = -1  # acknowledged: nothing more to say
            count += 1
        return count

    @property
    def settled(self) -> bool:
        """Finished, and the orchestrator has everything durably."""
        return self.final_seq == -1 and not self.kept and not self.unsent

    def rewind(self) -> int:
        """Make everything unacknowledged unsent again (attach); return how many records."""
        resent = len(self.kept)
        if resent:
            self.unsent[:0] = [result for _, result in self.kept]
            self.kept.clear()
        if self.final_seq > 0:
            self.final_seq = 0
            resent += 1
        for wait in self.children.values():
            wait.sent = False
        for task_wait in self.task_waits.values():
            task_wait.sent = False
        return resent


@dataclass(slots=True, eq=False)
class Session:
    """One orchestrator's stream: message numbering, acknowledgements, and the outbox."""

    peer: str
    orchestrator_id: str = ""
    seq: int = 0
    """The seq of the last message written."""
    acked: int = 0
    dirty: dict[Run, None] = field(default_factory=dict)
    """Runs with something to write (an ordered set); those no longer on this stream are skipped."""
    events: list[tuple[int, Event]] = field(default_factory=list)
    rejected: list[pb.ExecutionRejected] = field(default_factory=list)
    handed_back: list[pb.ExecutionHandedBack] = field(default_factory=list)
    carried: deque[tuple[int, list[Run]]] = field(default_factory=deque)
    """The runs whose kept records each message carried, oldest first, until acknowledged."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    error: str | None = None

    def pending(self) -> bool:
        if self.events or self.rejected or self.handed_back:
            return True
        return any(run.session is self for run in self.dirty)  # the first one, nearly always

    def mark(self, run: Run) -> None:
        self.dirty[run] = None
        self.wake.set()

    def reject(
        self,
        execution_id: str,
        lease: int,
        reason: pb.ExecutionRejected.Reason.ValueType,
        message: str,
    ) -> None:
        self.rejected.append(
            pb.ExecutionRejected(
                execution_id=execution_id, lease=lease, reason=reason, message=message
            )
        )
        self.wake.set()

    def message(self, in_flight: int, capacity: int, draining: bool) -> pb.FromEngine:
        """The next message: everything waiting, numbered; what it carries is kept by the runs."""
        self.seq += 1
        seq = self.seq
        out = pb.FromEngine(seq=seq)
        load = out.load
        load.in_flight = in_flight
        load.capacity = capacity
        load.draining = draining
        if self.dirty:
            carried: list[Run] = []
            add = out.node_results.add
            for run in self.dirty:
                if run.session is not self:
                    continue  # detached or forgotten since it was marked
                keeps = False
                if run.unsent:
                    kept = run.kept
                    for result in run.unsent:
                        codec.fill_result(add(), run.id, run.lease, result)
                        kept.append((seq, result))
                    run.unsent.clear()
                    keeps = True
                if run.final_seq == 0 and (run.final is not None or run.parked is not None):
                    if run.parked is not None:
                        out.parked.append(run.parked)
                    else:
                        assert run.final is not None
                        out.finished.append(run.final)
                    run.final_seq = seq
                    keeps = True
                for wait in run.children.values():
                    if not wait.sent:
                        out.start_child.append(wait.request)
                        wait.sent = True
                for task_wait in run.task_waits.values():
                    if not task_wait.sent:
                        out.schedule_task.append(task_wait.request)
                        task_wait.sent = True
                if run.deliveries:
                    out.task_delivery.extend(run.deliveries)
                    run.deliveries.clear()
                if keeps:
                    carried.append(run)
            self.dirty.clear()
            if carried:
                self.carried.append((seq, carried))
        if self.events:
            add_event = out.events.add
            for lease, event in self.events:
                codec.fill_event(add_event(), lease, event)
            self.events.clear()
        if self.rejected:
            out.rejected.extend(self.rejected)
            self.rejected.clear()
        if self.handed_back:
            out.handed_back.extend(self.handed_back)
            self.handed_back.clear()
        return out

    def ack(self, seq: int) -> tuple[int, list[Run]]:
        """Apply ``ToEngine.ack``: (records forgotten, runs now settled)."""
        if seq <= self.acked:
            return 0, []
        self.acked = seq
        count = 0
        settled: list[Run] = []
        carried = self.carried
        while carried and carried[0][0] <= seq:
            _, runs = carried.popleft()
            for run in runs:
                if run.session is self:
                    count += run.acked(seq)
                    if run.settled:
                        settled.append(run)
        return count, settled
