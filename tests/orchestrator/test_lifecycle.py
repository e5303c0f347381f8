"""The orchestrator's parts driven through their own interfaces: the ``Lifecycle`` fed the domain
messages an engine's stream carries (by a ``FakeEngine``, our ``EnginePort``), retention and the
execution table, and what one bad engine message does to a real engine link.

The store is real (memory and SQLite); the engine in the last test is a real gRPC server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.state.events import ExecutionStatus, NodeResult, NodeStatus
from engine.state.result import ExecutionResult
from orchestrator.discovery.static import StaticDiscovery
from orchestrator.engines.messages import (
    ChildRequested,
    Ended,
    EngineReport,
    ExecuteOrder,
    NodeReported,
)
from orchestrator.ring import make_balancer
from orchestrator.rows import node_result
from orchestrator.store import open_store
from orchestrator.wiring import Orchestrator
from tests.support.engines import running_engine
from tests.support.fakes import FakeEngine
from tests.support.poll import eventually

CHILD = json.dumps({"name": "child", "version": "1.0.0", "nodes": [{"id": "one", "noop": {}}]})
PARENT = json.dumps(
    {
        "name": "parent",
        "version": "1.0.0",
        "nodes": [
            {"id": "call", "workflow": {"name": "child", "version": "*"}},
            {"id": "after", "sleep": "1h", "depends_on": ["call"]},
        ],
    }
)
SLOW_END = json.dumps(  # its first node run and its end travel in different messages
    {
        "name": "slow-end",
        "version": "1.0.0",
        "nodes": [
            {"id": "one", "noop": {}},
            {"id": "two", "sleep": "300ms", "depends_on": ["one"]},
        ],
    }
)
DAY = 86400.0


@pytest.fixture(params=["memory", "sqlite"])
async def core(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Orchestrator]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'w.db'}"
    async with Orchestrator(
        orchestrator_id="t",
        discovery=StaticDiscovery([]),
        balancer=make_balancer("round-robin"),
        store=open_store(url),
        retention=DAY,
        triggers_enabled=False,
    ) as core:
        yield core


def _engine(core: Orchestrator) -> FakeEngine:
    engine = FakeEngine("fake")
    core.engines.put(engine)  # what the fleet does for a discovered engine
    core.lifecycle.ready(engine)  # what its link says once it is healthy
    return engine


async def _order(engine: FakeEngine, execution_id: str) -> ExecuteOrder:
    def placed() -> ExecuteOrder | None:
        return next((o for o in engine.orders if o.execution_id == execution_id), None)

    order: ExecuteOrder = await eventually(placed, what=f"{execution_id} placed")
    return order


def _completed(core: Orchestrator, execution_id: str) -> ExecutionResult:
    record = core.table.get(execution_id)
    assert record is not None
    return core.executions.result(record).with_status(ExecutionStatus.COMPLETED)


def _report(seq: int, **parts: Any) -> EngineReport:
    return EngineReport(seq=seq, stream=1, **parts)


async def test_a_child_request_resent_after_retention_pruned_the_child_starts_again(
    core: Orchestrator,
) -> None:
    """Regression: retention used to leave a pruned child in the child-key index, and the
    parent's request sent again then raised ``KeyError`` and silently ended the engine
    stream's task. Every way out of memory now goes through ``ExecutionTable.evict``."""
    await core.workflows.register(CHILD)
    await core.workflows.register(PARENT)
    engine = _engine(core)
    parent = await core.executions.start("parent")
    lease = (await _order(engine, parent.id)).lease
    ask = ChildRequested(parent.id, lease, "call", 1, 1, "child", "*", b"{}")

    core.lifecycle.report(engine, _report(2, children=[ask]))
    first = await eventually(lambda: core.table.by_child_key(f"{parent.id}/call/1/1"))
    child_lease = (await _order(engine, first.id)).lease
    core.lifecycle.report(
        engine, _report(3, ended=[Ended(first.id, child_lease, _completed(core, first.id))])
    )
    await core.executions.wait(first.id)
    await eventually(lambda: engine.answers, what="the parent told")
    assert engine.answers[0].child_id == first.id

    assert await core.retention.prune(now=first.finished_at + 2 * DAY) == 1
    assert core.table.get(first.id) is None
    assert core.table.by_child_key(f"{parent.id}/call/1/1") is None  # the index forgot it too

    core.lifecycle.report(engine, _report(4, children=[ask]))  # re-sent after a reconnect
    again = await eventually(lambda: core.table.by_child_key(f"{parent.id}/call/1/1"))
    assert again.id != first.id and again.parent is not None and again.parent.node == "call"
    await core.executions.cancel(parent.id)  # the stream's messages are still applied
    assert (await core.executions.get(parent.id)).cancel_reason is not None


