"""Durable engine streams in this process: seq and ack, detached executions, attach, sub-workflows.

A real gRPC server on 127.0.0.1:0; the orchestrator's side is driven by hand (``Stream``). Python
nodes (``step`` below) count their runs, so a test can tell that nothing ran twice, and can be
held at a gate while the test closes and reopens streams.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from weir.proto.v1 import engine_pb2 as pb

from engine.server.process import EngineServer
from tests.engine.test_engine_server import FAST, SLOW, Stream
from tests.support.engines import running_engine
from tests.support.poll import eventually

RUNS: Counter[str] = Counter()
GATES: dict[str, asyncio.Event] = {}

STEP = "tests.engine.test_engine_detach:step"
CHAIN = {
    "name": "chain",
    "version": "1.0.0",
    "nodes": [
        {"id": "a", "python": STEP, "args": {"name": "a"}},
        {"id": "b", "depends_on": ["a"], "python": STEP, "args": {"name": "b", "gate": "b"}},
        {"id": "c", "depends_on": ["b"], "python": STEP, "args": {"name": "c"}},
    ],
}
PARENT = {
    "name": "parent",
    "version": "1.0.0",
    "inputs": {"n": {"type": "number"}},
    "nodes": [
        {
            "id": "kid",
            "workflow": {"name": "child", "version": "^1.2"},
            "args": {"n": "${inputs.n}", "tag": "x"},
        },
        {"id": "after", "depends_on": ["kid"], "lua": "return {double = outputs.kid.total * 2}"},
    ],
    "outputs": {"total": "${outputs.kid.total}", "double": "${outputs.after.double}"},
}


async def step(name: str, gate: str = "") -> dict[str, Any]:
    """A python node: counts its runs, waits at its gate if it has one."""
    RUNS[name] += 1
    if gate:
        await GATES[gate].wait()
    return {"step": name}


@pytest.fixture(autouse=True)
def _gates() -> None:
    RUNS.clear()
    GATES.clear()
    GATES["b"] = asyncio.Event()


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine("detach-engine", capacity=3, shutdown_grace_period=0.2) as server:
        yield server


@pytest.fixture
async def channel(engine: EngineServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{engine.port}") as ch:
        yield ch


# --- helpers ---------------------------------------------------------------------------------


async def read(
    stream: Stream, done: Callable[[list[pb.FromEngine]], bool], within: float = 5.0
) -> list[pb.FromEngine]:
    """Every message read until ``done(messages so far)`` holds."""
    got: list[pb.FromEngine] = []
    async with asyncio.timeout(within):
        while not done(got):
            message = await stream.call.read()
            assert isinstance(message, pb.FromEngine), message
            got.append(message)
    return got


def results(messages: list[pb.FromEngine]) -> list[tuple[str, str]]:
    return [(r.execution_id, r.node) for m in messages for r in m.node_results]


def finished(messages: list[pb.FromEngine]) -> list[pb.ExecutionFinished]:
    return [f for m in messages for f in m.finished]


def seq_of(messages: list[pb.FromEngine], what: Callable[[pb.FromEngine], bool]) -> int:
    return next(m.seq for m in messages if what(m))


def held(engine: EngineServer) -> dict[str, tuple[int, bool]]:
    assert engine.service is not None
    return {h.execution_id: (h.lease, h.finished) for h in engine.service.held}


async def open_stream(channel: grpc.aio.Channel) -> tuple[Stream, pb.FromEngine]:
    stream = Stream(channel)
    hello = await stream.until(lambda m: m.HasField("hello"))
    return stream, hello


async def close(stream: Stream, engine: EngineServer, *ids: str) -> None:
    """Cancel the stream (the orchestrator died) and wait until the engine holds ``ids``."""
    stream.call.cancel()
    await eventually(lambda: set(ids) <= set(held(engine)), what=f"the engine to hold {ids}")


# --- seq, ack, detach, attach ----------------------------------------------------------------


async def test_messages_are_numbered_from_one(channel: grpc.aio.Channel) -> None:
    stream = Stream(channel)
    stream.execute("f1", FAST)
    messages = await read(stream, lambda got: bool(finished(got)))
    assert messages[0].HasField("hello")
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    stream.call.cancel()


async def test_detached_execution_keeps_running_and_attach_resends_what_was_not_acked(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    first = Stream(channel)
    first.execute("x1", CHAIN)
    await read(first, lambda got: ("x1", "a") in results(got))
    await close(first, engine, "x1")
    assert held(engine) == {"x1": (1, False)}

    GATES["b"].set()  # b and c run while nobody listens; the execution ends detached
    await eventually(lambda: held(engine).get("x1") == (1, True))
    assert engine.service is not None and engine.service.in_flight == 0

    second, hello = await open_stream(channel)
    assert [(h.execution_id, h.lease, h.finished) for h in hello.hello.held] == [("x1", 1, True)]
    second.send(attach=[pb.Attach(execution_id="x1", lease=1)])
    got = await read(second, lambda got: bool(finished(got)))
    assert results(got) == [("x1", "a"), ("x1", "b"), ("x1", "c")]  # a was never acked
    result = json.loads(finished(got)[0].result_json)
    assert result["status"] == "completed"
    assert RUNS == {"a": 1, "b": 1, "c": 1}
    assert held(engine) == {}

    second.send(ack=seq_of(got, lambda m: len(m.finished) > 0))
    await eventually(lambda: not engine.service._ended)  # type: ignore[union-attr]
    second.call.cancel()
    third, hello = await open_stream(channel)
    assert list(hello.hello.held) == []  # acknowledged: forgotten, not held again
    third.call.cancel()


async def test_acked_results_are_not_resent_on_attach(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    first = Stream(channel)
    first.execute("x2", CHAIN)
    got = await read(first, lambda got: ("x2", "a") in results(got))
    first.send(ack=seq_of(got, lambda m: len(m.node_results) > 0))
    assert engine.service is not None
    run = engine.service._runs["x2"]
    await eventually(lambda: not run.kept)
    await close(first, engine, "x2")

    second, hello = await open_stream(channel)
    assert [(h.execution_id, h.finished) for h in hello.hello.held] == [("x2", False)]
    second.send(attach=[pb.Attach(execution_id="x2", lease=1)])
    await eventually(lambda: "x2" not in held(engine))
    GATES["b"].set()
    got = await read(second, lambda got: bool(finished(got)))
    assert results(got) == [("x2", "b"), ("x2", "c")]
    assert json.loads(finished(got)[0].result_json)["status"] == "completed"
    assert RUNS == {"a": 1, "b": 1, "c": 1}
    second.call.cancel()


async def test_attach_with_a_wrong_lease_is_ignored(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    first = Stream(channel)
    first.execute("x3", CHAIN, lease=4)
    await read(first, lambda got: ("x3", "a") in results(got))
    await close(first, engine, "x3")
    second, _ = await open_stream(channel)
    second.send(attach=[pb.Attach(execution_id="x3", lease=3), pb.Attach(execution_id="nope")])
    second.execute("f2", FAST)  # in the same order as the attach: once it ends, both were read
    await read(second, lambda got: bool(finished(got)))
    assert held(engine) == {"x3": (4, False)}
    second.call.cancel()


async def test_unclaimed_execution_is_cancelled_after_the_detached_timeout() -> None:
    async with (
        running_engine("short", capacity=2, detached_timeout=0.3) as engine,
        grpc.aio.insecure_channel(f"127.0.0.1:{engine.port}") as channel,
    ):
        stream = Stream(channel)
        stream.execute("s1", SLOW)
        await stream.until(lambda m: m.load.in_flight == 1)
        await close(stream, engine, "s1")
        assert engine.service is not None and engine.service.in_flight == 1  # counts capacity
        metrics = engine.service._metrics
        assert metrics.detached._value.get() == 1
        await eventually(lambda: held(engine) == {})
        assert metrics.detached._value.get() == 0
        assert engine.service.in_flight == 0
        again, hello = await open_stream(channel)
        assert list(hello.hello.held) == []
        assert metrics.expired._value.get() == 1
        again.call.cancel()


async def test_cancel_of_a_held_lease_forgets_it_without_a_report(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    first = Stream(channel)
    first.execute("s1", SLOW)
    first.execute("s2", SLOW, lease=7)
    await first.until(lambda m: m.load.in_flight == 2)
    await close(first, engine, "s1", "s2")
    second, hello = await open_stream(channel)
    assert {h.execution_id for h in hello.hello.held} == {"s1", "s2"}
    second.send(
        cancel=[
            pb.Cancel(execution_id="s1", lease=1, reason="superseded"),
            pb.Cancel(execution_id="s2", lease=0),  # any lease
        ]
    )
    second.execute("f1", FAST)
    got = await read(second, lambda got: any(f.execution_id == "f1" for f in finished(got)))
    assert [f.execution_id for f in finished(got)] == ["f1"]
    assert held(engine) == {}
    assert engine.service is not None and engine.service.in_flight == 0
    second.call.cancel()


async def test_execute_with_a_newer_lease_replaces_a_held_one(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    first = Stream(channel)
    first.execute("x4", CHAIN, lease=1)
    await read(first, lambda got: ("x4", "a") in results(got))
    await close(first, engine, "x4")
    second, _ = await open_stream(channel)
    second.execute("x4", FAST, lease=1)
    dup = await second.until(lambda m: len(m.rejected) > 0)
    assert dup.rejected[0].reason == pb.ExecutionRejected.REASON_DUPLICATE
    second.execute("x4", FAST, lease=2)
    got = await read(second, lambda got: bool(finished(got)))
    assert [(f.execution_id, f.lease) for f in finished(got)] == [("x4", 2)]
    assert {r.lease for m in got for r in m.node_results} == {2}
    assert held(engine) == {}
    second.call.cancel()


async def test_drain_cancels_held_executions(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    first = Stream(channel)
    first.execute("s1", SLOW)
    await first.until(lambda m: m.load.in_flight == 1)
    await close(first, engine, "s1")
    await asyncio.wait_for(engine.drain(), 10)
    assert engine.service is not None
    assert (engine.service.in_flight, held(engine)) == (0, {})


# --- sub-workflows ---------------------------------------------------------------------------


def child_finished(
    start: pb.StartChild, status: pb.ExecutionStatus.ValueType, **kw: Any
) -> pb.ChildFinished:
    return pb.ChildFinished(
        execution_id=start.execution_id,
        lease=start.lease,
        node=start.node,
        visit=start.visit,
        attempt=start.attempt,
        child_id=f"child-of-{start.execution_id}",
        status=status,
        **kw,
    )


async def start_child(stream: Stream) -> pb.StartChild:
    got = await read(stream, lambda got: any(m.start_child for m in got))
    (request,) = [s for m in got for s in m.start_child]
    return request


async def test_workflow_node_asks_for_a_child_and_completes_with_its_outputs(
    channel: grpc.aio.Channel,
) -> None:
    stream = Stream(channel)
    stream.execute("p1", PARENT, lease=3, inputs_json=b'{"n": 21}')
    request = await start_child(stream)
    assert (request.execution_id, request.lease, request.node) == ("p1", 3, "kid")
    assert (request.visit, request.attempt) == (1, 1)
    assert (request.workflow, request.version_range) == ("child", "^1.2")
    assert json.loads(request.inputs_json) == {"n": 21, "tag": "x"}
    stray = child_finished(request, pb.EXECUTION_STATUS_COMPLETED, outputs_json=b'{"total": 0}')
    stray.attempt = 2  # nobody waits for this one: ignored
    stream.send(child_finished=[stray])
    stream.send(
        child_finished=[
            child_finished(request, pb.EXECUTION_STATUS_COMPLETED, outputs_json=b'{"total": 42}')
        ]
    )
    got = await read(stream, lambda got: bool(finished(got)))
    result = json.loads(finished(got)[0].result_json)
    assert result["status"] == "completed", result
    assert result["nodes"]["kid"]["output"] == {"total": 42}
    assert result["outputs"] == {"total": 42, "double": 84}
    stream.call.cancel()


async def test_a_child_that_does_not_complete_fails_the_node(channel: grpc.aio.Channel) -> None:
    stream = Stream(channel)
    stream.execute("p1", PARENT, inputs_json=b'{"n": 1}')
    first = await start_child(stream)
    stream.execute("p2", PARENT, inputs_json=b'{"n": 2}')
    second = await start_child(stream)
    stream.send(
        child_finished=[
            child_finished(first, pb.EXECUTION_STATUS_FAILED, error="node pay: card declined"),
            child_finished(second, pb.EXECUTION_STATUS_CANCELLED),
        ]
    )
    got = await read(stream, lambda got: len(finished(got)) == 2)
    by_id = {f.execution_id: json.loads(f.result_json) for f in finished(got)}
    assert by_id["p1"]["status"] == "failed"
    assert by_id["p1"]["error"] == {"node": "kid", "message": "node pay: card declined"}
    assert by_id["p1"]["nodes"]["kid"]["attempts"] == 1  # not retried
    assert by_id["p2"]["error"] == {"node": "kid", "message": "sub-workflow child cancelled"}
    stream.call.cancel()


async def test_start_child_pending_while_detached_is_asked_again_on_attach(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    first = Stream(channel)
    first.execute("p1", PARENT, inputs_json=b'{"n": 5}')
    asked = await start_child(first)
    await close(first, engine, "p1")
    second, hello = await open_stream(channel)
    assert [(h.execution_id, h.finished) for h in hello.hello.held] == [("p1", False)]
    second.send(attach=[pb.Attach(execution_id="p1", lease=1)])
    again = await start_child(second)
    assert again == asked
    second.send(
        child_finished=[
            child_finished(again, pb.EXECUTION_STATUS_COMPLETED, outputs_json=b'{"total": 5}')
        ]
    )
    got = await read(second, lambda got: bool(finished(got)))
    assert json.loads(finished(got)[0].result_json)["outputs"] == {"total": 5, "double": 10}
    second.call.cancel()


async def test_cancel_while_waiting_for_a_child(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    stream = Stream(channel)
    stream.execute("p1", PARENT, inputs_json=b'{"n": 5}')
    request = await start_child(stream)
    stream.send(cancel=[pb.Cancel(execution_id="p1", reason="user asked")])
    got = await read(stream, lambda got: bool(finished(got)))
    result = json.loads(finished(got)[0].result_json)
    assert (result["status"], result["nodes"]["kid"]["status"]) == ("cancelled", "cancelled")
    stream.send(child_finished=[child_finished(request, pb.EXECUTION_STATUS_CANCELLED)])
    stream.execute("f1", FAST)  # the late answer is ignored; the stream carries on
    await read(stream, lambda got: bool(finished(got)))
    stream.call.cancel()


async def test_node_timeout_applies_to_a_workflow_node(channel: grpc.aio.Channel) -> None:
    doc = {
        "name": "impatient",
        "version": "1.0.0",
        "nodes": [
            {"id": "kid", "workflow": {"name": "child", "version": "1.0.0"}, "timeout": "200ms"}
        ],
    }
    stream = Stream(channel)
    stream.execute("t1", doc)
    got = await read(stream, lambda got: bool(finished(got)))
    result = json.loads(finished(got)[0].result_json)
    assert result["status"] == "failed"
    assert result["error"]["node"] == "kid"
    assert [s.node for m in got for s in m.start_child] == ["kid"]
    stream.call.cancel()
