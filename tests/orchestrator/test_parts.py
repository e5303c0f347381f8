"""The orchestrator's small parts on their own: ``Signal``, ``Supervisor``, ``ExecutionTable``
and the typed ``ExecutionResult`` (built from a state, rendered and read back)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from engine.definition.parser import loads
from engine.state.events import ExecutionStatus, NodeStatus
from engine.state.machine import ExecutionState
from engine.state.result import ChildRef, ExecutionResult, ParentRef, ResultFormatError
from orchestrator.executions.record import ExecutionRecord, ParentLink
from orchestrator.executions.table import ExecutionTable
from orchestrator.registry import Registry
from orchestrator.signals import Signal
from orchestrator.supervise import Health, Supervisor
from tests.support.poll import eventually

# --- Signal ------------------------------------------------------------------------------------


def test_a_signal_calls_its_listeners_in_order_and_survives_one_that_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    signal: Signal[[int]] = Signal("numbers")
    heard: list[tuple[str, int]] = []

    def broken(n: int) -> None:
        raise RuntimeError("listener bug")

    signal.connect(lambda n: heard.append(("a", n)))
    signal.connect(broken)
    signal.connect(lambda n: heard.append(("c", n)))
    with caplog.at_level(logging.ERROR):
        signal(1)
    assert heard == [("a", 1), ("c", 1)]
    assert signal.errors == 1 and "numbers" in caplog.text
    signal.disconnect(broken)
    signal(2)
    assert heard[-2:] == [("a", 2), ("c", 2)] and signal.errors == 1


# --- Supervisor --------------------------------------------------------------------------------


async def test_a_failed_loop_is_logged_counted_and_makes_the_process_unhealthy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor()
    changes: list[Health] = []
    supervisor.changed.connect(changes.append)

    async def forever() -> None:
        await asyncio.Event().wait()

    async def boom() -> None:
        raise RuntimeError("bug in a loop")

    async def returns() -> None:
        return None

    supervisor.loop("fine", forever())
    supervisor.loop("boom", boom())
    await eventually(lambda: not supervisor.health().ok, what="the loop to fail")
    assert supervisor.health().problems == ("boom failed: RuntimeError: bug in a loop",)
    assert "background loop 'boom' failed" in caplog.text
    supervisor.loop("returns", returns())
    await eventually(lambda: len(supervisor.health().problems) == 2)
    assert [h.ok for h in changes] == [False, False]
    stats = supervisor.stats()
    assert dict(stats.failures) == {"boom": 1, "returns": 1} and not stats.healthy
    await supervisor.stop()  # the healthy loop is cancelled, which is no failure
    assert dict(supervisor.stats().failures) == {"boom": 1, "returns": 1}


async def test_a_failed_job_is_counted_but_the_process_stays_healthy() -> None:
    supervisor = Supervisor()

    async def job() -> None:
        raise ValueError("one-off bug")

    task = supervisor.spawn("job", job())
    await asyncio.wait([task])
    assert supervisor.health().ok and dict(supervisor.stats().failures) == {"job": 1}


async def test_stopping_before_a_task_ran_leaves_no_unawaited_coroutine() -> None:
    supervisor = Supervisor()

    async def never() -> None:
        raise AssertionError("never runs")

    supervisor.loop("late", never())
    await supervisor.stop()  # cancelled before its first step: the warning filter would fail
    assert supervisor.health().ok


# --- ExecutionTable -----------------------------------------------------------------------------

WF = Registry().prepare('{"name": "w", "version": "1.0.0", "nodes": [{"id": "a", "noop": {}}]}')


def _record(
    execution_id: str, *, parent: ParentLink | None = None, key: str | None = None
) -> ExecutionRecord:
    return ExecutionRecord(
        id=execution_id,
        name="w",
        version="1.0.0",
        wf=WF.version,
        inputs={},
        inputs_json=b"{}",
        routing_key="",
        created_at=0.0,
        idempotency_key=key,
        parent=parent,
    )


def _end(record: ExecutionRecord, at: float) -> None:
    state = ExecutionState(WF.version.definition, record.id)
    result = ExecutionResult.of(state, {}, status=ExecutionStatus.COMPLETED, finished_at=at)
    record.end(result, at)


def test_the_table_indexes_records_and_evict_forgets_every_index() -> None:
    table = ExecutionTable()
    parent = _record("p", key="k-p")
    child = _record("c", parent=ParentLink("p", "call", 1, 1), key="k-c")
    table.add(parent)
    table.add(child)
    assert table.by_idempotency_key("k-p") is parent
    assert table.by_child_key("p/call/1/1") is child
    assert list(table.children_of(parent)) == [child] and parent.children == ["c"]
    table.evict("c")
    assert "c" not in table
    assert table.by_idempotency_key("k-c") is None
    assert table.by_child_key("p/call/1/1") is None
    assert list(table.children_of(parent)) == []  # the id stays on the parent, not the record
    table.evict("c")  # twice: nothing happens


def test_finished_records_stay_while_the_cache_has_room_and_retention_evicts_the_old() -> None:
    table = ExecutionTable(finished_cache=2)
    records = [_record(f"r{i}", key=f"k{i}") for i in range(4)]
    for i, record in enumerate(records):
        table.add(record)
        _end(record, at=100.0 + i)
        table.ended(record)
    assert [r.id for r in records if r.id in table] == ["r2", "r3"]  # the oldest went first
    assert table.by_idempotency_key("k0") is None and table.by_idempotency_key("k3") is records[3]
    running = _record("running")
    table.add(running)
    assert table.evict_finished_before(103.0) == 1  # r2 ended before, r3 did not
    assert [r.id for r in records if r.id in table] == ["r3"] and "running" in table
    assert table.running_on(WF.version) == 1


# --- ExecutionResult ----------------------------------------------------------------------------


def _state() -> ExecutionState:
    definition = loads(
        json.dumps({"name": "s", "version": "2.0.0", "nodes": [{"id": "a", "noop": {}}]})
    )
    return ExecutionState(definition, "e1")


def test_a_result_renders_to_the_documented_json_and_reads_back_the_same() -> None:
    result = ExecutionResult.of(_state(), {"x": 1}, status=ExecutionStatus.RUNNING).with_links(
        ParentRef("p1", "call"),
        (ChildRef("c1", "kid", "1.0.0", ExecutionStatus.FAILED, node="n"),),
    )
    data = result.to_json()
    assert set(data) == {
        "id", "workflow", "version", "status", "inputs", "outputs", "error",
        "started_at", "finished_at", "nodes", "path", "parent", "children",
    }  # fmt: skip
    assert data["nodes"]["a"]["status"] == "pending" and data["status"] == "running"
    assert data["parent"] == {"execution": "p1", "node": "call"}
    assert data["children"] == [
        {"id": "c1", "workflow": "kid", "version": "1.0.0", "status": "failed", "node": "n"}
    ]
    again = ExecutionResult.from_json(json.loads(json.dumps(data)))
    assert again == result and again.to_json() == data
    assert again.nodes["a"].status is NodeStatus.PENDING


def test_a_result_names_its_retry_links_and_reads_them_back() -> None:
    plain = ExecutionResult.of(_state(), {})
    assert plain.with_retries(None, None) is plain
    linked = plain.with_retries("o1", "r2")
    data = linked.to_json()
    assert (data["retry_of"], data["retried_by"]) == ("o1", "r2")
    assert "retry_of" not in plain.to_json() and "retried_by" not in plain.to_json()
    assert ExecutionResult.from_json(json.loads(json.dumps(data))) == linked
    with pytest.raises(ResultFormatError, match="expected text"):
        ExecutionResult.from_json({**data, "retry_of": 3})


def test_a_result_without_links_leaves_them_out_and_a_failure_says_where() -> None:
    failed = ExecutionResult.of(_state(), {}).failed("the engine crashed")
    data = failed.to_json()
    assert "parent" not in data and "children" not in data
    assert data["error"] == {"node": None, "message": "the engine crashed"}
    assert failed.failure_message() == "the engine crashed" and failed.finished


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ([], "expected an object"),
        ({"id": "e"}, "missing field 'workflow'"),
        ({"id": "e", "workflow": "w", "version": "1", "status": "lost", "nodes": {}}, "lost"),
        ({"id": 1, "workflow": "w", "version": "1", "status": "failed", "nodes": {}}, "text"),
    ],
)
def test_a_result_without_the_shape_is_refused_saying_why(data: Any, says: str) -> None:
    with pytest.raises(ResultFormatError, match=says):
        ExecutionResult.from_json(data)
