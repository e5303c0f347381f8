"""``Retention``: finished executions older than the retention period are deleted.

Every ``retention / 10`` seconds (at least 1 s, at most 5 min) the store deletes finished
executions that ended before ``now - retention``, with their node runs and events, in batches of
``PRUNE_BATCH`` (so a large backlog never holds one long transaction); the table evicts them from
memory. Unfinished executions are never deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from orchestrator.executions.table import ExecutionTable
from orchestrator.store import Store, StoreError

log = logging.getLogger(__name__)

PRUNE_BATCH = 500


class Retention:
    """Deletes old finished executions; ``run`` is its loop."""

    def __init__(
        self,
        store: Store,
        table: ExecutionTable,
        *,
        retention: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._table = table
        self.retention = retention
        self._clock = clock

    async def run(self) -> None:
        """Prune now, then every interval; a store that fails is tried again next time."""
        interval = min(max(self.retention / 10, 1.0), 300.0)
        while True:
            try:
                await self.prune()
            except StoreError as exc:
                log.warning("retention: pruning failed (%s); trying again in %gs", exc, interval)
            await asyncio.sleep(interval)

    async def prune(self, now: float | None = None) -> int:
        """Delete finished executions older than the retention period; return how many."""
        cutoff = (self._clock() if now is None else now) - self.retention
        total = 0
        while True:
            deleted = await self._store.prune(cutoff, PRUNE_BATCH)
            total += deleted
            if deleted < PRUNE_BATCH:
                break
        self._table.evict_finished_before(cutoff)
        if total:
            log.info("retention: deleted %d executions finished before %s", total, cutoff)
        return total
