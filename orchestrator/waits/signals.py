"""``Signals``: signals sent to executions, handed to the ``wait`` nodes waiting for them.

``weir signal ID NAME`` (REST, gRPC) sends a signal with an outcome and data. The first open
wait of that execution for that name (oldest first) takes it at once: its task completes with
the data as output and the outcome routing ``next``. A signal nobody waits for yet is *kept*
(durably, a ``signals`` row) and taken by the next wait for its name when the node is reached,
in the order signals were sent (Temporal's semantics). A taken signal's row says which task took
it, written in the same commit as that task's end, so a restart never hands one signal to two
waits nor loses one.

Refused: a signal to an unknown execution (``NotFound``), to a finished one
(``FailedPrecondition``), or with a name no ``wait`` node of its workflow waits for
(``InvalidSignal``, naming those it does wait for).
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from engine.definition.model import WaitTask
from engine.server import codec
from orchestrator.errors import FailedPrecondition, InvalidSignal
from orchestrator.executions.record import ExecutionRecord, announce
from orchestrator.journal import Journal
from orchestrator.monitor import Monitor
from orchestrator.store import SignalRow, Store, TaskRow
from orchestrator.waits.receipt import SignalReceipt


class SignalTasks(Protocol):
    """What signals ask the task board."""

    def waiting_for(self, execution_id: str, signal: str) -> TaskRow | None: ...

    def complete_now(self, row: TaskRow, output_json: bytes, outcome: str) -> None: ...


def waited_signals(record: ExecutionRecord) -> list[str]:
    """The signal names the ``wait`` nodes of the execution's workflow wait for."""
    names = {
        node.executor.signal
        for node in record.workflow.definition.nodes
        if isinstance(node.executor, WaitTask)
    }
    return sorted(names)


class Signals:
    """Kept signals by execution and name; see the module docstring."""

    def __init__(
        self,
        *,
        tasks: SignalTasks,
        journal: Journal,
        monitor: Monitor,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tasks = tasks
        self._journal = journal
        self._monitor = monitor
        self._clock = clock
        self._kept: dict[str, dict[str, collections.deque[SignalRow]]] = {}
        """By execution, then by name: the signals no wait took yet, oldest first."""

    def kept(self, execution_id: str) -> int:
        """How many signals of the execution wait for a node."""
        return sum(len(q) for q in self._kept.get(execution_id, {}).values())

    async def load(self, store: Store) -> int:
        """Take up the kept signals of unfinished executions (at start, after the task board:
        a wait and a kept signal of the same name meet here if a crash parted them)."""
        rows = await store.unconsumed_signals()
        for row in rows:
            self._keep(row)
            self._match(row.execution_id, row.name)
        return len(rows)

    def send(
        self, record: ExecutionRecord, name: str, outcome: str, data_json: bytes
    ) -> SignalReceipt:
        """Hand the signal to the first wait for it, or keep it; raises when it is refused."""
        if record.finished:
            raise FailedPrecondition(
                f"execution {record.id} is {record.status}: it takes no signal"
            )
        names = waited_signals(record)
        if name not in names:
            waits = ", ".join(names) if names else "none"
            raise InvalidSignal(
                f"workflow {record.name} {record.version} has no wait for signal '{name}' "
                f"(it waits for: {waits})"
            )
        codec.from_json(data_json, "data")
        row = SignalRow(str(uuid.uuid4()), record.id, name, outcome, data_json, self._clock())
        self._keep(row)
        self._journal.signal(row.copy())
        announce(
            self._monitor,
            record,
            "signal.received",
            message=f"signal {name}" + (f" ({outcome})" if outcome else ""),
            data={"signal": name, "outcome": outcome, "id": row.id},
        )
        task = self._match(record.id, name)
        if task is None:
            return SignalReceipt(row.id, record.id, name, outcome, row.sent_at)
        return SignalReceipt(row.id, record.id, name, outcome, row.sent_at, task.node, task.visit)

    def task_scheduled(self, row: TaskRow) -> None:
        """A new task (the board's ``scheduled``): a wait takes a kept signal at once."""
        if row.kind == "signal":
            self._match(row.execution_id, row.queue)

    def execution_ended(self, record: ExecutionRecord) -> None:
        """Forget the kept signals of an execution that ended (their rows go with it)."""
        self._kept.pop(record.id, None)

    def _keep(self, row: SignalRow) -> None:
        names = self._kept.setdefault(row.execution_id, {})
        names.setdefault(row.name, collections.deque()).append(row)

    def _match(self, execution_id: str, name: str) -> TaskRow | None:
        """Give the oldest kept signal of that name to the oldest open wait for it."""
        names = self._kept.get(execution_id, {})
        queue = names.get(name)
        if not queue:
            return None
        task = self._tasks.waiting_for(execution_id, name)
        if task is None:
            return None
        signal = queue.popleft()
        if not queue:
            del names[name]
            if not names:
                del self._kept[execution_id]
        signal.consumed_by = task.token
        signal.consumed_at = self._clock()
        self._journal.signal(signal.copy())
        self._tasks.complete_now(task, signal.data_json, signal.outcome)
        return task
