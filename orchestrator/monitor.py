"""Monitoring events: numbered, announced to listeners, fanned out to subscribers.

Every event is announced on ``Monitor.published`` (a ``Signal``: the wiring connects the journal,
which writes it to the store's event log, then the metrics and the trigger scheduler), then put
in the queue of every subscriber whose filter accepts it.

A subscriber has a bounded queue. When it falls that far behind it is cut off with a ``lagged``
marker naming the last sequence it received, so a slow reader never slows the orchestrator; it
can read what it missed from the event log and resubscribe.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from engine.state.events import TERMINAL_EXECUTION_STATUSES
from orchestrator.signals import Signal


class Severity(IntEnum):
    DEBUG = 1
    INFO = 2
    WARNING = 3
    ERROR = 4


_SEVERITY = {
    "execution.failed": Severity.ERROR,
    "node.failed": Severity.WARNING,
    "node.retrying": Severity.WARNING,
    "item.failed": Severity.WARNING,
    "item.retrying": Severity.WARNING,
    "engine.left": Severity.WARNING,
    "engine.unhealthy": Severity.WARNING,
    "execution.failover": Severity.WARNING,
    "execution.cancelled": Severity.WARNING,
    "trigger.skipped": Severity.WARNING,
}


TERMINAL_EVENTS = frozenset(f"execution.{status}" for status in TERMINAL_EXECUTION_STATUSES)
"""The types of an execution's last event."""


def severity_of(event_type: str) -> Severity:
    return _SEVERITY.get(event_type, Severity.INFO)


@dataclass(slots=True)
class MonitorEvent:
    sequence: int
    type: str
    at: float
    severity: Severity
    workflow: str = ""
    version: str = ""
    execution_id: str = ""
    node: str | None = None
    visit: int = 0
    attempt: int = 0
    engine_id: str = ""
    message: str = ""
    data: Mapping[str, Any] | None = None


EventFilter = Callable[[MonitorEvent], bool]


class Lagged(Exception):
    """The subscriber fell too far behind and was cut off after ``last_sequence``."""

    def __init__(self, last_sequence: int) -> None:
        super().__init__(f"subscriber fell behind; resume after sequence {last_sequence}")
        self.last_sequence = last_sequence


class Subscription:
    """Events accepted by a filter, from the moment of subscribing: ``async for event in sub``.

    Iteration raises ``Lagged`` once the subscriber fell more than its buffer behind.
    """

    __slots__ = ("_monitor", "accepts", "lagged", "last", "queue")

    def __init__(self, monitor: Monitor, accepts: EventFilter | None, size: int) -> None:
        self._monitor = monitor
        self.accepts = accepts
        self.queue: asyncio.Queue[MonitorEvent | None] = asyncio.Queue(size)
        self.lagged = False
        self.last = 0

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> MonitorEvent:
        if self.lagged and self.queue.empty():
            self.close()
            raise Lagged(self.last)
        event = await self.queue.get()
        if event is None:
            self.close()
            raise StopAsyncIteration
        return event

    async def batch(self, most: int) -> list[MonitorEvent]:
        """The next event and up to ``most - 1`` more already queued (one wake-up for many).

        Raises ``Lagged`` like iteration, and ``StopAsyncIteration`` once the monitor closed.
        """
        batch = [await self.__anext__()]
        queue = self.queue
        while len(batch) < most and not queue.empty():
            event = queue.get_nowait()
            if event is None:
                queue.put_nowait(None)  # the end, for the next call
                break
            batch.append(event)
        return batch

    def close(self) -> None:
        self._monitor.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Monitor:
    """Numbers events and hands them to listeners and subscribers; see the module docstring."""

    def __init__(self, *, subscriber_buffer: int = 10_000) -> None:
        self._sequence = itertools.count(1)
        self.last_sequence = 0
        """The sequence of the latest event published (or resumed from)."""
        self._subscribers: set[Subscription] = set()
        self._buffer = subscriber_buffer
        self.published: Signal[[MonitorEvent, bytes | None]] = Signal("event published")
        """Every event, with its data as JSON when the publisher already had it encoded."""
        self.dropped_subscribers = 0

    @property
    def subscriber_count(self) -> int:
        """Open subscriptions."""
        return len(self._subscribers)

    def resume_after(self, sequence: int) -> None:
        """Number the next event ``sequence + 1`` (the last one in the durable log)."""
        self._sequence = itertools.count(sequence + 1)
        self.last_sequence = sequence

    def publish(
        self,
        type_: str,
        *,
        at: float | None = None,
        data_json: bytes | None = None,
        **fields: Any,
    ) -> MonitorEvent:
        event = MonitorEvent(
            next(self._sequence),
            type_,
            time.time() if at is None else at,
            severity_of(type_),
            **fields,
        )
        self.last_sequence = event.sequence
        self.published(event, data_json)
        for sub in self._subscribers:
            if sub.lagged or (sub.accepts is not None and not sub.accepts(event)):
                continue
            try:
                sub.queue.put_nowait(event)
                sub.last = event.sequence
            except asyncio.QueueFull:
                sub.lagged = True
                self.dropped_subscribers += 1
        return event

    def subscribe(self, accepts: EventFilter | None = None) -> Subscription:
        """Subscribe now; use as a context manager so the subscription ends with the reader."""
        sub = Subscription(self, accepts, self._buffer)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def close(self) -> None:
        """End every subscription."""
        for sub in self._subscribers:
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:
                sub.lagged = True
