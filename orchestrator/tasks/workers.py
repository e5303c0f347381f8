"""``WorkerHub``: the task workers connected to this orchestrator, and their free slots.

A worker is one process holding one ``Workers.Work`` stream (``orchestrator/api/workers.py``).
Its ``WorkerSession`` says which queues it serves, how many tasks it runs at once (``slots``),
which tasks it runs now, and holds its outbox: what the stream writes next. The hub knows nothing
of tasks beyond their tokens; the ``TaskBoard`` asks it for a worker with a free slot on a queue
(``pick``: round robin over that queue's workers, so workers of one queue share its tasks
fairly) and tells it what each worker runs.

Several streams with one worker id: the newest replaces the older, which is closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from weir.proto.v1 import worker_pb2 as wpb

from orchestrator.signals import Signal
from orchestrator.store import TaskRow


@dataclass(eq=False, slots=True)
class WorkerSession:
    """One worker's stream: who it is, what it runs, and what to send it next."""

    worker_id: str
    queues: tuple[str, ...]
    slots: int
    peer: str = ""
    sdk_version: str = ""
    connected_at: float = 0.0
    seen_at: float = 0.0
    draining: bool = False
    paused: bool = False
    """For a moment after it gave tasks back: it may have fewer free slots than it says."""
    running: set[str] = field(default_factory=set)
    """Tokens of the tasks it runs now."""
    outbox: wpb.ToWorker = field(default_factory=wpb.ToWorker)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    @property
    def free(self) -> int:
        """Slots it has for new tasks (none while draining or closed)."""
        if self.draining or self.closed or self.paused:
            return 0
        return max(self.slots - len(self.running), 0)

    def push(self, task: wpb.Task) -> None:
        self.outbox.tasks.append(task)
        self.wake.set()

    def cancel(self, token: str, reason: str) -> None:
        self.outbox.cancelled.add(token=token, reason=reason)
        self.wake.set()

    def ack(self, token: str, verdict: wpb.Verdict.ValueType, message: str = "") -> None:
        self.outbox.acks.add(token=token, verdict=verdict, message=message)
        self.wake.set()

    def take(self) -> wpb.ToWorker | None:
        """What to write now, or None when there is nothing."""
        box = self.outbox
        if not (box.tasks or box.cancelled or box.acks or box.HasField("welcome")):
            return None
        self.outbox = wpb.ToWorker()
        return box

    def close(self) -> None:
        self.closed = True
        self.wake.set()


@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    """One connected worker, for the APIs and metrics."""

    worker_id: str
    queues: tuple[str, ...]
    slots: int
    running: int
    peer: str
    sdk_version: str
    connected_at: float
    seen_at: float
    draining: bool


class WorkerHub:
    """The connected workers, by id and by queue; see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_id: dict[str, WorkerSession] = {}
        self._by_queue: dict[str, list[WorkerSession]] = {}
        self._turn: dict[str, int] = {}
        """Per queue: where the next ``pick`` starts (round robin)."""
        self.joined: Signal[[WorkerSession]] = Signal("worker joined")
        self.left: Signal[[WorkerSession, str]] = Signal("worker left")

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, worker_id: str) -> WorkerSession | None:
        return self._by_id.get(worker_id)

    def connect(
        self,
        worker_id: str,
        queues: Sequence[str],
        slots: int,
        *,
        peer: str = "",
        sdk_version: str = "",
    ) -> tuple[WorkerSession, WorkerSession | None]:
        """A worker said hello: its session, and the older session it replaces (closed now)."""
        now = self._clock()
        session = WorkerSession(
            worker_id,
            tuple(dict.fromkeys(queues)),
            slots,
            peer=peer,
            sdk_version=sdk_version,
            connected_at=now,
            seen_at=now,
        )
        old = self._by_id.get(worker_id)
        if old is not None:
            self._remove(old)
            old.close()
        self._by_id[worker_id] = session
        for queue in session.queues:
            self._by_queue.setdefault(queue, []).append(session)
        self.joined(session)
        return session, old

    def disconnect(self, session: WorkerSession, why: str) -> bool:
        """Its stream ended; False when a newer stream had replaced it already."""
        session.close()
        if self._by_id.get(session.worker_id) is not session:
            return False
        self._remove(session)
        self.left(session, why)
        return True

    def _remove(self, session: WorkerSession) -> None:
        del self._by_id[session.worker_id]
        for queue in session.queues:
            members = self._by_queue.get(queue)
            if members is not None and session in members:
                members.remove(session)
                if not members:
                    del self._by_queue[queue]
                    self._turn.pop(queue, None)

    def pick(self, queue: str) -> WorkerSession | None:
        """A worker of ``queue`` with a free slot, taking turns; None when all are busy."""
        members = self._by_queue.get(queue)
        if not members:
            return None
        count = len(members)
        start = self._turn.get(queue, 0) % count
        for i in range(count):
            session = members[(start + i) % count]
            if session.free:
                self._turn[queue] = start + i + 1
                return session
        return None

    def queues_of(self, session: WorkerSession) -> Iterable[str]:
        return session.queues

    def snapshot(self) -> list[WorkerSnapshot]:
        """The connected workers, by id."""
        return [
            WorkerSnapshot(
                s.worker_id,
                s.queues,
                s.slots,
                len(s.running),
                s.peer,
                s.sdk_version,
                s.connected_at,
                s.seen_at,
                s.draining,
            )
            for _, s in sorted(self._by_id.items())
        ]

    def close(self) -> None:
        """The orchestrator stops: close every stream."""
        for session in list(self._by_id.values()):
            session.close()


def task_to_pb(row: TaskRow) -> wpb.Task:
    """What a worker receives for a task."""
    return wpb.Task(
        token=row.token,
        execution_id=row.execution_id,
        workflow=row.workflow,
        node=row.node,
        visit=row.visit,
        attempt=row.attempt,
        queue=row.queue,
        args_json=row.args_json,
        idempotency_key=row.idempotency_key,
        deadline=(row.started_at or 0.0) + row.timeout_s if row.timeout_s else 0.0,
        heartbeat_timeout_s=row.heartbeat_s,
        item=row.item,
    )
