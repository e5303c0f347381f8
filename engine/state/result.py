"""The execution result object of ARCHITECTURE.md, typed: ``ExecutionResult``.

It is built in one place, ``ExecutionResult.of(state, inputs)``, from an ``ExecutionState``
(an engine's driver at the end of a run; the orchestrator from a checkpoint, for an execution
that no engine finished), and rendered to JSON only at the edges (``to_json``: the engine's
wire message, ``weir run``, the APIs, the store). ``from_json`` reads one back (an engine's
report, a stored result) and says what is wrong with one that does not have the shape.

The orchestrator adds what only it knows with ``with_links`` (the parent and children of a
sub-workflow) and ``with_retries`` (the execution a retry retries, the retry made of one)
instead of patching keys.

Times are kept as the result shows them (ISO 8601 UTC text, ``iso``): a result is a document, and
converting thousands of node times back and forth would cost more than it gives. Node summaries
are ``NamedTuple``: immutable, and about three times cheaper to build than a frozen dataclass (a
10,000-node result has 10,000 of them).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from engine.state.events import ExecutionStatus, NodeStatus
from engine.state.items import MapState
from engine.state.machine import ExecutionState


class ResultFormatError(ValueError):
    """A result read back (an engine's report, a stored row) does not have the result's shape."""


def iso(at: float | None) -> str | None:
    """Seconds since the epoch as an ISO 8601 UTC timestamp with microseconds (None stays None)."""
    if at is None:
        return None
    second = int(at // 1)
    return f"{_iso_second(second)}.{round((at - second) * 1e6) % 1_000_000:06d}Z"


@functools.lru_cache(maxsize=256)
def _iso_second(second: int) -> str:
    # Results of big executions hold thousands of timestamps within a few seconds.
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class ItemSummary(NamedTuple):
    """One item of a node with ``map``: its index, status, attempts, output or error."""

    item_index: int
    """Its place in the list (0-based); ``index`` in JSON and in Lua."""
    status: NodeStatus
    attempts: int
    output: Any
    error: str | None
    started_at: str | None
    finished_at: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.item_index,
            "status": str(self.status),
            "attempts": self.attempts,
            "output": self.output,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class NodeSummary(NamedTuple):
    """One node of a result: its latest visit, the attempts of that visit, how many visits."""

    status: NodeStatus
    outcome: str | None
    attempts: int
    visits: int
    output: Any
    error: str | None
    started_at: str | None
    finished_at: str | None
    reused_from: str | None = None
    """The execution whose result this node reuses (a retry), else None."""
    items: tuple[ItemSummary, ...] | None = None
    """A node with ``map``: its latest visit's items, once expanded (else None)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": str(self.status),
            "outcome": self.outcome,
            "attempts": self.attempts,
            "visits": self.visits,
            "output": self.output,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }
        if self.reused_from is not None:
            out["reused_from"] = self.reused_from
        if self.items is not None:
            out["items"] = [item.to_json() for item in self.items]
        return out


@dataclass(frozen=True, slots=True)
class ResultError:
    """Why an execution did not complete: the node that failed it (None: the execution itself)."""

    node: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ParentRef:
    """The parent execution and its node that started a sub-workflow."""

    execution: str
    node: str


