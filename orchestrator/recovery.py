"""What a starting orchestrator reads back from the store before it serves.

``load_workflows`` fills the registry with every stored version. ``recover`` rebuilds every
unfinished execution with its checkpoint (its node runs, in journal order), puts it in the table
and hands it to ``Lifecycle.resume``, which decides where it goes:

* never placed: back in the queue;
* placed before the restart: wait up to ``REATTACH_TIMEOUT`` for its engine to connect and list
  it as held, then it is attached again (nothing is re-run); if its engine connects without it,
  or never connects, it is re-placed from its checkpoint (``Lifecycle.reattach_expired``);
* cancelled before the restart, or its version deleted since: ended here.

A parent's finished children are read back too, so that its result names them.
"""

from __future__ import annotations

import asyncio
import logging

from orchestrator.errors import NotFound
from orchestrator.executions.record import ExecutionRecord, Where
from orchestrator.executions.table import ExecutionTable
from orchestrator.lifecycle import Lifecycle
from orchestrator.registry import Registry, WorkflowVersion
from orchestrator.rows import from_row
from orchestrator.store import Store

log = logging.getLogger(__name__)

MAX_CHILDREN = 10_000
"""Finished children read back per unfinished parent."""


async def load_workflows(store: Store, registry: Registry) -> None:
    rows = await store.load_workflows()
    for row in rows:
        registry.load(row.source, registered_at=row.registered_at, deprecated=row.deprecated)
    if rows:
        log.info("loaded %d workflow versions from %s", len(rows), store.url)


def pinned(registry: Registry, name: str, version: str) -> WorkflowVersion | None:
    """The registered version an execution is pinned to; None once it was deleted."""
    try:
        return registry.get(name, version)
    except NotFound:
        return None


async def recover(
    store: Store, registry: Registry, table: ExecutionTable, lifecycle: Lifecycle
) -> int:
    """Resume every unfinished execution; return how many wait for their engine."""
    rows = await store.unfinished_executions()
    if not rows:
        return 0
    # A retry has a checkpoint (the records it reuses) before it was ever placed.
    journals = await store.node_runs([r.id for r in rows if r.placements or r.retry_of])
    recovered: list[ExecutionRecord] = []
    for row in rows:
        record = from_row(row, pinned(registry, row.workflow, row.version), journals.get(row.id))
        table.add(record)
        recovered.append(record)
    for record in recovered:
        if record.wf is not None and record.wf.uses:
            for child in await store.list_executions(parent_id=record.id, limit=MAX_CHILDREN):
                if child.id not in table and child.finished:
                    table.add(from_row(child, pinned(registry, child.workflow, child.version)))
    for record in recovered:  # oldest first
        lifecycle.resume(record)
    waiting = sum(1 for r in recovered if r.placement.where is Where.REATTACH)
    log.info(
        "resumed %d unfinished executions: %d wait for their engine to re-attach",
        len(recovered),
        waiting,
    )
    return waiting


async def reattach_deadline(lifecycle: Lifecycle, seconds: float) -> None:
    """After ``seconds``, re-place what no engine re-attached."""
    await asyncio.sleep(seconds)
    lifecycle.reattach_expired(seconds)
