"""A ``weir run`` journal file: an in-process execution's checkpoint, as JSON Lines.

``weir run FILE --journal PATH`` writes one line naming the execution (``{"execution": id,
"workflow", "version", "inputs"}``), then one line per checkpoint record (``NodeResult``) as the
state machine accepts it, flushed each time: a run that fails, is cancelled or is killed leaves
what it finished. ``weir run FILE --retry PATH [--from NODE]`` reads it back and starts a new
execution that reuses what still holds (``engine.state.reuse.plan_reuse``), exactly as
``weir retry`` does on a cluster.

Errors: ``JournalError`` (a ``ValueError``) says which line of which file is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from engine.state.events import NodeResult, NodeStatus


class JournalError(ValueError):
    """A journal file that cannot be read: missing, not JSON Lines, or a record without a field."""


@dataclass(frozen=True, slots=True)
class Journal:
    """A journal read back: which execution it is and its records, in order."""

    execution: str
    workflow: str
    version: str
    inputs: dict[str, Any]
    records: list[NodeResult]


def record_to_json(r: NodeResult) -> dict[str, Any]:
    """A checkpoint record as a JSON object (fields left at their defaults are left out)."""
    out: dict[str, Any] = {
        "node": r.node,
        "visit": r.visit,
        "attempt": r.attempt,
        "status": str(r.status),
        "started_at": r.started_at,
        "finished_at": r.finished_at,
    }
    for key, value in (
        ("output", r.output),
        ("outcome", r.outcome),
        ("error", r.error),
        ("route", r.route),
        ("item", r.item),
        ("reused_from", r.reused_from),
    ):
        if value is not None:
            out[key] = value
    if r.retryable:
        out["retryable"] = True
    return out


def record_from_json(data: Any) -> NodeResult:
    """``record_to_json``'s form back; raises ``KeyError``/``TypeError``/``ValueError``."""
    if not isinstance(data, dict):
        raise TypeError(f"expected an object, got {type(data).__name__}")
    item = data.get("item")
    return NodeResult(
        node=str(data["node"]),
        visit=int(data["visit"]),
        attempt=int(data["attempt"]),
        status=NodeStatus(data["status"]),
        output=data.get("output"),
        outcome=data.get("outcome"),
        error=data.get("error"),
        retryable=bool(data.get("retryable", False)),
        route=data.get("route"),
        started_at=float(data.get("started_at") or 0.0),
        finished_at=float(data.get("finished_at") or 0.0),
        item=int(item) if item is not None else None,
        reused_from=data.get("reused_from"),
    )


class JournalWriter:
    """Appends an execution's records to a journal file, one flushed line each."""

    def __init__(self, path: str | Path) -> None:
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 -- closed by close()

    def header(self, execution: str, workflow: str, version: str, inputs: dict[str, Any]) -> None:
        head = {"execution": execution, "workflow": workflow, "version": version, "inputs": inputs}
        self._line(head)

    def record(self, r: NodeResult) -> None:
        self._line(record_to_json(r))

    def _line(self, data: dict[str, Any]) -> None:
        self._file.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_journal(path: str | Path) -> Journal:
    """Read a journal file; raises ``JournalError`` naming the file and line that is wrong."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise JournalError(f"{path}: {exc.strerror or exc}") from None
    if not lines:
        raise JournalError(f"{path}: empty: not a journal written by weir run --journal")
    try:
        head = json.loads(lines[0])
        execution, workflow = str(head["execution"]), str(head["workflow"])
        version, inputs = str(head["version"]), head.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise TypeError("inputs must be an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise JournalError(f"{path}:1: not a journal header: {_why(exc)}") from None
    records = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            records.append(record_from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):
                break  # the last line, cut short by a kill: the record never was
            raise JournalError(f"{path}:{number}: not a journal record: {_why(exc)}") from None
    return Journal(execution, workflow, version, inputs, records)


def _why(exc: Exception) -> str:
    return f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