@dataclass(frozen=True, slots=True)
class ChildRef:
    """A sub-workflow execution as its parent's result lists it.

    The orchestrator lists an execution's own children with the ``node`` that started each;
    ``weir run`` lists every descendant with its ``parent`` (the tree is flat there, since only
    the top result is returned). Whichever is None is left out of the JSON.
    """

    id: str
    workflow: str
    version: str
    status: ExecutionStatus
    node: str | None = None
    parent: ParentRef | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "workflow": self.workflow,
            "version": self.version,
            "status": str(self.status),
        }
        if self.node is not None:
            out["node"] = self.node
        if self.parent is not None:
            out["parent"] = {"execution": self.parent.execution, "node": self.parent.node}
        return out


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What an execution did, as the API, the CLI and the event log show it."""

    id: str
    workflow: str
    version: str
    status: ExecutionStatus
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    error: ResultError | None
    started_at: str | None
    finished_at: str | None
    nodes: Mapping[str, NodeSummary]
    """Every node, in definition order."""
    path: tuple[str, ...]
    """Node runs in the order they finished (a loop shows every visit)."""
    parent: ParentRef | None = None
    children: tuple[ChildRef, ...] = ()
    retry_of: str | None = None
    """The execution this one retries (docs/retry.md)."""
    retried_by: str | None = None
    """The retry made of this execution."""

    @classmethod
    def of(
        cls,
        state: ExecutionState,
        inputs: Mapping[str, Any],
        *,
        status: ExecutionStatus | None = None,
        error: ResultError | None = None,
        finished_at: float | None = None,
    ) -> ExecutionResult:
        """The result of ``state`` as it stands; ``status``, ``error`` and ``finished_at`` (when
        given) say how it ended where the state cannot (the orchestrator ending an execution
        that no engine runs, or showing one that runs elsewhere)."""
        err = state.error
        return cls(
            id=state.id,
            workflow=state.definition.name,
            version=state.definition.version,
            status=state.status if status is None else status,
            inputs=inputs,
            outputs=state.result_outputs,
            error=(ResultError(err.node, err.message) if err else None) if error is None else error,
            started_at=iso(state.started_at),
            finished_at=iso(state.finished_at if finished_at is None else finished_at),
            nodes={
                node.id: NodeSummary(
                    node.status,
                    node.outcome,
                    node.attempt,
                    node.visits,
                    node.output,
                    node.error,
                    iso(node.started_at),
                    iso(node.finished_at),
                    node.reused_from,
                    _items(node.items) if node.items is not None else None,
                )
                for node in state.nodes.values()
            },
            path=tuple(state.path),
        )

    @property
    def finished(self) -> bool:
        return self.status.terminal

    def with_status(self, status: ExecutionStatus) -> ExecutionResult:
        return dataclasses.replace(self, status=status)

    def failed(self, message: str) -> ExecutionResult:
        """The same result, failed with ``message`` and no node to blame (an engine's crash)."""
        return dataclasses.replace(
            self, status=ExecutionStatus.FAILED, error=ResultError(None, message)
        )

    def with_links(
        self, parent: ParentRef | None, children: tuple[ChildRef, ...]
    ) -> ExecutionResult:
        """The same result naming its parent and children (what only the orchestrator knows)."""
        if parent == self.parent and children == self.children:
            return self
        return dataclasses.replace(self, parent=parent, children=children)

    def with_retries(self, retry_of: str | None, retried_by: str | None) -> ExecutionResult:
        """The same result naming the execution it retries and its retry (the orchestrator's)."""
        if retry_of == self.retry_of and retried_by == self.retried_by:
            return self
        return dataclasses.replace(self, retry_of=retry_of, retried_by=retried_by)

    def failure_message(self) -> str:
        """For a parent's node: ``node X: message``, or the status when there is no error."""
        if self.error is None:
            return str(self.status)
        where = f"node {self.error.node}: " if self.error.node else ""
        return f"{where}{self.error.message or self.status}"

    # --- JSON, at the edges -------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The result object of ARCHITECTURE.md (``parent``, ``children``, ``retry_of`` and
        ``retried_by`` only when set)."""
        error = self.error
        out: dict[str, Any] = {
            "id": self.id,
            "workflow": self.workflow,
            "version": self.version,
            "status": str(self.status),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "error": {"node": error.node, "message": error.message} if error else None,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "nodes": {node_id: node.to_json() for node_id, node in self.nodes.items()},
            "path": list(self.path),
        }
        if self.parent is not None:
            out["parent"] = {"execution": self.parent.execution, "node": self.parent.node}
        if self.children:
            out["children"] = [child.to_json() for child in self.children]
        if self.retry_of is not None:
            out["retry_of"] = self.retry_of
        if self.retried_by is not None:
            out["retried_by"] = self.retried_by
        return out

    @classmethod
    def from_json(cls, data: Any) -> ExecutionResult:
        """Read ``to_json``'s form back; raises ``ResultFormatError`` saying what is wrong."""
        try:
            if not isinstance(data, Mapping):
                raise TypeError(f"expected an object, got {type(data).__name__}")
            error = data.get("error")
            parent = data.get("parent")
            return cls(
                id=_text(data["id"]),
                workflow=_text(data["workflow"]),
                version=_text(data["version"]),
                status=ExecutionStatus(data["status"]),
                inputs=_mapping(data.get("inputs")),
                outputs=_mapping(data.get("outputs")),
                error=ResultError(error.get("node"), str(error.get("message") or ""))
                if error
                else None,
                started_at=data.get("started_at"),
                finished_at=data.get("finished_at"),
                nodes={
                    _text(node_id): _node(node) for node_id, node in _mapping(data["nodes"]).items()
                },
                path=tuple(_text(p) for p in data.get("path") or ()),
                parent=ParentRef(_text(parent["execution"]), _text(parent["node"]))
                if parent
                else None,
                children=tuple(_child(c) for c in data.get("children") or ()),
                retry_of=_optional_text(data.get("retry_of")),
                retried_by=_optional_text(data.get("retried_by")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ResultFormatError(f"not an execution result: {what}") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _node(data: Any) -> NodeSummary:
    data = _mapping(data)
    return NodeSummary(
        NodeStatus(data["status"]),
        data.get("outcome"),
        int(data.get("attempts") or 0),
        int(data.get("visits") or 0),
        data.get("output"),
        data.get("error"),
        data.get("started_at"),
        data.get("finished_at"),
        data.get("reused_from"),
        tuple(_item(i) for i in data["items"]) if data.get("items") is not None else None,
    )


def _items(ms: MapState) -> tuple[ItemSummary, ...]:
    return tuple(
        ItemSummary(
            index,
            item.status,
            item.attempt,
            item.output,
            item.error,
            iso(item.started_at),
            iso(item.finished_at),
        )
        for index, item in enumerate(ms.states)
    )


def _item(data: Any) -> ItemSummary:
    data = _mapping(data)
    return ItemSummary(
        int(data["index"]),
        NodeStatus(data["status"]),
        int(data.get("attempts") or 0),
        data.get("output"),
        data.get("error"),
        data.get("started_at"),
        data.get("finished_at"),
    )


def _child(data: Any) -> ChildRef:
    data = _mapping(data)
    parent = data.get("parent")
    return ChildRef(
        id=_text(data["id"]),
        workflow=_text(data["workflow"]),
        version=_text(data["version"]),
        status=ExecutionStatus(data["status"]),
        node=data.get("node"),
        parent=ParentRef(_text(parent["execution"]), _text(parent["node"])) if parent else None,
    )