async def test_two_items_of_one_workflow_node_attempt_start_a_child_each_answered_apart(
    core: Orchestrator,
) -> None:
    await core.workflows.register(CHILD)
    await core.workflows.register(PARENT)
    engine = _engine(core)
    parent = await core.executions.start("parent")
    lease = (await _order(engine, parent.id)).lease
    asks = [
        ChildRequested(parent.id, lease, "call", 1, 1, "child", "*", b"{}", item=i) for i in (0, 1)
    ]
    core.lifecycle.report(engine, _report(2, children=asks))
    kids = [
        await eventually(lambda i=i: core.table.by_child_key(f"{parent.id}/call/1/{i}/1"))
        for i in (0, 1)
    ]
    assert kids[0].id != kids[1].id
    assert [k.parent.item if k.parent else "-" for k in kids] == [0, 1]
    core.lifecycle.report(engine, _report(3, children=[asks[1]]))  # re-sent: the same child
    assert {c.id for c in core.table.children_of(parent)} == {k.id for k in kids}
    stored = await core.store.get_execution(kids[1].id)
    assert stored is not None and stored.child_key == f"{parent.id}/call/1/1/1"

    child_lease = (await _order(engine, kids[1].id)).lease
    final = _completed(core, kids[1].id)
    core.lifecycle.report(engine, _report(4, ended=[Ended(kids[1].id, child_lease, final)]))
    await eventually(lambda: engine.answers, what="the parent told")
    assert [(a.item, a.child_id) for a in engine.answers] == [(1, kids[1].id)]


async def test_the_records_of_a_mapped_node_are_journaled_once_each(core: Orchestrator) -> None:
    await core.workflows.register(CHILD)
    engine = _engine(core)
    record = await core.executions.start("child")
    lease = (await _order(engine, record.id)).lease
    done = NodeStatus.COMPLETED
    journal = [
        NodeResult("one", 1, 0, NodeStatus.RUNNING, output=["a", "b"]),
        NodeResult("one", 1, 1, done, output="A", item=0),
        NodeResult("one", 1, 1, NodeStatus.FAILED, error="boom", retryable=True, item=1),
        NodeResult("one", 1, 2, done, output="B", item=1),
        NodeResult("one", 1, 1, done, output=["A", "B"]),
    ]
    reports = [NodeReported(record.id, lease, r, None) for r in journal]
    core.lifecycle.report(engine, _report(2, nodes=reports[:3]))
    core.lifecycle.report(engine, _report(3, nodes=reports[1:]))  # partly re-sent
    assert record.checkpoint.runs == journal
    await core.store.durable()
    rows = (await core.store.node_runs([record.id]))[record.id]
    assert [node_result(row) for row in rows] == journal


async def test_a_report_from_an_older_lease_or_another_engine_is_counted_and_ignored(
    core: Orchestrator,
) -> None:
    await core.workflows.register(CHILD)
    engine = _engine(core)
    other = FakeEngine("other")
    record = await core.executions.start("child")
    lease = (await _order(engine, record.id)).lease
    final = _completed(core, record.id)
    core.lifecycle.report(engine, _report(2, ended=[Ended(record.id, lease + 1, final)]))
    core.lifecycle.report(other, _report(2, ended=[Ended(record.id, lease, final)]))
    assert core.lifecycle.stale_reports == 2 and not record.finished
    core.lifecycle.report(engine, _report(3, ended=[Ended(record.id, lease, final)]))
    assert record.finished and record.status is ExecutionStatus.COMPLETED
    await core.executions.wait(record.id)


