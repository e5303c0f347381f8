"""Reading and following the event log (``orchestrator.watch``), in process and over gRPC.

The monitor publishes into a real store (memory and SQLite); readers must see every event of
their query exactly once and in order, across the switch from the log to live events, and a
reader that falls behind must get a resume point from which the log gives it the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from weir import Client

from engine.server.process import EngineServer
from engine.state.events import ExecutionStatus
from orchestrator.discovery.static import StaticDiscovery
from orchestrator.engines.messages import Ended, EngineReport
from orchestrator.errors import NotFound
from orchestrator.monitor import Monitor, MonitorEvent, Severity
from orchestrator.ring import make_balancer
from orchestrator.server import OrchestratorServer
from orchestrator.settings import OrchestratorSettings
from orchestrator.store import open_store
from orchestrator.watch import EventQuery, LaggedNotice, history, watch
from orchestrator.wiring import Orchestrator
from tests.support import tasks
from tests.support.engines import running_engine
from tests.support.fakes import FakeEngine
from tests.support.poll import eventually


@pytest.fixture(params=["memory", "sqlite"])
async def core(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Orchestrator]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'w.db'}"
    core = Orchestrator(
        orchestrator_id="t",
        discovery=StaticDiscovery([]),
        balancer=make_balancer("round-robin"),
        store=open_store(url),
        monitor=Monitor(subscriber_buffer=8),
        triggers_enabled=False,
    )
    await core.start()
    try:
        yield core
    finally:
        await core.stop()


def _publish(core: Orchestrator, count: int, **fields: str) -> list[int]:
    kinds = ["node.started", "node.failed", "execution.completed"]
    return [
        core.monitor.publish(kinds[i % 3], message=str(i), **fields).sequence for i in range(count)
    ]


async def test_history_pages_filters_and_the_newest(core: Orchestrator) -> None:
    _publish(core, 30, workflow="a", execution_id="x1")
    _publish(core, 30, workflow="b", execution_id="x2")
    await core.store.durable()
    everything = await history(core.store, EventQuery(), limit=1000)
    assert [e.sequence for e in everything] == list(range(1, 61))
    page = await history(core.store, EventQuery(), after=10, limit=5)
    assert [e.sequence for e in page] == [11, 12, 13, 14, 15]
    newest = await history(core.store, EventQuery(workflow="a"), limit=3, newest=True)
    assert [e.sequence for e in newest] == [28, 29, 30]
    failed = await history(core.store, EventQuery.of(types=["node.failed"]), limit=1000)
    assert {e.type for e in failed} == {"node.failed"} and len(failed) == 20
    nodes = await history(core.store, EventQuery.of(types=["node.*"]), limit=4, newest=True)
    assert [e.sequence for e in nodes] == [55, 56, 58, 59]
    warnings = await history(
        core.store, EventQuery.of(min_severity=Severity.WARNING, execution_id="x2"), limit=1000
    )
    assert len(warnings) == 10 and all(e.execution_id == "x2" for e in warnings)


async def test_follow_switches_from_the_log_to_live_with_no_gap_or_duplicate(
    core: Orchestrator,
) -> None:
    before = _publish(core, 5)
    seen: list[int] = []

    async def read() -> None:
        async for item in watch(core.monitor, core.store, EventQuery(), after=2):
            assert isinstance(item, list)
            seen.extend(e.sequence for e in item)
            if seen[-1] >= 12:
                return

    reader = asyncio.create_task(read())
    # interval=0: publish right after the reader subscribed, while it may still read the log
    await eventually(lambda: core.monitor.subscriber_count == 1, interval=0)
    after = _publish(core, 4)
    await eventually(lambda: seen and seen[-1] == after[-1], what="the reader to catch up")
    after += _publish(core, 3)  # live events only, now
    await asyncio.wait_for(reader, 5)
    assert seen == [*before[2:], *after] == list(range(3, 13))


async def test_a_reader_that_falls_behind_gets_a_resume_point_and_misses_nothing(
    core: Orchestrator,
) -> None:
    stream = watch(core.monitor, core.store, EventQuery(workflow="w")).__aiter__()
    first = asyncio.ensure_future(anext(stream))
    await eventually(lambda: core.monitor.subscriber_count == 1)  # buffer: 8 events
    published = _publish(core, 50, workflow="w")
    got: list[int] = []
    item = await first
    while not isinstance(item, LaggedNotice):
        got += [e.sequence for e in item]
        item = await anext(stream)
    assert got == published[: len(got)] and 0 < len(got) < 50
    assert item.resume_after == got[-1]
    assert core.monitor.dropped_subscribers == 1
    rest = core.events.read(EventQuery(workflow="w"), after=item.resume_after, follow=False)
    batch = await anext(rest)
    assert isinstance(batch, list)
    assert got + [e.sequence for e in batch] == published


GATED = """
name: gated
version: 1.0.0
inputs: {gate: {type: string}}
nodes:
  - {id: wait, python: "tests.support.tasks:gate", args: {name: "${inputs.gate}"}}
  - {id: after, depends_on: [wait], noop: {}}
