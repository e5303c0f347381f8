"""The execution result object of ARCHITECTURE.md, built from an ``ExecutionState``."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from engine.state.machine import ExecutionState


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


def execution_result(state: ExecutionState, inputs: dict[str, Any]) -> dict[str, Any]:
    """``{"id", "workflow", "version", "status", "inputs", "outputs", "error", "nodes", "path"}``.

    Every node appears, in definition order, with its latest visit's status, outcome, output and
    error, the attempts of that visit, and how many visits it had.
    """
    error = state.error
    return {
        "id": state.id,
        "workflow": state.definition.name,
        "version": state.definition.version,
        "status": str(state.status),
        "inputs": inputs,
        "outputs": state.result_outputs,
        "error": {"node": error.node, "message": error.message} if error else None,
        "started_at": iso(state.started_at),
        "finished_at": iso(state.finished_at),
        "nodes": {
            node.id: {
                "status": str(node.status),
                "outcome": node.outcome,
                "attempts": node.attempt,
                "visits": node.visits,
                "output": node.output,
                "error": node.error,
                "started_at": iso(node.started_at),
                "finished_at": iso(node.finished_at),
            }
            for node in state.nodes.values()
        },
        "path": list(state.path),
    }