async def test_an_unreadable_result_fails_the_execution_here(core: Orchestrator) -> None:
    await core.workflows.register(CHILD)
    engine = _engine(core)
    record = await core.executions.start("child")
    lease = (await _order(engine, record.id)).lease
    problem = "engine sent an unreadable result"
    core.lifecycle.report(engine, _report(2, ended=[Ended(record.id, lease, None, problem)]))
    await core.executions.wait(record.id)
    result = core.executions.result(record)
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None and result.error.message == problem


async def test_an_engine_lost_with_work_re_queues_it_and_a_cancel_meanwhile_ends_it(
    core: Orchestrator,
) -> None:
    await core.workflows.register(CHILD)
    engine = _engine(core)
    keep, stop = [await core.executions.start("child") for _ in range(2)]
    await _order(engine, keep.id)
    await _order(engine, stop.id)
    await core.executions.cancel(stop.id)  # asked of the engine: it ends when reported
    assert engine.cancels and not stop.finished
    core.lifecycle.lost(engine, "stream failed")
    assert stop.status is ExecutionStatus.CANCELLED  # nothing runs it: ended here
    assert core.placement.stats().queued == 1  # the other waits for an engine
    core.lifecycle.ready(engine)
    assert (await _order_count(engine, keep.id)) == 2  # placed again, with a new lease
    assert [o.lease for o in engine.orders if o.execution_id == keep.id] == [1, 2]


async def _order_count(engine: FakeEngine, execution_id: str) -> int:
    def count() -> int:
        n = sum(1 for o in engine.orders if o.execution_id == execution_id)
        return n if n > 1 else 0

    result: int = await eventually(count, what=f"{execution_id} placed again")
    return result


async def test_one_bad_engine_message_is_counted_and_the_stream_stays_up(
    tmp_path: Path,
) -> None:
    async with (
        running_engine(capacity=5) as engine,
        Orchestrator(
            orchestrator_id="t",
            discovery=StaticDiscovery([f"127.0.0.1:{engine.port}"]),
            balancer=make_balancer("round-robin"),
            store=open_store(f"sqlite:///{tmp_path / 'w.db'}"),
            health_interval=0.2,
            triggers_enabled=False,
        ) as core,
    ):
        await core.workflows.register(SLOW_END)
        real = core.lifecycle.report
        broken = []

        def report_once_broken(link: Any, report: EngineReport) -> None:
            if report.nodes and not broken:  # a handler bug on one message
                broken.append(report.seq)
                raise RuntimeError("a bug")
            real(link, report)

        core.lifecycle.report = report_once_broken  # type: ignore[method-assign]
        first = await core.executions.start("slow-end")
        await asyncio.wait_for(core.executions.wait(first.id), 10)
        [link] = core.engines.infos()
        assert broken and link.bad_messages == 1
        second = await core.executions.start("slow-end")  # the same stream carries on
        done = await asyncio.wait_for(core.executions.wait(second.id), 10)
        assert done.status is ExecutionStatus.COMPLETED
        assert core.engines.get(link.id).stream_number == 1  # type: ignore[union-attr]
        assert core.stats().background.healthy


async def test_a_held_lease_newer_than_the_store_s_is_adopted_not_placed_again(
    core: Orchestrator,
) -> None:
    """The orchestrator sent a placement and died before its lease was durable: after the
    restart the store has the older lease, the engine the newer one. The engine's copy is the
    execution; placing the same lease number again would be refused as a duplicate."""
    from orchestrator.engines.messages import Held

    await core.workflows.register(SLOW_END)
    engine = _engine(core)
    record = await core.executions.start("slow-end")
    lease = (await _order(engine, record.id)).lease
    core.lifecycle.lost(engine, "stream failed")  # re-queued; no engine is ready to take it
    record.placement.lease = lease - 1  # as recovered from a row saved before the placement
    core.lifecycle.connected(engine, [Held(record.id, lease, False)])
    assert engine.attaches == [(record.id, lease)] and not engine.cancels
    assert record.placement.lease == lease
    core.lifecycle.ready(engine)
    await asyncio.sleep(0.05)
    assert [o.lease for o in engine.orders if o.execution_id == record.id] == [lease]
