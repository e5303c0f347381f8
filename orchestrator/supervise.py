"""``Supervisor``: the orchestrator's background work, watched so that nothing dies silently.

Two kinds of work, both owned (cancelled and awaited by ``stop``), never orphan tasks:

* **loops** (``loop``): discovery, retention, the trigger scheduler, the journal's after-commit
  callbacks, each engine link's stream and health check. They are meant to run until stopped.
  One that raises (or returns) is logged with its traceback, counted, and recorded as a problem:
  ``health()`` turns unhealthy, which ``/readyz`` and the gRPC health service report (the
  wiring connects ``changed``). It is not restarted: a loop that failed on a bug would most
  likely fail again, and a restart would hide it; an operator (or Kubernetes, through
  readiness) acts on it.
* **jobs** (``spawn``): short one-off work (a sub-workflow lookup, the re-attach deadline after
  a restart, a health status change). One that raises is logged and counted; the process stays
  healthy.

Counts by name (bounded: names are kinds of work, never ids) are in ``stats()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from orchestrator.signals import Signal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Health:
    """Whether every loop still runs; ``problems`` says which failed and how."""

    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class SupervisorStats:
    failures: tuple[tuple[str, int], ...]
    """(kind of work, failures), loops and jobs alike."""
    healthy: bool


class Supervisor:
    """Runs and watches background work; see the module docstring."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: dict[str, int] = {}
        self._problems: dict[str, str] = {}
        self.changed: Signal[[Health]] = Signal("health changed")
        """Emitted when a loop fails (the health went from ok to not, or got a new problem)."""

    def loop(self, name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` until cancelled; a failure makes the process unhealthy."""
        return self._start(name, work, loop=True)

    def spawn(self, name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` once; a failure is logged and counted."""
        return self._start(name, work, loop=False)

    def _start(
        self, name: str, work: Coroutine[Any, Any, None], *, loop: bool
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(self._watch(name, work, loop=loop), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # cancelled before its first step, the task never awaited ``work``: close it quietly
        task.add_done_callback(lambda _: work.close())
        return task

    async def _watch(self, name: str, work: Coroutine[Any, Any, None], *, loop: bool) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failures[name] = self._failures.get(name, 0) + 1
            if loop:
                log.exception("background loop %r failed; the orchestrator is unhealthy", name)
                self._problems[name] = f"{name} failed: {type(exc).__name__}: {exc}"
                self.changed(self.health())
            else:
                log.exception("background job %r failed", name)
            return
        if loop:
            self._failures[name] = self._failures.get(name, 0) + 1
            log.error("background loop %r stopped by itself; the orchestrator is unhealthy", name)
            self._problems[name] = f"{name} stopped"
            self.changed(self.health())

    def health(self) -> Health:
        return Health(tuple(self._problems.values()))

    def stats(self) -> SupervisorStats:
        return SupervisorStats(tuple(sorted(self._failures.items())), not self._problems)

    async def stop(self) -> None:
        """Cancel everything still running and wait for it; idempotent."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
