"""``Signal``: how a part of the orchestrator tells others what happened, wired in one place.

A part that has something to report (an event was published, an execution was placed or ended, a
group commit landed) declares one ``Signal`` attribute per occurrence and calls it. It never
knows who listens: the wiring module (``orchestrator/wiring.py``) connects the listeners when it
assembles the process, so metrics, the event log and the trigger scheduler hang off the parts
without the parts importing them.

Listeners run synchronously, in the order they were connected, on the caller's path (often the
hot path of every node result): they must be cheap. A listener that raises is logged and counted
(``errors``) and the others still run, so an observer's bug never stops the orchestrator.

    placed: Signal[[ExecutionRecord, float]] = Signal("placed")
    placed.connect(metrics.placed)
    placed(record, waited)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, ParamSpec

log = logging.getLogger(__name__)

P = ParamSpec("P")


class Signal(Generic[P]):
    """A list of listeners called with the same arguments; see the module docstring."""

    __slots__ = ("_listeners", "errors", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: tuple[Callable[P, object], ...] = ()
        self.errors = 0
        """Listener calls that raised (each was logged)."""

    def connect(self, listener: Callable[P, object]) -> None:
        """Call ``listener`` on every emission from now on, after those connected before."""
        self._listeners = (*self._listeners, listener)

    def disconnect(self, listener: Callable[P, object]) -> None:
        """Stop calling ``listener`` (every connection of it); unknown ones are ignored."""
        self._listeners = tuple(x for x in self._listeners if x != listener)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for listener in self._listeners:
            try:
                listener(*args, **kwargs)
            except Exception:
                self.errors += 1
                log.exception("a listener of signal %r failed", self.name)

    def __bool__(self) -> bool:
        """Whether anyone listens (emitters may skip building costly arguments)."""
        return bool(self._listeners)

    def __repr__(self) -> str:
        return f"Signal({self.name!r}, {len(self._listeners)} listeners)"
