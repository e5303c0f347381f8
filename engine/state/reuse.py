"""What a retry of an execution reuses: ``plan_reuse``, pure (docs/retry.md).

A retry is a new execution of the same workflow version with the same inputs whose checkpoint
starts with the records of the original's journal that still hold. The state machine replays
them like any checkpoint (``ExecutionState.resume``): the nodes they finish are not run again,
everything else runs. So the whole decision is which records to copy:

1. **The start set**: the nodes that did not finish well in the original -- failed, cancelled,
   still running or never decided (replaying the original's journal says which), and the node
   an execution error names (``max_visits``) -- plus ``from_node`` when given.
2. **The rerun set** ``R``: the start set closed under dependents (``depends_on``, whatever the
   trigger rule) and transition targets (every node ``next`` can enter, by outcome or edge). A
   node outside ``R`` depends only on nodes outside ``R``, so its records replay as they ran.
3. **The records** of every node outside ``R``, in journal order, each copied with
   ``reused_from`` naming where it really ran: the record's own ``reused_from`` when it was
   already reused (a retry of a retry), else the original's id.
4. **Map**: a mapped node that is itself in the start set, is not ``from_node`` and that no
   other node of ``R`` (nor itself, through a loop) reaches, keeps its last visit's expansion
   and the records of the items that completed, so only its failed and unfinished items run
   again; its final record and the other items' records are dropped.

The candidates are then replayed as the retry will replay them: the records the state machine
accepts are the checkpoint, and the nodes they finish are the reused ones. A record it would not
accept is left out (it would be ignored anyway: the machine takes a record only for a node
running at that visit and attempt). That happens to a node that ran after a node of ``R``
decided something without a record -- a transition target skipped as "not reached" once nothing
ran, say: replayed, nothing has stopped running yet, so its ``all_done`` dependent is not reached
either and runs again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.definition.model import END, Definition
from engine.state.events import NodeResult, NodeStatus
from engine.state.machine import ExecutionState

_FINISHED_WELL = frozenset({NodeStatus.COMPLETED, NodeStatus.SKIPPED})
"""A node that ended so in the original is not started again by itself (a skip is decided
again by the replay when it depended on a node that runs again)."""


@dataclass(frozen=True, slots=True)
class ReusePlan:
    """What a retry copies from the original and what runs again."""

    records: list[NodeResult]
    """The records to seed the retry's checkpoint with, in journal order, ``reused_from`` set."""
    rerun: frozenset[str]
    """The rerun set: nodes whose records are dropped (they run again when reached; so do nodes
    that never ran)."""
    start: frozenset[str]
    """The start set ``rerun`` was closed from: empty when every node finished well and no
    ``from_node`` was given (a retry would only repeat the original)."""
    reused: tuple[str, ...]
    """Nodes whose result is reused as a whole (they do not run again), in definition order."""
    partial: tuple[str, ...] = ()
    """Mapped nodes whose completed items are reused while the others run again."""


def plan_reuse(
    definition: Definition,
    journal: Sequence[NodeResult],
    origin_id: str,
    from_node: str | None = None,
) -> ReusePlan:
    """Plan a retry of the execution ``origin_id`` of ``definition`` whose journal is
    ``journal``; see the module docstring. Raises ``ValueError`` for an unknown ``from_node``."""
    if from_node is not None and from_node not in definition.by_id:
        raise ValueError(f"unknown node {from_node!r}")
    known = [r for r in journal if r.node in definition.by_id]
    start = _start_set(definition, known)
    if from_node is not None:
        start.add(from_node)
    rerun = _closure(definition, start)
    partial = {
        node_id
        for node_id in start
        if definition.by_id[node_id].map is not None
        and node_id != from_node
        and not _reached(definition, node_id, _successors(definition, node_id) | start - {node_id})
    }
    keep = _partial_map_records(known, partial)
    candidates = [
        dataclasses.replace(r, reused_from=r.reused_from or origin_id)
        for i, r in enumerate(known)
        if r.node not in rerun or i in keep
    ]
    # Replay them as the retry will: what the state machine accepts is the checkpoint, and the
    # nodes it finishes are the reused ones (a record the replay would ignore -- a node that ran
    # after one that now runs again decided something -- is left out rather than shown reused).
    state = ExecutionState(definition, "plan", random=lambda: 0.0)
    state.resume(candidates, 0.0)
    return ReusePlan(
        records=list(state.journal),
        rerun=frozenset(rerun),
        start=frozenset(start),
        reused=tuple(
            n.id
            for n in state.nodes.values()
            if n.reused_from is not None and n.status in _FINISHED_WELL
        ),
        partial=tuple(n.id for n in definition.nodes if n.id in partial),
    )


def _start_set(definition: Definition, journal: Sequence[NodeResult]) -> set[str]:
    """The nodes that did not finish well when ``journal`` is replayed."""
    state = ExecutionState(definition, "plan", random=lambda: 0.0)
    state.resume(journal, 0.0)
    start = {n.id for n in state.nodes.values() if n.status not in _FINISHED_WELL}
    if state.error is not None and state.error.node is not None:
        start.add(state.error.node)  # max_visits: the node may show its last visit completed
    return start


def _successors(definition: Definition, node_id: str) -> set[str]:
    """Its dependents and every node its ``next`` can enter."""
    node = definition.by_id[node_id]
    out = set(definition.dependents.get(node_id, ()))
    if node.next is not None:
        out.update(node.next.targets() - {END})
    return out


def _closure(definition: Definition, start: Iterable[str]) -> set[str]:
    seen = set(start)
    stack = list(seen)
    while stack:
        for successor in _successors(definition, stack.pop()):
            if successor not in seen:
                seen.add(successor)
                stack.append(successor)
    return seen


def _reached(definition: Definition, node_id: str, sources: set[str]) -> bool:
    """Whether ``node_id`` is in the closure of ``sources``."""
    return node_id in _closure(definition, sources)


def _partial_map_records(journal: Sequence[NodeResult], nodes: set[str]) -> set[int]:
    """Positions in ``journal`` of the records of ``nodes`` (mapped nodes) to keep: every
    record of their earlier visits, and of their last visit its expansion and the records of
    each item whose last record completed. A last visit that never expanded keeps nothing."""
    if not nodes:
        return set()
    last_visit: dict[str, int] = {}
    for r in journal:
        if r.node in nodes:
            last_visit[r.node] = max(last_visit.get(r.node, 0), r.visit)
    expanded: set[str] = set()
    item_ended: dict[tuple[str, int], NodeStatus] = {}
    for r in journal:
        if r.node not in nodes or r.visit != last_visit[r.node]:
            continue
        if r.item is None and r.attempt == 0 and r.status is NodeStatus.RUNNING:
            expanded.add(r.node)
        elif r.item is not None:
            item_ended[(r.node, r.item)] = r.status
    keep: set[int] = set()
    for i, r in enumerate(journal):
        if r.node not in nodes:
            continue
        if r.visit != last_visit[r.node]:
            keep.add(i)
        elif r.node not in expanded:
            continue
        elif r.item is None:
            if r.attempt == 0 and r.status is NodeStatus.RUNNING:
                keep.add(i)
        elif item_ended[(r.node, r.item)] is NodeStatus.COMPLETED:
            keep.add(i)
    return keep
