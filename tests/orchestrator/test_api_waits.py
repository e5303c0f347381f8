"""The gRPC side of long waits, through ``weir.Client``: an ``OrchestratorServer`` in this
process (SQLite in tmp_path) with a real in-process engine that parks executions after 0.3 s.

``SignalExecution`` consumed at once or kept, and each refusal's status; ``CompleteTask`` with an
``outcome``; ``TaskInfo``'s kind, outcome and due time; a parked execution's ``WAITING`` status,
``wake_at`` and the ``ListExecutions`` filter.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from weir import ApiError, Client
from weir.proto.v1 import engine_pb2 as epb
from weir.proto.v1 import orchestrator_pb2 as pb
from weir.proto.v1 import orchestrator_pb2_grpc as pb_grpc
from weir.proto.v1 import worker_pb2 as wpb

from engine.server import codec
from tests.support import tasks as gates
from tests.support.engines import running_engine
from tests.support.poll import eventually
from tests.support.servers import start_server
from tests.support.waits import APPROVAL, CI, NAP

OPEN = (wpb.TASK_STATUS_PENDING, wpb.TASK_STATUS_RUNNING)


@pytest.fixture(autouse=True)
def _reset_gates() -> None:
    gates.reset()
    gates.open_gate("open")  # APPROVAL's default: no holding back


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with running_engine(capacity=20, park_after=0.3) as engine:
        server = await start_server(engine, tmp_path)
        try:
            async with Client(f"127.0.0.1:{server.port}", timeout=10) as client:
                for source in (APPROVAL, CI, NAP):
                    await client.register(source)
                yield client
        finally:
            await server.stop(grace=0.5)


async def _open_task(client: Client, execution_id: str) -> wpb.TaskInfo:
    async def found() -> wpb.TaskInfo | None:
        tasks = await client.tasks(execution_id=execution_id)
        return next((t for t in tasks if t.status in OPEN), None)

    task: wpb.TaskInfo = await eventually(found, what=f"an open task of {execution_id}")
    return task


async def test_signal_execution_consumed_or_kept_and_its_refusals(client: Client) -> None:
    first = await client.start("approval")
    wait = await _open_task(client, first.id)
    assert (wait.kind, wait.queue, wait.node) == (epb.TASK_KIND_SIGNAL, "approve", "D")
    assert abs(wait.due_at - (wait.created_at + 3600)) < 1

    before = time.time()
    receipt = await client.signal(first.id, "approve", outcome="AGREE", data={"by": "ada"})
    assert receipt.id and (receipt.execution_id, receipt.name) == (first.id, "approve")
    assert (receipt.node, receipt.visit) == ("D", 1)
    assert before - 1 <= codec.seconds(receipt.sent_at) <= time.time() + 1
    done = await client.wait(first.id)
    assert done.status == epb.EXECUTION_STATUS_COMPLETED
    assert list(done.path) == ["prepare", "D", "B"]
    assert json.loads(done.nodes["D"].output_json) == {"by": "ada"}
    assert done.nodes["D"].outcome == "AGREE" and not done.HasField("wake_at")
    taken = (await client.tasks(execution_id=first.id))[0]
    assert (taken.status, taken.outcome) == (wpb.TASK_STATUS_COMPLETED, "AGREE")

    with pytest.raises(ApiError) as finished:
        await client.signal(first.id, "approve")
    assert finished.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert first.id in finished.value.details
    with pytest.raises(ApiError) as missing:
        await client.signal("nope", "approve")
    assert missing.value.code == grpc.StatusCode.NOT_FOUND

    second = await client.start("approval")
    with pytest.raises(ApiError) as unknown:
        await client.signal(second.id, "aprove")
    assert unknown.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "approve" in unknown.value.details
    for execution_id, name, field in ((second.id, "", "name"), ("", "approve", "execution_id")):
        with pytest.raises(ApiError) as empty:
            await client.signal(execution_id, name)
        assert empty.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert f"{field}: is required" in empty.value.details
    async with grpc.aio.insecure_channel(client.target) as channel:
        request = pb.SignalExecutionRequest(execution_id=second.id, name="approve", data_json=b"{")
        with pytest.raises(grpc.aio.AioRpcError) as not_json:
            await pb_grpc.OrchestratorStub(channel).SignalExecution(request, timeout=10)
    assert not_json.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "data: not UTF-8 JSON" in (not_json.value.details() or "")


async def test_a_signal_sent_before_the_wait_is_kept(client: Client) -> None:
    started = await client.start("approval", {"gate": "held"})
    await eventually(lambda: "held" in gates.at_gate, what="the execution at its gate")
    kept = await client.signal(started.id, "approve", outcome="REJECT")
    assert kept.node == "" and not kept.HasField("visit") and kept.HasField("sent_at")
    gates.open_gate("held")
    done = await client.wait(started.id)
    assert list(done.path) == ["prepare", "D", "C"]


async def test_complete_task_with_an_outcome_routes_next_and_task_info_shows_it(
    client: Client,
) -> None:
    started = await client.start("ci")
    task = await _open_task(client, started.id)
    assert (task.kind, task.queue, task.outcome, task.due_at) == (epb.TASK_KIND_WORKER, "ci", "", 0)
    done_task = await client.complete_task(task.token, b'{"by": "ada"}', outcome="REJECT")
    assert (done_task.status, done_task.outcome) == (wpb.TASK_STATUS_COMPLETED, "REJECT")
    again = await client.complete_task(task.token, b'{"by": "ada"}', outcome="REJECT")
    assert again.outcome == "REJECT"  # a duplicate
    with pytest.raises(ApiError) as other:
        await client.complete_task(task.token, b'{"by": "ada"}', outcome="AGREE")
    assert other.value.code == grpc.StatusCode.FAILED_PRECONDITION
    done = await client.wait(started.id)
    assert list(done.path) == ["A", "C"] and done.nodes["A"].outcome == "REJECT"


async def test_a_parked_execution_is_waiting_with_wake_at(client: Client) -> None:
    started = await client.start("nap")

    async def parked() -> bool:
        return (await client.execution(started.id)).status == epb.EXECUTION_STATUS_WAITING

    await eventually(parked, what="the execution parked")
    execution = await client.execution(started.id)
    assert execution.HasField("wake_at")
    assert abs(codec.seconds(execution.wake_at) - (codec.seconds(execution.started_at) + 7200)) < 2
    timer = await _open_task(client, started.id)
    assert (timer.kind, timer.queue) == (epb.TASK_KIND_TIMER, "")
    assert abs(timer.due_at - (timer.created_at + 3600)) < 1

    waiting = await client.executions(status=epb.EXECUTION_STATUS_WAITING)
    assert [e.id for e in waiting] == [started.id]
    assert await client.executions(status=epb.EXECUTION_STATUS_RUNNING) == []
    cancelled = await client.cancel(started.id)
    assert cancelled.id == started.id
    done = await client.wait(started.id)
    assert done.status == epb.EXECUTION_STATUS_CANCELLED and not done.HasField("wake_at")