"""


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine(capacity=5) as server:
        yield server


@pytest.fixture(params=["memory", "sqlite"])
async def core_with_engine(
    request: pytest.FixtureRequest, tmp_path: Path, engine: EngineServer
) -> AsyncIterator[Orchestrator]:
    """An orchestrator whose executions run on a real engine (``core`` has none)."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'w.db'}"
    tasks.reset()
    core = Orchestrator(
        orchestrator_id="t",
        discovery=StaticDiscovery([f"127.0.0.1:{engine.port}"]),
        balancer=make_balancer("round-robin"),
        store=open_store(url),
        triggers_enabled=False,
    )
    await core.start()
    try:
        yield core
    finally:
        tasks.reset()  # a gate left shut (a failed test) is cancelled when the engine stops
        await core.stop()


async def _events_to_the_end(
    stream: AsyncIterator[list[MonitorEvent] | LaggedNotice], into: list[MonitorEvent]
) -> list[MonitorEvent]:
    async for item in stream:
        assert isinstance(item, list), item
        into += item
    return into


async def test_one_execution_follow_ends_when_it_has_ended(
    core_with_engine: Orchestrator,
) -> None:
    core = core_with_engine
    with pytest.raises(NotFound, match="not found"):
        await anext(core.events.read(EventQuery(execution_id="nope"), follow=True))

    await core.workflows.register(GATED)
    running = await core.executions.start("gated", "", {"gate": "running"})
    other = await core.executions.start("gated", "", {"gate": "other"})
    await eventually(lambda: tasks.at_gate == {"running", "other"}, what="both to reach the gate")

    # Still running when the follower starts: it gets the events so far, then live ones.
    subscribed = core.monitor.subscriber_count
    live: list[MonitorEvent] = []
    follower = asyncio.create_task(
        _events_to_the_end(core.events.read(EventQuery(execution_id=running.id), follow=True), live)
    )
    await eventually(lambda: core.monitor.subscriber_count > subscribed, what="the follower")
    await eventually(lambda: any(e.type == "node.started" for e in live), what="the events so far")
    tasks.open_gate("other")  # another execution's end does not end this follower
    await asyncio.wait_for(core.executions.wait(other.id), 10)
    assert not follower.done()
    tasks.open_gate("running")
    followed = await asyncio.wait_for(follower, 10)  # ends by itself, or this times out
    assert (await core.executions.get(running.id)).status == "completed"
    assert {e.execution_id for e in followed} == {running.id}
    assert followed[0].type == "execution.queued" and followed[-1].type == "execution.completed"
    assert [e.type for e in followed].count("execution.completed") == 1
    logged = await history(core.store, EventQuery(execution_id=running.id), limit=1000)
    assert [e.sequence for e in followed] == [e.sequence for e in logged]  # all, once, in order

    # Already finished when the follower starts: it gets the whole log and ends.
    for finished in (other, running):
        followed = await asyncio.wait_for(
            _events_to_the_end(
                core.events.read(EventQuery(execution_id=finished.id), follow=True), []
            ),
            10,
        )
        logged = await history(core.store, EventQuery(execution_id=finished.id), limit=1000)
        assert [e.sequence for e in followed] == [e.sequence for e in logged]
        assert followed[0].type == "execution.queued"
        assert followed[-1].type == "execution.completed"


