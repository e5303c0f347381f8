"""``weir events`` / ``weir logs`` / ``weir triggers`` formatting, without a server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import pytest
from weir import Client
from weir.proto.v1 import orchestrator_pb2 as pb

from engine.server import codec
from orchestrator.cli.events import _Query
from orchestrator.cli.timeline import (
    EventView,
    NodeRunView,
    clock,
    describe,
    duration,
    event_json,
    event_line,
    logs_exit_code,
    logs_json,
    logs_lines,
    severity_name,
    severity_value,
    short,
    timeline,
    where,
)
from orchestrator.cli.triggers import trigger_json, trigger_row, trigger_spec

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
EXECUTION = "6bca9cdf-539f-4db8-a748-ca308a98c84b"


def view(
    sequence: int,
    type_: str,
    offset: float = 0.0,
    *,
    node: str | None = None,
    visit: int = 0,
    attempt: int = 0,
    data: Any = None,
    message: str = "",
    severity: str = "info",
) -> EventView:
    return EventView(
        sequence=sequence,
        type=type_,
        at=T0 + offset,
        severity=severity,
        workflow="flow",
        version="1.0.0",
        execution_id=EXECUTION,
        node=node,
        visit=visit,
        attempt=attempt,
        engine_id="e1",
        message=message,
        data=data,
    )


def test_event_from_pb_and_json_record() -> None:
    m = pb.Event(
        sequence=7,
        type="node.completed",
        severity=pb.SEVERITY_WARNING,
        workflow="flow",
        version="1.0.0",
        execution_id=EXECUTION,
        node="a",
        visit=1,
        attempt=2,
        engine_id="e1",
        message="",
        data_json=codec.to_json({"outcome": "SUCCESS", "output": {"n": 1}}),
    )
    codec.set_time(m.at, T0 + 0.25)
    e = EventView.from_pb(m)
    assert (
        e.node == "a"
        and e.severity == "warning"
        and e.data
        == {
            "outcome": "SUCCESS",
            "output": {"n": 1},
        }
    )
    record = json.loads(event_json(e))
    assert record == {
        "sequence": 7,
        "type": "node.completed",
        "at": "2027-01-15T08:00:00.250000Z",
        "severity": "warning",
        "workflow": "flow",
        "version": "1.0.0",
        "execution_id": EXECUTION,
        "node": "a",
        "visit": 1,
        "attempt": 2,
        "engine_id": "e1",
        "message": "",
        "data": {"outcome": "SUCCESS", "output": {"n": 1}},
    }
    assert "\n" not in event_json(e)


def test_event_from_pb_without_node_and_with_bad_data() -> None:
    m = pb.Event(sequence=1, type="engine.joined", data_json=b"{not json")
    e = EventView.from_pb(m)
    assert e.node is None and e.data == "{not json" and e.severity == "info"


@pytest.mark.parametrize(
    ("value", "name"), [(0, "info"), (1, "debug"), (2, "info"), (3, "warning"), (4, "error")]
)
def test_severity_names(value: int, name: str) -> None:
    assert severity_name(value) == name


@pytest.mark.parametrize(
    ("name", "value"), [(None, 0), ("debug", 1), ("info", 2), ("warning", 3), ("error", 4)]
)
def test_severity_values_match_the_proto(name: str | None, value: int) -> None:
    assert severity_value(name) == value
    if name:
        assert pb.Severity.Value(f"SEVERITY_{name.upper()}") == value


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-1.0, "0.0ms"),
        (0.0002, "0.2ms"),
        (0.012, "12ms"),
        (1.5, "1.50s"),
        (125.0, "2m05s"),
        (3 * 3600 + 120.0, "3h02m"),
    ],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "width", "text"),
    [
        ("a  b\nc", 80, "a b c"),
        ({"k": "é"}, 80, '{"k": "é"}'),
        ("x" * 10, 5, "xxxx…"),
        ([1, 2], 80, "[1, 2]"),
    ],
)
def test_short(value: Any, width: int, text: str) -> None:
    assert short(value, width) == text


def test_clock_is_local_time_to_the_millisecond() -> None:
    assert clock(T0 + 0.0456, UTC) == "08:00:00.045"


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (view(1, "execution.queued", message="flow 1.0.0 queued"), "flow 1.0.0 queued"),
        (
            view(2, "node.completed", node="a", data={"outcome": "SUCCESS", "output": {"n": 1}}),
            'SUCCESS {"n": 1}',
        ),
        (view(3, "node.completed", node="a", data={"outcome": "SUCCESS", "output": {}}), "SUCCESS"),
        (view(4, "node.failed", node="a", data={"error": "a:1: boom"}), "a:1: boom"),
        (
            view(
                5, "node.retrying", node="a", data={"error": "x", "delay": 0.5, "next_attempt": 2}
            ),
            "x; attempt 2 in 500ms",
        ),
        (view(6, "node.skipped", node="b", data={"reason": "when is false"}), "when is false"),
        (
            view(7, "execution.failed", data={"error": {"node": "a", "message": "boom"}}),
            "node a: boom",
        ),
        (view(8, "execution.completed", data={"outputs": {"sum": 3}}), 'outputs {"sum": 3}'),
        (view(9, "execution.completed", data={"outputs": {}}), ""),
        (view(10, "execution.started"), ""),
        (view(11, "trigger.fired", data={"trigger": "nightly"}), '{"trigger": "nightly"}'),
    ],
)
def test_describe(event: EventView, text: str) -> None:
    assert describe(event) == text


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (view(1, "node.started", node="a", visit=2, attempt=3), "a[2/3]"),
        (view(2, "node.skipped", node="a"), "a"),
        (view(3, "execution.started"), ""),
    ],
)
def test_where(event: EventView, text: str) -> None:
    assert where(event) == text


def test_event_line() -> None:
    e = view(
        5, "node.failed", 1.5, node="DIV", visit=1, attempt=2, data={"error": "division by zero"}
    )
    line = event_line(e, UTC)
    assert line.plain == (
        "08:00:01.500 INFO    node.failed          flow@1.0.0 6bca9cdf DIV[1/2] on e1"
        "  division by zero"
    )
    bare = EventView(sequence=1, type="engine.joined", at=T0, severity="warning", engine_id="e2")
    assert event_line(bare, UTC).plain == "08:00:00.000 WARNING engine.joined        on e2"


def test_event_line_colors_the_severity() -> None:
    line = event_line(view(1, "execution.failed", severity="error", message="boom"), UTC)
    styles = {line.plain[span.start : span.end]: str(span.style) for span in line.spans}
    assert styles["ERROR  "] == "bold red"
    assert styles["boom"] == "red"


RETRY_EVENTS = [
    view(1, "execution.queued", 0.0, message="flow 1.0.0 queued"),
    view(2, "execution.started", 0.1),
    view(3, "node.started", 0.1, node="a", visit=1, attempt=1),
    view(4, "node.started", 0.1, node="b", visit=1, attempt=1),
    view(
        5,
        "node.retrying",
        0.2,
        node="a",
        visit=1,
        attempt=1,
        data={"error": "a:1: boom", "delay": 0.01, "next_attempt": 2},
        severity="warning",
    ),
    view(6, "node.completed", 0.3, node="b", visit=1, attempt=1, data={"outcome": "SUCCESS"}),
    view(7, "node.started", 0.25, node="a", visit=1, attempt=2),
    view(
        8,
        "node.failed",
        0.35,
        node="a",
        visit=1,
        attempt=2,
        data={"error": "a:1: boom"},
        severity="warning",
    ),
    view(9, "node.skipped", 0.35, node="c", data={"reason": "execution failed"}),
    view(
        10,
        "execution.failed",
        0.35,
        data={"error": {"node": "a", "message": "a:1: boom"}},
        severity="error",
    ),
]


def test_timeline_folds_node_runs_where_they_started() -> None:
    entries = timeline(RETRY_EVENTS)
    summary = [
        e.type if isinstance(e, EventView) else (e.node, e.visit, e.attempt, e.state)
        for e in entries
    ]
    assert summary == [
        "execution.queued",
        "execution.started",
        ("a", 1, 1, "retrying"),
        ("b", 1, 1, "completed"),
        ("a", 1, 2, "failed"),
        ("c", 0, 0, "skipped"),
        "execution.failed",
    ]
    first = entries[2]
    assert isinstance(first, NodeRunView)
    assert first.elapsed == pytest.approx(0.1, abs=1e-3)
    assert [e.sequence for e in first.events] == [3, 5]
    skipped = entries[5]
    assert isinstance(skipped, NodeRunView) and skipped.elapsed is None


def test_timeline_of_a_running_node() -> None:
    (run,) = timeline([view(1, "node.started", node="a", visit=1, attempt=1)])
    assert isinstance(run, NodeRunView)
    assert run.state == "running" and run.finished_at is None and run.end is None


def result(status: str = "failed", **extra: Any) -> dict[str, Any]:
    return {
        "id": EXECUTION,
        "workflow": "flow",
        "version": "1.0.0",
        "status": status,
        "inputs": {"n": 1},
        "outputs": {},
        "error": {"node": "a", "message": "a:1: boom"} if status == "failed" else None,
        "started_at": "2027-01-15T08:00:00.100000Z",
        "finished_at": "2027-01-15T08:00:00.350000Z",
        "nodes": {},
        "path": [],
        "engine": "e1",
        "placements": 1,
        **extra,
    }


def test_logs_lines() -> None:
    children = [
        {"id": "c-1", "workflow": "child", "version": "2.0.0", "status": "completed", "node": "b"}
    ]
    lines = [line.plain for line in logs_lines(result(children=children), RETRY_EVENTS, UTC)]
    assert lines == [
        f"flow 1.0.0  execution {EXECUTION}  failed",
        "started 2027-01-15 08:00:00.100  finished 2027-01-15 08:00:00.350  took 250ms",
        "engine e1 (placements: 1)",
        'inputs {"n": 1}',
        "error: node a: a:1: boom",
        "child c-1 child 2.0.0 completed (node b)",
        "",
        "timeline",
        "  08:00:00.000  execution.queued  flow 1.0.0 queued",
        "  08:00:00.100  execution.started  on e1",
        "  08:00:00.100  a[1/1]  retrying in 100ms\n"
        "                retry: a:1: boom; attempt 2 in 10ms",
        "  08:00:00.100  b[1/1]  completed in 200ms\n"
        "                sub-workflow: child 2.0.0 c-1 completed",
        "  08:00:00.250  a[1/2]  failed in 100ms\n                error: a:1: boom",
        "  08:00:00.350  c[0/0]  skipped\n                reason: execution failed",
        "  08:00:00.350  execution.failed  node a: a:1: boom",
    ]


def test_logs_lines_of_a_queued_execution() -> None:
    queued = result("pending", started_at=None, finished_at=None, engine=None, inputs={})
    lines = [line.plain for line in logs_lines(queued, [], UTC)]
    assert lines == [
        f"flow 1.0.0  execution {EXECUTION}  pending",
        "not started yet",
        "",
        "timeline",
        "  (no events)",
    ]


def test_logs_lines_of_a_retry_show_its_links_and_reused_nodes() -> None:
    events = [
        view(1, "execution.queued", 0.0, message="flow 1.0.0 queued as a retry of o-1"),
        view(
            2,
            "node.reused",
            0.0,
            node="a",
            visit=1,
            attempt=2,
            message="completed in o-1",
            data={"reused_from": "o-1", "status": "completed", "outcome": "SUCCESS"},
        ),
    ]
    retry = result("running", finished_at=None, retry_of="o-1", retried_by="r-2")
    lines = [line.plain for line in logs_lines(retry, events, UTC)]
    assert lines[3:5] == ["retry of o-1", "retried by r-2"]
    assert (
        lines[-1]
        == "  08:00:00.000  a[1/2]  reused\n                from: execution o-1 (completed)"
    )


def test_logs_json() -> None:
    document = json.loads(logs_json(result("completed"), RETRY_EVENTS[:2]))
    assert document["execution"]["status"] == "completed"
    assert [e["sequence"] for e in document["events"]] == [1, 2]
    assert document["events"][0]["message"] == "flow 1.0.0 queued"


@pytest.mark.parametrize(
    ("status", "code"),
    [("completed", 0), ("failed", 1), ("cancelled", 1), ("running", 0), ("pending", 0)],
)
def test_logs_exit_code(status: str, code: int) -> None:
    assert logs_exit_code(status) == code


class FakeStream(Client):
    """A ``Client`` whose ``event_batches`` gives scripted answers, one list per call (its
    channel is never used)."""

    def __init__(self, *calls: list[pb.WatchEventsResponse]) -> None:
        super().__init__("127.0.0.1:1")
        self.calls = list(calls)
        self.requests: list[dict[str, Any]] = []

    async def event_batches(  # type: ignore[override]
        self, **request: Any
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        self.requests.append(request)
        for batch in self.calls.pop(0):
            yield batch


def batch(*sequences: int, lagged: int | None = None) -> pb.WatchEventsResponse:
    m = pb.WatchEventsResponse(events=[pb.Event(sequence=s, type="x") for s in sequences])
    if lagged is not None:
        m.lagged_after = lagged
    return m


async def test_follow_resumes_after_lagging_and_says_so() -> None:
    fake = FakeStream([batch(5, 6), batch(lagged=6)], [batch(7, 8)])
    notes: list[int] = []
    query = _Query(workflow="flow", types=("node.",), min_severity=3)
    follow = fake.events(follow=True, after=4, on_lagged=notes.append, **query.kwargs())
    seen = [e.sequence async for e in follow]
    await fake.close()
    assert seen == [5, 6, 7, 8]
    assert notes == [6]
    assert [r["after"] for r in fake.requests] == [4, 6]
    assert all(
        r["follow"] and r["workflow"] == "flow" and r["types"] == ["node."] for r in fake.requests
    )


def test_trigger_spec_leaves_defaults_to_the_server() -> None:
    assert trigger_spec("@daily") == {"cron": "@daily", "enabled": True}
    assert trigger_spec(
        "0 3 * * *",
        timezone="Europe/Paris",
        inputs={"rows": 3},
        overlap="cancel-previous",
        catch_up="all",
        catch_up_window="2h",
        enabled=False,
    ) == {
        "cron": "0 3 * * *",
        "timezone": "Europe/Paris",
        "inputs": {"rows": 3},
        "overlap": "cancel-previous",
        "catch_up": "all",
        "catch_up_window": "2h",
        "enabled": False,
    }


def test_trigger_json_and_row() -> None:
    spec = {"cron": "0 3 * * *", "timezone": "Europe/Paris", "enabled": True, "overlap": "skip"}
    m = pb.Trigger(workflow="etl", name="nightly", source="api", spec_json=codec.to_json(spec))
    codec.set_time(m.next_fire_at, T0)
    item = trigger_json(m)
    assert item == {
        "workflow": "etl",
        "name": "nightly",
        "source": "api",
        "spec": spec,
        "last_fire_at": None,
        "next_fire_at": "2027-01-15T08:00:00.000000Z",
        "last_execution_id": None,
    }
    assert trigger_row(item, UTC) == (
        "etl",
        "nightly",
        "api",
        "0 3 * * * (Europe/Paris)",
        "yes",
        "2027-01-15 08:00",
        "",
        "",
    )
    m.spec_json = codec.to_json({**spec, "enabled": False, "timezone": "UTC"})
    m.last_execution_id = EXECUTION
    codec.set_time(m.last_fire_at, T0 - 60)
    assert trigger_row(trigger_json(m), UTC)[3:] == (
        "0 3 * * *",
        "no",
        "",
        "2027-01-15 07:59",
        "6bca9cdf",
    )


MAP_EVENTS = [
    view(1, "execution.started", 0.1),
    view(2, "node.started", 0.1, node="m", visit=1, attempt=1),
    view(3, "node.mapped", 0.1, node="m", visit=1, attempt=1, data={"items": 100}),
    *[
        view(10 + i, "item.completed", 0.2, node="m", visit=1, attempt=1, data={"item": i})
        for i in range(35)
    ],
    view(50, "item.retrying", 0.2, node="m", visit=1, attempt=1, data={"item": 40, "error": "x"}),
    view(
        51, "item.failed", 0.3, node="m", visit=1, attempt=2, data={"item": 40, "error": "m:1: no"}
    ),
    view(52, "item.failed", 0.3, node="m", visit=1, attempt=1, data={"item": 41, "error": "gone"}),
]


def test_logs_show_a_mapped_node_s_items_in_its_run() -> None:
    lines = [line.plain for line in logs_lines(result("running"), MAP_EVENTS, UTC)]
    assert lines[-1] == (
        "  08:00:00.100  m[1/1]  running\n"
        "                items: 37/100 items, 2 failed, 1 retries\n"
        "                item 40: m:1: no\n"
        "                item 41: gone"
    )
    retried = [e for e in timeline(MAP_EVENTS) if isinstance(e, NodeRunView)]
    assert len(retried) == 1  # an item's second attempt belongs to the node's run
    line = event_line(MAP_EVENTS[-1], UTC).plain
    assert "m[1/1] item 41" in line and line.endswith("gone")
    assert describe(MAP_EVENTS[2]) == "100 items"
