"""What ``weir events`` and ``weir logs`` print: events as lines or JSON, and one execution's
timeline grouped by node run. Pure functions of protobuf events and result dicts, so they are
tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar

from rich.text import Text
from weir.proto.v1 import orchestrator_pb2 as pb

from engine.server import codec
from engine.state.result import iso
from orchestrator.cli.run import _STYLE, item_progress

T = TypeVar("T")
SEVERITIES = ("debug", "info", "warning", "error")
_SEVERITY_STYLE = {"debug": "dim", "info": "cyan", "warning": "yellow", "error": "bold red"}
_RUN_STYLE = {**_STYLE, "retrying": "yellow"}
_RUN_END = {
    "node.completed": "completed",
    "node.failed": "failed",
    "node.retrying": "retrying",
    "node.skipped": "skipped",
    "node.cancelled": "cancelled",
    "node.reused": "reused",
}
MAX_LIMIT = 10_000
"""The most events the server returns for one non-following read."""
SHORT_ID = 8
WIDTH = 100
"""Outputs and errors longer than this are cut with an ellipsis."""


# --- pure formatting -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventView:
    """One ``pb.Event`` with its data decoded, as the CLI shows it."""

    sequence: int
    type: str
    at: float
    severity: str
    workflow: str = ""
    version: str = ""
    execution_id: str = ""
    node: str | None = None
    visit: int = 0
    attempt: int = 0
    engine_id: str = ""
    message: str = ""
    data: Any = None

    @classmethod
    def from_pb(cls, m: pb.Event) -> EventView:
        try:
            data = codec.from_json(m.data_json, "event data")
        except codec.CodecError:
            data = m.data_json.decode("utf-8", errors="replace")
        return cls(
            sequence=m.sequence,
            type=m.type,
            at=codec.seconds(m.at),
            severity=severity_name(m.severity),
            workflow=m.workflow,
            version=m.version,
            execution_id=m.execution_id,
            node=m.node if m.HasField("node") else None,
            visit=m.visit,
            attempt=m.attempt,
            engine_id=m.engine_id,
            message=m.message,
            data=data,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "type": self.type,
            "at": iso(self.at),
            "severity": self.severity,
            "workflow": self.workflow,
            "version": self.version,
            "execution_id": self.execution_id,
            "node": self.node,
            "visit": self.visit,
            "attempt": self.attempt,
            "engine_id": self.engine_id,
            "message": self.message,
            "data": self.data,
        }


def severity_name(value: int) -> str:
    if 1 <= value <= len(SEVERITIES):
        return SEVERITIES[value - 1]
    return "info"


def severity_value(name: str | None) -> int:
    """``--severity`` as the ``pb.Severity`` number; 0 (every event) when not given."""
    return SEVERITIES.index(name) + 1 if name else 0


def clock(at: float, tz: tzinfo | None = None) -> str:
    """``HH:MM:SS.mmm`` in ``tz`` (the local time zone by default)."""
    moment = datetime.fromtimestamp(at, UTC).astimezone(tz)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def timestamp(at: float, tz: tzinfo | None = None) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmm`` in ``tz`` (the local time zone by default)."""
    moment = datetime.fromtimestamp(at, UTC).astimezone(tz)
    return moment.strftime("%Y-%m-%d ") + clock(at, tz)


