"""``SubWorkflows``: parents and children, for ``workflow`` nodes.

A ``workflow`` node's attempt asks its engine for a child (``ChildRequested``); the child is an
ordinary execution with a ``ParentLink`` (``parent/node/visit/attempt``, with the item's index
before the attempt for an item of a node with ``map``), found again by that key — in memory,
else in the store — so a request re-sent after a reconnect or a failover gets the same child
instead of a second one. ``plan`` decides what a request needs: nothing (the child
exists; if it has ended, its parent is answered again now), or a new child — its workflow version
(the greatest in the requested range) and its checked inputs — which the ``Lifecycle`` creates.
A request that cannot be met (the parent is ending, the nesting is too deep, no such workflow,
bad inputs) is answered at once with a failure, which fails that node attempt.

When a child ends (durably), ``tell_parent`` sends its outcome to the engine running the parent;
a parent that is not placed at that moment asks again from wherever it runs next.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.definition.values import resolve_inputs
from engine.server import codec
from engine.state.events import ExecutionStatus
from engine.state.result import ChildRef, ParentRef
from orchestrator.engines.messages import ChildAnswer, ChildRequested
from orchestrator.errors import NotFound
from orchestrator.executions.record import ExecutionRecord, ParentLink
from orchestrator.executions.table import ExecutionTable
from orchestrator.journal import Journal
from orchestrator.placement import Placement
from orchestrator.registry import Registry, WorkflowVersion
from orchestrator.rows import from_row
from orchestrator.store import Store, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChildPlan:
    """A child to create: its version, its inputs (checked) and where it hangs."""

    wf: WorkflowVersion
    inputs: dict[str, Any]
    parent: ParentLink
    depth: int


class SubWorkflows:
    """Sub-workflow requests and answers; see the module docstring."""

    def __init__(
        self,
        *,
        table: ExecutionTable,
        store: Store,
        registry: Registry,
        placement: Placement,
        journal: Journal,
        max_depth: int,
    ) -> None:
        self._table = table
        self._store = store
        self._registry = registry
        self._placement = placement
        self._journal = journal
        self.max_depth = max_depth
        self._lookups: set[str] = set()
        """Child keys being looked up in the store right now."""

    def known(self, parent: ExecutionRecord, request: ChildRequested) -> bool:
        """True when nothing needs to be looked up: the child is in memory (answered again if
        it has ended) or already being looked up."""
        at = ParentLink(parent.id, request.node, request.visit, request.attempt, request.item)
        child = self._table.by_child_key(at.key)
        if child is not None:
            if child.done.is_set():
                self.tell_parent(child)
            return True  # the parent hears when it ends
        return at.key in self._lookups

    async def plan(self, parent: ExecutionRecord, request: ChildRequested) -> ChildPlan | None:
        """What to do about a request ``known`` said needs looking up; see the module docstring."""
        at = ParentLink(parent.id, request.node, request.visit, request.attempt, request.item)
        self._lookups.add(at.key)
        try:
            row = await self._store.find_execution(child_key=at.key)
            if row is not None:  # started before a restart, evicted from memory since
                child = from_row(row, self._pinned(row.workflow, row.version))
                self._table.add(child)
                if child.finished:
                    self.tell_parent(child)
                return None
            error = self._refusal(parent)
            if error is None:
                try:
                    wf = self._registry.resolve(request.workflow, request.version_range)
                    inputs = codec.from_json(request.inputs_json, "inputs_json") or {}
                    return ChildPlan(
                        wf, resolve_inputs(wf.definition, inputs), at, parent.depth + 1
                    )
                except Exception as exc:  # NotFound, InputError, CodecError: the node fails
                    error = f"sub-workflow {request.workflow}@{request.version_range}: {exc}"
            self.answer(parent, at, "", ExecutionStatus.FAILED, None, error)
            return None
        except StoreError as exc:
            self._journal.store_failed(exc)
            return None
        finally:
            self._lookups.discard(at.key)

    def _pinned(self, name: str, version: str) -> WorkflowVersion | None:
        try:
            return self._registry.get(name, version)
        except NotFound:
            return None

    def _refusal(self, parent: ExecutionRecord) -> str | None:
        if parent.finished or parent.cancel_reason is not None:
            return f"parent {parent.id} is ending"
        if parent.depth + 1 > self.max_depth:
            return (
                f"sub-workflows nested deeper than {self.max_depth} levels "
                "(MAX_SUBWORKFLOW_DEPTH): is a workflow calling itself?"
            )
        return None

    def tell_parent(self, child: ExecutionRecord) -> None:
        """Send an ended child's outcome to its parent's engine (if the parent is placed)."""
        assert child.parent is not None and child.result is not None
        result = child.result
        message = "" if child.status is ExecutionStatus.COMPLETED else result.failure_message()
        self.answer(None, child.parent, child.id, child.status, result.outputs, message)

    def answer(
        self,
        parent: ExecutionRecord | None,
        at: ParentLink,
        child_id: str,
        status: ExecutionStatus,
        outputs: Mapping[str, Any] | None,
        error: str,
    ) -> None:
        parent = parent or self._table.get(at.execution_id)
        link = self._placement.engine_of(parent) if parent is not None else None
        if parent is None or link is None:
            return  # ended, or not placed now: its engine asks again when it gets there
        link.child_finished(
            ChildAnswer(
                execution_id=parent.id,
                lease=parent.placement.lease,
                node=at.node,
                visit=at.visit,
                attempt=at.attempt,
                child_id=child_id,
                status=status,
                outputs_json=codec.to_json(outputs) if outputs is not None else b"",
                error=error,
                item=at.item,
            )
        )

    def links(self, record: ExecutionRecord) -> tuple[ParentRef | None, tuple[ChildRef, ...]]:
        """The parent and the children (those in memory) a result names."""
        parent = record.parent
        return (
            ParentRef(parent.execution_id, parent.node) if parent is not None else None,
            tuple(
                ChildRef(child.id, child.name, child.version, child.status, node=child.parent.node)
                for child in self._table.children_of(record)
                if child.parent is not None
            ),
        )
