"""The engine protocol's conversions and keys for the records of nodes with ``map``.

``NodeResult`` <-> ``weir.engine.v1.NodeResult`` both ways (``codec``), and the engine's waits for
sub-workflows and tasks (``ChildRequests``, ``TaskRequests``), which must keep two items of one
node attempt apart: real requests on a real ``Run``, answered as the orchestrator would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from weir.proto.v1 import engine_pb2 as pb

from engine.definition import Definition, Workflow
from engine.definition.model import QueueTask, SubWorkflowTask
from engine.driver import ExecutionDriver
from engine.executors.node import NodeAttempt, NodeRunner
from engine.lua import LuaSandbox
from engine.server import codec
from engine.server.children import ChildRequests
from engine.server.metrics import EngineMetrics
from engine.server.session import Run
from engine.server.tasks import TaskRequests
from engine.state.events import NodeResult, NodeStatus
from tests.support.poll import eventually

EXPANSION = NodeResult("m", 1, 0, NodeStatus.RUNNING, output=["x", "y"], started_at=5.25)
RECORDS = [
    pytest.param(EXPANSION, id="expansion"),
    pytest.param(NodeResult("m", 1, 1, NodeStatus.COMPLETED, output="X", item=0), id="item-0"),
    pytest.param(
        NodeResult("m", 2, 3, NodeStatus.FAILED, error="boom", retryable=True, item=7),
        id="item-retried",
    ),
    pytest.param(NodeResult("m", 1, 1, NodeStatus.COMPLETED, output=["X", "Y"]), id="final"),
    pytest.param(
        NodeResult(
            "a",
            1,
            1,
            NodeStatus.COMPLETED,
            output={"n": 1},
            outcome="AGREE",
            route="b",
            started_at=1.5,
            finished_at=2.75,
            reused_from="e0",
        ),
        id="reused",
    ),
]


@pytest.mark.parametrize("result", RECORDS)
def test_a_node_result_round_trips(result: NodeResult) -> None:
    m = pb.NodeResult()
    codec.fill_result(m, "e1", 3, result)
    wire = pb.NodeResult.FromString(m.SerializeToString())
    assert (wire.execution_id, wire.lease) == ("e1", 3)
    assert wire.HasField("item") is (result.item is not None)
    assert codec.result_from_pb(wire) == result


def test_a_result_from_an_older_engine_has_no_item_and_is_not_reused() -> None:
    old = pb.NodeResult(node="a", visit=1, attempt=2, status=pb.NODE_STATUS_COMPLETED)
    result = codec.result_from_pb(old)
    assert (result.item, result.reused_from, result.attempt) == (None, None, 2)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": pb.NODE_STATUS_RUNNING, "attempt": 1}, "only a map's expansion"),
        ({"status": pb.NODE_STATUS_RUNNING, "attempt": 0, "item": 0}, "only a map's expansion"),
        ({"status": pb.NODE_STATUS_COMPLETED, "attempt": 0}, "are required"),
        ({"status": pb.NODE_STATUS_COMPLETED, "attempt": 0, "item": 1}, "are required"),
        ({"status": pb.NODE_STATUS_PENDING, "attempt": 1}, "cannot end an attempt"),
        ({"status": pb.NODE_STATUS_COMPLETED, "attempt": 1, "visit": 0}, "are required"),
    ],
)
def test_records_that_are_neither_an_attempt_nor_an_expansion_are_refused(
    fields: dict[str, Any], message: str
) -> None:
    m = pb.NodeResult(node="m", **{"visit": 1, **fields})
    with pytest.raises(codec.CodecError, match=message):
        codec.result_from_pb(m)


# --- the engine's waits for sub-workflows and tasks ------------------------------------------


@pytest.fixture
async def run() -> AsyncIterator[Run]:
    """A run placed here on no stream (its requests wait in its dicts), not started."""
    definition: Definition = Workflow("w", "1.0.0").node("m", noop=True).build()
    sandbox = LuaSandbox()
    try:
        async with NodeRunner(sandbox=sandbox) as runner:
            run = Run("e1", 4, None)
            run.driver = ExecutionDriver(definition, {}, runner, execution_id="e1")
            yield run
    finally:
        sandbox.close()


async def test_two_items_of_one_node_attempt_wait_for_their_own_task(run: Run) -> None:
    tasks = TaskRequests(lambda id: run if id == run.id else None, EngineMetrics("e", 1))
    ctx = run.driver.context
    asks = {
        item: asyncio.create_task(
            tasks.run_task(QueueTask("q"), {"i": item}, ctx, NodeAttempt("m", 1, 1, item))
        )
        for item in (None, 0, 1)
    }
    await eventually(lambda: len(run.task_waits) == 3, what="three task requests")
    requests = {
        w.request.item if w.request.HasField("item") else None: w.request
        for w in run.task_waits.values()
    }
    assert set(requests) == {None, 0, 1}
    assert [requests[i].args_json for i in (None, 0, 1)] == [b'{"i":null}', b'{"i":0}', b'{"i":1}']

    def finished(item: int | None, output: bytes) -> pb.TaskFinished:
        return pb.TaskFinished(
            execution_id="e1",
            lease=4,
            node="m",
            visit=1,
            attempt=1,
            item=item,
            completed=True,
            output_json=output,
        )

    tasks.answer(finished(1, b'"one"'))
    tasks.answer(finished(2, b'"nobody"'))  # no such item waits: ignored
    assert await asyncio.wait_for(asks[1], 5) == "one"
    assert not asks[0].done() and not asks[None].done()
    tasks.answer(finished(0, b'"zero"'))
    tasks.answer(finished(None, b'"node"'))
    assert await asyncio.wait_for(asks[0], 5) == "zero"
    assert await asyncio.wait_for(asks[None], 5) == "node"
    assert run.task_waits == {}


async def test_two_items_of_one_node_attempt_wait_for_their_own_child(run: Run) -> None:
    children = ChildRequests(lambda id: run if id == run.id else None, EngineMetrics("e", 1))
    ctx = run.driver.context
    asks = {
        item: asyncio.create_task(
            children.run_child(SubWorkflowTask("kid", "*"), {}, ctx, NodeAttempt("m", 1, 1, item))
        )
        for item in (0, 1)
    }
    await eventually(lambda: len(run.children) == 2, what="two child requests")
    assert sorted(w.request.item for w in run.children.values()) == [0, 1]
    for item in (1, 0):
        children.answer(
            pb.ChildFinished(
                execution_id="e1",
                lease=4,
                node="m",
                visit=1,
                attempt=1,
                item=item,
                status=pb.EXECUTION_STATUS_COMPLETED,
                outputs_json=b'{"item": %d}' % item,
            )
        )
    assert [await asyncio.wait_for(asks[i], 5) for i in (0, 1)] == [{"item": 0}, {"item": 1}]