async def test_watch_events_over_grpc_in_batches_resuming_after_lagging(tmp_path: Path) -> None:
    server = OrchestratorServer(
        OrchestratorSettings(
            orchestrator_id="t",
            bind_address="127.0.0.1",
            grpc_port=0,
            http_port=0,
            store_url=f"sqlite:///{tmp_path / 'w.db'}",
            subscriber_buffer=10,
            triggers_enabled=False,
        )
    )
    await server.start()
    try:
        core = server.core
        async with Client(f"127.0.0.1:{server.port}", timeout=10) as client:
            batches = client.event_batches(workflow="w", follow=True)
            pending = asyncio.ensure_future(anext(batches))
            await eventually(
                lambda: core.monitor.subscriber_count > 0,
                what="the server to subscribe the watcher",
            )
            published = _publish(core, 300, workflow="w")  # one burst: more than 10 queued
            lagged_at = None
            seen: list[int] = []
            while lagged_at is None:
                batch = await asyncio.wait_for(pending, 10)
                assert len(batch.events) <= 500
                seen += [e.sequence for e in batch.events]
                if batch.HasField("lagged_after"):
                    lagged_at = batch.lagged_after
                else:
                    pending = asyncio.ensure_future(anext(batches))
            assert seen == published[: len(seen)] and lagged_at == seen[-1] < published[-1]

            # events() resumes by itself: from a point before the burst it gets all of it.
            resumed: list[MonitorEvent | int] = []
            async for event in client.events(workflow="w", after=0, follow=True):
                resumed.append(event.sequence)
                if event.sequence == published[-1]:
                    break
            assert resumed == published
            newest = [e.sequence async for e in client.events(follow=False, limit=3)]
            assert newest == published[-3:]
    finally:
        await server.stop(grace=0.5)


async def test_an_execution_whose_engine_lost_its_end_event_still_gets_one(
    core: Orchestrator,
) -> None:
    """After a re-attach an engine re-sends the final result, not the events that went with it:
    the orchestrator publishes the end event itself, so a follower of that execution ends."""
    await core.workflows.register("name: w\nversion: 1.0.0\nnodes: [{id: a, noop: {}}]\n")
    engine = FakeEngine("fake")  # our EnginePort, recording what it is told
    core.engines.put(engine)
    core.lifecycle.ready(engine)
    record = await core.executions.start("w")
    await eventually(lambda: engine.orders, what="the execution placed on the fake engine")
    follow = core.events.read(EventQuery(execution_id=record.id), follow=True)
    reader = asyncio.ensure_future(_drain(follow))
    await eventually(lambda: core.monitor.subscriber_count, what="the follower subscribed")
    # What an engine sends after a re-attach: the final result again, without the events that
    # went with it on the stream that broke.
    final = core.executions.result(record).with_status(ExecutionStatus.COMPLETED)
    [order] = engine.orders
    core.lifecycle.report(
        engine, EngineReport(seq=2, stream=1, ended=[Ended(record.id, order.lease, final)])
    )
    types = await asyncio.wait_for(reader, 5)
    assert types[0] == "execution.queued" and types[-1] == "execution.completed"
    assert types.count("execution.completed") == 1
    await eventually(lambda: engine.acks == [(2, 1)], what="the report acknowledged, once durable")
    await asyncio.wait_for(core.executions.wait(record.id), 5)


async def _drain(stream: AsyncIterator[list[MonitorEvent] | LaggedNotice]) -> list[str]:
    types: list[str] = []
    async for item in stream:
        assert isinstance(item, list)
        types += [e.type for e in item]
    return types
