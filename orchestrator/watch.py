"""Reading the event log and watching it live, with no gap between the two.

Every API that serves events (gRPC ``WatchEvents``, REST ``/api/v1/events`` as JSON or Server-Sent
Events, ``weir events``) goes through ``EventLog``, built on ``history`` and ``watch``:

* ``history``: events from the store's log, oldest first, after a sequence number (or the newest
  ``limit`` ones), filtered by ``EventQuery``.
* ``watch``: subscribe to the monitor first, wait until everything published so far is committed,
  read the log after the caller's resume point, then switch to the live subscription, dropping
  what the log already gave. A reconnecting subscriber that passes the last sequence it saw
  therefore misses nothing, whatever happened while it was away.

A live subscriber that falls more than its buffer behind is not waited for: the monitor cuts it
off, and ``watch`` yields a ``LaggedNotice`` with the sequence to resume after and stops. The
caller (or its client) resumes from the log with that number.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Protocol

from orchestrator.executions.record import ExecutionRecord
from orchestrator.monitor import TERMINAL_EVENTS, Lagged, Monitor, MonitorEvent, Severity
from orchestrator.rows import event_from_row
from orchestrator.store import Store

PAGE = 1000
MAX_LIMIT = 10_000
"""The most events one non-following read returns."""
BATCH = 500
"""Events per batch a watcher is given at most."""


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events a reader wants; an empty field matches everything.

    ``types`` entries are exact types (``execution.failed``) or prefixes ending in ``.`` or
    ``.*`` (``node.``, ``trigger.*``).
    """

    execution_id: str = ""
    workflow: str = ""
    types: tuple[str, ...] = ()
    min_severity: Severity = Severity.DEBUG

    @classmethod
    def of(
        cls,
        *,
        execution_id: str = "",
        workflow: str = "",
        types: Sequence[str] = (),
        min_severity: Severity | int = Severity.DEBUG,
    ) -> EventQuery:
        cleaned = tuple(t.strip().removesuffix("*") for t in types if t.strip())
        return cls(execution_id, workflow, cleaned, Severity(max(int(min_severity), 1)))

    def accepts(self, event: MonitorEvent) -> bool:
        if self.execution_id and event.execution_id != self.execution_id:
            return False
        if self.workflow and event.workflow != self.workflow:
            return False
        if event.severity < self.min_severity:
            return False
        return not self.types or any(
            event.type == t or (t.endswith(".") and event.type.startswith(t)) for t in self.types
        )

    @property
    def filters_in_python(self) -> bool:
        """True when the store's own filters (execution, workflow) are not the whole query."""
        return bool(self.types) or self.min_severity > Severity.DEBUG


@dataclass(frozen=True, slots=True)
class LaggedNotice:
    """The live stream fell behind and ended; read on from the log after ``resume_after``."""

    resume_after: int


async def history(
    store: Store,
    query: EventQuery,
    *,
    after: int = 0,
    limit: int = PAGE,
    newest: bool = False,
) -> list[MonitorEvent]:
    """Up to ``limit`` events of the log matching ``query``, ascending: the first ones after
    ``after``, or with ``newest`` the last ones."""
    found: list[MonitorEvent] = []
    if limit <= 0:
        return found
    await store.durable()  # read what was published so far, not only what was committed
    if newest:
        # Walk backwards page by page when Python-side filters may reject most rows.
        upper: int | None = None
        while len(found) < limit:
            rows = await store.events(
                after=after,
                execution_id=query.execution_id,
                workflow=query.workflow,
                limit=PAGE if query.filters_in_python else limit,
                newest=True,
                before=upper,
            )
            if not rows:
                break
            page = [e for e in map(event_from_row, rows) if query.accepts(e)]
            found[:0] = page[-(limit - len(found)) :] if page else []
            if not query.filters_in_python or len(rows) < PAGE:
                break
            upper = rows[0].seq
        return found
    while len(found) < limit:
        rows = await store.events(
            after=after,
            execution_id=query.execution_id,
            workflow=query.workflow,
            limit=PAGE if query.filters_in_python else min(limit - len(found), PAGE),
        )
        for event in map(event_from_row, rows):
            if query.accepts(event):
                found.append(event)
                if len(found) >= limit:
                    break
        if len(rows) < PAGE:
            break
        after = rows[-1].seq
    return found


