"""``Placement``: which engine runs each execution, and the queue of those waiting for one.

An execution is queued, then sent to an engine chosen by the balancer among engines that are
ready and have room (``max(placed here, engine-reported in flight) < capacity``). When none has
room it stays queued; it is never dropped. Placement runs once per event-loop turn for
everything queued, so a burst of starts becomes one stream message per engine.

Every placement gets a new ``lease``; the execution's first one also fixes its ``started_at``
and deadline. Placement alone writes an execution's ``PlacementState`` (``where`` it is, on which
engine, its lease) and keeps the indexes over it: the queue, what each engine was given, and,
after a restart, the executions waiting for their engine to re-attach them.

It never decides what happens to an execution an engine lost or refused: ``engine_lost`` and
``release`` hand the records back, and the ``Lifecycle`` re-queues or ends them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from orchestrator.engines.messages import EnginePort, ExecuteOrder
from orchestrator.errors import QueueFull
from orchestrator.executions.record import ExecutionRecord, Where, announce
from orchestrator.journal import Journal
from orchestrator.monitor import Monitor
from orchestrator.ring import Balancer
from orchestrator.signals import Signal


class EngineDirectory(Protocol):
    """Finds an engine by link id (``EngineFleet``)."""

    def get(self, link_id: str) -> EnginePort | None: ...


@dataclass(frozen=True, slots=True)
class PlacementStats:
    queued: int
    in_flight: int
    """Executions placed on an engine and not ended."""
    awaiting_reattach: int
    placed: tuple[tuple[str, int], ...]
    """(engine link id, executions placed there), for every engine given any."""


class Placement:
    """The queue and the engines' books; see the module docstring."""

    def __init__(
        self,
        balancer: Balancer,
        engines: EngineDirectory,
        journal: Journal,
        monitor: Monitor,
        *,
        max_queued: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._balancer = balancer
        self._engines = engines
        self._journal = journal
        self._monitor = monitor
        self._max_queued = max_queued
        self._clock = clock
        self._queue: deque[ExecutionRecord] = deque()
        """Queued executions in order; an entry whose record left the queue is skipped."""
        self._queued = 0
        self._placed: dict[str, dict[str, ExecutionRecord]] = {}
        """Per engine link: the executions placed there whose end was not reported, by id."""
        self._awaiting: dict[str, ExecutionRecord] = {}
        """After a restart: executions placed before it, waiting for their engine's hello."""
        self._scheduled = False
        self.placed: Signal[[ExecutionRecord, float]] = Signal("placed")
        """Sent to an engine after waiting that many seconds in the queue (the metrics)."""

    # --- the queue ---------------------------------------------------------------------------

    def check_room(self) -> None:
        """Raise ``QueueFull`` when ``max_queued`` executions already wait for an engine."""
        if self._queued >= self._max_queued:
            raise QueueFull(
                f"{self._queued} executions are already waiting for an engine "
                f"(MAX_QUEUED_EXECUTIONS={self._max_queued}); try again later"
            )

    def enqueue(self, record: ExecutionRecord, *, front: bool = False) -> None:
        """Queue ``record`` (at the front: a failover goes before new work); once only."""
        state = record.placement
        if state.where is Where.QUEUED:
            return
        self._leave(record)
        state.where = Where.QUEUED
        state.queued_at = self._clock()
        self._queued += 1
        if front:
            self._queue.appendleft(record)
        else:
            self._queue.append(record)
        self.schedule()

    def schedule(self) -> None:
        """Place what is queued at the next turn of the event loop."""
        if not self._scheduled and self._queue:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._place)

    def _place(self) -> None:
        self._scheduled = False
        queue = self._queue
        while queue:
            record = queue[0]
            if record.placement.where is not Where.QUEUED:  # attached again, released or ended
                queue.popleft()
                continue
            link_id = self._balancer.choose(record.routing_key or record.id, self.has_room)
            if link_id is None:
                return  # every engine is full or none is ready: wait for room
            queue.popleft()
            link = self._engines.get(link_id)
            assert link is not None, link_id
            self._send(record, link)

    def has_room(self, link_id: str) -> bool:
        link = self._engines.get(link_id)
        if link is None or not link.usable:
            return False
        placed = self._placed.get(link_id)
        return max(len(placed) if placed else 0, link.reported_in_flight) < link.capacity

    def _send(self, record: ExecutionRecord, link: EnginePort) -> None:
        now = self._clock()
        state = record.placement
        state.lease += 1
        state.placements += 1
        self._put_on(record, link)
        self.placed(record, now - state.queued_at)
        wf = record.workflow
        if state.started_at is None:
            state.started_at = now
            if wf.definition.timeout is not None:
                state.deadline = now + wf.definition.timeout
        self._journal.save(record)
        link.execute(
            ExecuteOrder(
                execution_id=record.id,
                lease=state.lease,
                digest=wf.digest,
                snapshot=wf.snapshot,
                inputs_json=record.inputs_json,
                depth=record.depth,
                checkpoint=record.checkpoint.runs,
                timeout=None if state.deadline is None else max(state.deadline - now, 0.001),
            )
        )
        if state.placements > 1:
            announce(
                self._monitor,
                record,
                "execution.placed",
                engine_id=link.name,
                message=f"re-placed on {link.id} with {len(record.checkpoint)} finished node runs",
                data={"placement": state.placements, "checkpoint": len(record.checkpoint)},
            )

    # --- engines -----------------------------------------------------------------------------

    def engine_ready(self, link_id: str) -> None:
        self._balancer.add(link_id)
        self.schedule()

    def engine_unready(self, link_id: str) -> None:
        self._balancer.remove(link_id)

    def engine_gone(self, link_id: str) -> list[ExecutionRecord]:
        """The engine is lost or left: take it off the ring and hand back what was placed there,
        newest first (each re-queued at the front, the oldest ends up first)."""
        self._balancer.remove(link_id)
        records = list(self._placed.pop(link_id, {}).values())
        for record in records:
            record.placement.where = Where.NOWHERE
        records.sort(key=lambda r: r.created_at, reverse=True)
        return records

    # --- executions on engines ---------------------------------------------------------------

    def engine_of(self, record: ExecutionRecord) -> EnginePort | None:
        """The engine ``record`` is placed on now (to send it an answer), else None: an
        execution not placed asks again from wherever it runs next."""
        if record.finished or record.placement.where is not Where.ENGINE:
            return None
        return self._engines.get(record.placement.engine)

    def is_on(self, record: ExecutionRecord, link_id: str) -> bool:
        """Whether ``record`` is placed on that engine now."""
        state = record.placement
        return state.where is Where.ENGINE and state.engine == link_id

    def attach(self, record: ExecutionRecord, link: EnginePort) -> None:
        """``record`` runs on ``link`` with its current lease (the engine kept it)."""
        self._put_on(record, link)

    def release(self, record: ExecutionRecord) -> None:
        """``record`` is no longer queued, placed or awaited anywhere (it ended, or an engine
        refused or handed it back): it stays where it is until re-queued."""
        self._leave(record)

    def await_reattach(self, record: ExecutionRecord) -> None:
        """After a restart: ``record`` was on ``placement.engine``; wait for that engine's hello."""
        self._leave(record)
        record.placement.where = Where.REATTACH
        self._awaiting[record.id] = record

    def awaiting_on(self, link_id: str) -> list[ExecutionRecord]:
        """Executions waiting for that engine to re-attach them."""
        return [r for r in self._awaiting.values() if r.placement.engine == link_id]

    def awaiting(self) -> list[ExecutionRecord]:
        """Every execution still waiting to be re-attached, newest first."""
        return sorted(self._awaiting.values(), key=lambda r: r.created_at, reverse=True)

    def _put_on(self, record: ExecutionRecord, link: EnginePort) -> None:
        self._leave(record)
        state = record.placement
        state.where = Where.ENGINE
        state.engine = link.id
        state.engine_name = link.name
        self._placed.setdefault(link.id, {})[record.id] = record

    def _leave(self, record: ExecutionRecord) -> None:
        """Take ``record`` out of whichever index holds it (the queue's entry is skipped)."""
        state = record.placement
        where = state.where
        if where is Where.QUEUED:
            self._queued -= 1
        elif where is Where.ENGINE:
            placed = self._placed.get(state.engine)
            if placed is not None:
                placed.pop(record.id, None)
        elif where is Where.REATTACH:
            self._awaiting.pop(record.id, None)
        state.where = Where.NOWHERE

    def stats(self) -> PlacementStats:
        return PlacementStats(
            queued=self._queued,
            in_flight=sum(len(p) for p in self._placed.values()),
            awaiting_reattach=len(self._awaiting),
            placed=tuple(sorted((link_id, len(p)) for link_id, p in self._placed.items())),
        )