def duration(seconds: float) -> str:
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms" if seconds >= 0.001 else f"{seconds * 1000:.1f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def short(value: Any, width: int = WIDTH) -> str:
    """``value`` on one line (JSON unless a string), cut to ``width`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        where = f"node {error['node']}: " if error.get("node") else ""
        return where + str(error.get("message") or "")
    return str(error)


def describe(e: EventView) -> str:
    """What happened, in a few words: the server's message, else the interesting data."""
    if e.message:
        return e.message
    data = e.data if isinstance(e.data, dict) else {}
    if not data:
        return short(e.data) if e.data else ""
    if e.type == "node.mapped":
        return f"{data.get('items', 0)} items"
    if e.type in ("node.retrying", "item.retrying"):
        parts = [_error_text(data.get("error") or "failed")]
        if "next_attempt" in data:
            delay = data.get("delay")
            when = f" in {duration(float(delay))}" if isinstance(delay, int | float) else ""
            parts.append(f"attempt {data['next_attempt']}{when}")
        return short("; ".join(parts))
    if "error" in data:
        return short(_error_text(data["error"]))
    if "reason" in data:
        return short(data["reason"])
    if e.type == "item.completed":
        return short(data.get("output")) if data.get("output") is not None else ""
    if e.type == "item.started":
        return ""
    if e.type == "node.completed":
        outcome = data.get("outcome") or ""
        output = data.get("output")
        return short(f"{outcome} {short(output)}" if output not in (None, {}) else outcome)
    if e.type == "execution.completed":
        outputs = data.get("outputs")
        return short(f"outputs {short(outputs)}") if outputs else ""
    return short(data)


def where(e: EventView) -> str:
    """``node[visit/attempt]`` for a node's event, else empty."""
    if e.node is None:
        return ""
    at = f"{e.node}[{e.visit}/{e.attempt}]" if e.visit or e.attempt else e.node
    item = e.data.get("item") if isinstance(e.data, dict) and e.type.startswith("item.") else None
    return f"{at} item {item}" if item is not None else at


def event_line(e: EventView, tz: tzinfo | None = None) -> Text:
    """One event on one line: time, severity, type, workflow@version, execution, node, engine,
    message."""
    line = Text(no_wrap=True)
    line.append(clock(e.at, tz), style="dim")
    line.append(" ")
    line.append(f"{e.severity.upper():<7}", style=_SEVERITY_STYLE.get(e.severity, ""))
    line.append(" ")
    line.append(f"{e.type:<20}", style="bold")
    parts = []
    if e.workflow:
        parts.append(f"{e.workflow}@{e.version}" if e.version else e.workflow)
    if e.execution_id:
        parts.append(e.execution_id[:SHORT_ID])
    if e.node is not None:
        parts.append(where(e))
    if e.engine_id:
        parts.append(f"on {e.engine_id}")
    if parts:
        line.append(" " + " ".join(parts))
    message = describe(e)
    if message:
        line.append("  ")
        line.append(message, style="red" if e.severity == "error" else "")
    return line


def event_json(e: EventView) -> str:
    """One JSON Lines record."""
    return json.dumps(e.to_json(), ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class NodeRunView:
    """One node run (node, visit, attempt) of an execution and the events it produced."""

    node: str
    visit: int
    attempt: int
    events: tuple[EventView, ...]
    state: str
    """running, completed, failed, retrying, skipped or cancelled."""
    started_at: float | None
    finished_at: float | None

    @property
    def first_at(self) -> float:
        return self.events[0].at

    @property
    def elapsed(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def end(self) -> EventView | None:
        return next((e for e in reversed(self.events) if e.type in _RUN_END), None)


TimelineEntry = EventView | NodeRunView


def node_run(events: Sequence[EventView]) -> NodeRunView:
    """The run that ``events`` (all of one node, visit and attempt, in order) describe."""
    first = events[0]
    started = next((e.at for e in events if e.type == "node.started"), None)
    end = next((e for e in reversed(events) if e.type in _RUN_END), None)
    return NodeRunView(
        node=first.node or "",
        visit=first.visit,
        attempt=first.attempt,
        events=tuple(events),
        state=_RUN_END[end.type] if end is not None else "running",
        started_at=started,
        finished_at=end.at if end is not None else None,
    )


def timeline(events: Sequence[EventView]) -> list[TimelineEntry]:
    """Execution-level events as they are, a node's events folded into one entry per run,
    placed where the run's first event was."""
    runs: dict[tuple[str, int, int], list[EventView]] = {}
    order: list[EventView | tuple[str, int, int]] = []
    for e in events:
        if e.node is None:
            order.append(e)
            continue
        # a mapped node's items belong to the node's run (its attempt is always 1)
        key = (e.node, e.visit, 1 if e.type.startswith("item.") else e.attempt)
        if key not in runs:
            runs[key] = []
            order.append(key)
        runs[key].append(e)
    return [item if isinstance(item, EventView) else node_run(runs[item]) for item in order]


def parse_iso(value: str | None) -> float | None:
    """An ISO 8601 time (``...Z``) as seconds since the epoch."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def logs_header(result: dict[str, Any], tz: tzinfo | None = None) -> list[Text]:
    """Workflow, version, status, times, engine, parent, retry links, error, inputs, outputs,
    children."""
    status = result["status"]
    lines = [
        Text.assemble(
            (f"{result['workflow']} {result['version']}", "bold"),
            f"  execution {result['id']}  ",
            (status, _STYLE.get(status, "")),
        )
    ]
    started, finished = parse_iso(result.get("started_at")), parse_iso(result.get("finished_at"))
    times = []
    if started is not None:
        times.append(f"started {timestamp(started, tz)}")
    if finished is not None:
        times.append(f"finished {timestamp(finished, tz)}")
    if started is not None and finished is not None:
        times.append(f"took {duration(finished - started)}")
    lines.append(Text("  ".join(times) if times else "not started yet"))
    if result.get("engine"):
        lines.append(Text(f"engine {result['engine']} (placements: {result.get('placements', 0)})"))
    parent = result.get("parent")
    if parent:
        lines.append(Text(f"parent {parent['execution']} (node {parent['node']})"))
    for key, label in (("retry_of", "retry of"), ("retried_by", "retried by")):
        if result.get(key):
            lines.append(Text(f"{label} {result[key]}"))
    if result.get("inputs"):
        lines.append(Text(f"inputs {short(result['inputs'])}"))
    if result.get("error"):
        lines.append(Text(f"error: {_error_text(result['error'])}", style="red"))
    if result.get("outputs"):
        lines.append(Text(f"outputs {short(result['outputs'])}"))
    for child in result.get("children") or ():
        lines.append(
            Text.assemble(
                f"child {child['id']} {child['workflow']} {child['version']} ",
                (child["status"], _STYLE.get(child["status"], "")),
                f" (node {child['node']})",
            )
        )
    return lines


def _run_lines(run: NodeRunView, children: Sequence[dict[str, Any]], tz: tzinfo | None) -> Text:
    head = Text(no_wrap=True)
    head.append(f"  {clock(run.first_at, tz)}  ", style="dim")
    head.append(f"{run.node}[{run.visit}/{run.attempt}]", style="bold")
    head.append("  ")
    head.append(run.state, style=_RUN_STYLE.get(run.state, ""))
    elapsed = run.elapsed
    if elapsed is not None:
        head.append(f" in {duration(elapsed)}")
    end = run.end
    data = end.data if end is not None and isinstance(end.data, dict) else {}
    details: list[tuple[str, str]] = []
    if run.state == "completed":
        if data.get("outcome") and data["outcome"] != "SUCCESS":
            head.append(f" ({data['outcome']})")
        if data.get("output") not in (None, {}):
            details.append(("output", short(data["output"])))
    elif end is not None and end.type == "node.retrying":
        details.append(("retry", describe(end)))
    elif run.state == "reused":
        details.append(("from", f"execution {data.get('reused_from')} ({data.get('status')})"))
    elif data.get("error"):
        details.append(("error", short(_error_text(data["error"]))))
    elif data.get("reason"):
        details.append(("reason", short(data["reason"])))
    for e in run.events:
        own = e.type not in _RUN_END and e.type not in ("node.started", "node.mapped")
        if own and not e.type.startswith("item."):
            details.append((e.type, f"{clock(e.at, tz)} {describe(e)}".rstrip()))
    details.extend(_items_lines(run.events))
    for child in children:
        if child["node"] == run.node:
            details.append(
                (
                    "sub-workflow",
                    f"{child['workflow']} {child['version']} {child['id']} {child['status']}",
                )
            )
    for label, text in details:
        style = "red" if label == "error" else "yellow" if label == "retry" else ""
        head.append(f"\n                {label}: ", style="dim")
        head.append(text, style=style)
    return head


def _items_lines(events: Sequence[EventView]) -> list[tuple[str, str]]:
    """A mapped node's items in a run: how many finished, and the failed ones' errors."""
    mapped = next((e for e in events if e.type == "node.mapped"), None)
    if mapped is None:
        return []
    total = int((mapped.data or {}).get("items", 0)) if isinstance(mapped.data, dict) else 0
    completed = sum(e.type == "item.completed" for e in events)
    failures = [e for e in events if e.type == "item.failed"]
    retries = sum(e.type == "item.retrying" for e in events)
    summary = item_progress(total, completed, len(failures))
    if retries:
        summary += f", {retries} retries"
    lines = [("items", summary)]
    for e in failures[:10]:
        item = e.data.get("item") if isinstance(e.data, dict) else "?"
        lines.append((f"item {item}", describe(e)))
    if len(failures) > 10:
        lines.append(("items", f"and {len(failures) - 10} more failed"))
    return lines


def logs_lines(
    result: dict[str, Any], events: Sequence[EventView], tz: tzinfo | None = None
) -> list[Text]:
    """``weir logs`` as text: the header, then the timeline."""
    lines = logs_header(result, tz)
    lines.append(Text(""))
    lines.append(Text("timeline", style="bold"))
    children = result.get("children") or []
    entries = timeline(events)
    if not entries:
        lines.append(Text("  (no events)", style="dim"))
    for entry in entries:
        if isinstance(entry, NodeRunView):
            lines.append(_run_lines(entry, children, tz))
            continue
        line = Text(no_wrap=True)
        line.append(f"  {clock(entry.at, tz)}  ", style="dim")
        line.append(entry.type, style=_SEVERITY_STYLE.get(entry.severity, "") or "bold")
        text = describe(entry)
        if entry.type == "execution.started" and entry.engine_id and not text:
            text = f"on {entry.engine_id}"
        if text:
            line.append(f"  {text}")
        lines.append(line)
    return lines


def logs_json(result: dict[str, Any], events: Sequence[EventView]) -> str:
    return json.dumps(
        {"execution": result, "events": [e.to_json() for e in events]},
        indent=2,
        ensure_ascii=False,
        default=str,
    )


def logs_exit_code(status: str) -> int:
    """0 completed (or not finished yet), 1 failed or cancelled."""
    return 1 if status in ("failed", "cancelled") else 0


# --- talking to the orchestrator -------------------------------------------------------------