async def watch(
    monitor: Monitor,
    store: Store,
    query: EventQuery,
    *,
    after: int | None = None,
    batch: int = BATCH,
) -> AsyncGenerator[list[MonitorEvent] | LaggedNotice, None]:
    """Events matching ``query`` in batches of at most ``batch``: the log's after ``after``
    (none when ``None``), then live ones until the monitor closes, or a ``LaggedNotice`` when
    this reader fell behind."""
    with monitor.subscribe(query.accepts) as sub:
        last = monitor.last_sequence if after is None else after
        if after is not None:
            await store.durable()
            while True:
                rows = await store.events(
                    after=last,
                    execution_id=query.execution_id,
                    workflow=query.workflow,
                    limit=PAGE,
                )
                if rows:
                    last = rows[-1].seq
                    events = [e for e in map(event_from_row, rows) if query.accepts(e)]
                    for start in range(0, len(events), batch):
                        yield events[start : start + batch]
                if len(rows) < PAGE:
                    break
        try:
            while True:
                try:
                    events = await sub.batch(batch)
                except StopAsyncIteration:
                    return
                if events[0].sequence <= last:
                    events = [e for e in events if e.sequence > last]
                    if not events:
                        continue
                last = events[-1].sequence
                yield events
        except Lagged:
            # ``last`` is what this reader was given; what came after is in the log
            yield LaggedNotice(last)


class ExecutionLookup(Protocol):
    """Finds an execution by id (``ExecutionService``)."""

    async def get(self, execution_id: str) -> ExecutionRecord:
        """Raises ``NotFound``."""


class EventLog:
    """The event log and the live events of one orchestrator, for the events APIs."""

    def __init__(self, monitor: Monitor, store: Store, executions: ExecutionLookup) -> None:
        self._monitor = monitor
        self._store = store
        self._executions = executions

    async def history(
        self, query: EventQuery, *, after: int = 0, limit: int = PAGE, newest: bool = False
    ) -> list[MonitorEvent]:
        """``history`` on this orchestrator's store."""
        return await history(self._store, query, after=after, limit=limit, newest=newest)

    def watch(
        self, query: EventQuery, *, after: int | None = None, batch: int = BATCH
    ) -> AsyncGenerator[list[MonitorEvent] | LaggedNotice, None]:
        """``watch`` on this orchestrator's monitor and store."""
        return watch(self._monitor, self._store, query, after=after, batch=batch)

    async def read(
        self,
        query: EventQuery,
        *,
        after: int | None = None,
        follow: bool = False,
        limit: int = 100,
    ) -> AsyncGenerator[list[MonitorEvent] | LaggedNotice, None]:
        """What every events API serves (see ``WatchEventsRequest`` in the proto).

        Without ``follow``: one batch from the log, the first ``limit`` after ``after``, or the
        newest ``limit``. With it: ``watch``; for one execution the log's events come first
        (from the start unless ``after`` says otherwise) and the stream ends once the execution
        has ended. Raises ``NotFound`` for an unknown execution id.
        """
        if not follow:
            yield await self.history(query, after=after or 0, limit=limit, newest=after is None)
            return
        if not query.execution_id:
            async for item in self.watch(query, after=after):
                yield item
            return
        record = await self._executions.get(query.execution_id)
        after = after or 0
        if record.finished:
            while events := await self.history(query, after=after, limit=PAGE):
                yield events
                after = events[-1].sequence
            return
        async for item in self.watch(query, after=after):
            yield item
            if isinstance(item, list) and any(e.type in TERMINAL_EVENTS for e in item):
                return
