"""``Parking``: which runs of an engine only wait, and stopping them so that their slots free.

A run *only waits* when every attempt it runs waits on the orchestrator (a durable task's end:
``Run.waiting`` counts them) and nothing else is to be done now (``ExecutionDriver.only_waits``;
retry timers may be pending). One that has only waited, with no activity at all (``Run.activity``
counts results and waits begun or ended), for ``park_after`` seconds — at most
``FULL_PARK_AFTER`` while the engine is full, since its slot is what queued executions need —
is parked: ``Run.parked`` says so, with the time of its earliest timer, and its task is
cancelled; the service then reports it parked instead of finished (``service.py``). Held runs
(no stream) are not parked: no orchestrator would hear of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from weir.proto.v1 import engine_pb2 as pb

from engine.server.session import Phase, Run

log = logging.getLogger(__name__)

FULL_PARK_AFTER = 1.0
"""While the engine is full, runs that only wait are parked after this long when
``park_after`` is longer."""


class Parking:
    """Finds the runs to park; see the module docstring."""

    def __init__(
        self,
        park_after: float,
        runs: Callable[[], Iterable[Run]],
        full: Callable[[], bool],
    ) -> None:
        self.park_after = park_after
        """Seconds a run may only wait before it is parked; 0: never park."""
        self._runs = runs
        self._full = full
        self._quiet: dict[str, tuple[int, float]] = {}
        """Runs seen only waiting: (their activity count then, since when)."""

    @property
    def every(self) -> float:
        """How often to look (seconds)."""
        return min(FULL_PARK_AFTER / 4, max(0.02, self.park_after / 4))

    def sweep(self, now: float) -> int:
        """Park every run that has only waited long enough; returns how many."""
        quiet = self._quiet
        after = self.park_after
        if self._full():
            after = min(after, FULL_PARK_AFTER)
        parked = 0
        seen: set[str] = set()
        for run in list(self._runs()):
            if run.phase is not Phase.RUNNING or run.session is None or run.parked is not None:
                continue
            if not run.driver.only_waits(run.waiting):
                continue
            seen.add(run.id)
            since = quiet.get(run.id)
            if since is None or since[0] != run.activity:
                quiet[run.id] = (run.activity, now)
            elif now - since[1] >= after:
                self.park(run)
                parked += 1
        for execution_id in [e for e in quiet if e not in seen]:
            del quiet[execution_id]
        return parked

    def park(self, run: Run) -> None:
        """Stop ``run`` without a result: the orchestrator places it again when its wait ends."""
        self._quiet.pop(run.id, None)
        run.parked = pb.ExecutionParked(
            execution_id=run.id,
            lease=run.lease,
            wake_at=run.driver.wake_at(),
            waiting=run.waiting,
        )
        log.info("execution %s lease %d parked (%d waiting)", run.id, run.lease, run.waiting)
        if run.task is not None:
            run.task.cancel()
