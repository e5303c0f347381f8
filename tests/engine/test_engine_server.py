"""The engine's gRPC service in this process: capacity, leases, cancel, drain, health, metrics.

Detached executions, acknowledgements and sub-workflows: ``test_engine_detach.py``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from weir.proto.v1 import engine_pb2 as pb
from weir.proto.v1 import engine_pb2_grpc as pb_grpc

from engine.server import codec
from engine.server.process import EngineServer
from tests.support.engines import running_engine

SLOW = {
    "name": "slow",
    "version": "1.0.0",
    "nodes": [{"id": "nap", "python": "tests.support.tasks:nap", "args": {"seconds": 5}}],
}
FAST = {"name": "fast", "version": "1.0.0", "nodes": [{"id": "a", "lua": "return {x = 1}"}]}


class Stream:
    """An orchestrator's side of one Connect stream, driven by hand."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.outbox: asyncio.Queue[pb.ToEngine] = asyncio.Queue()
        self.call = pb_grpc.EngineStub(channel).Connect(self._requests())

    async def _requests(self) -> AsyncIterator[pb.ToEngine]:
        while True:
            yield await self.outbox.get()

    def send(self, **fields: Any) -> None:
        """Queue one ``ToEngine`` built from ``fields`` (attach, cancel, ack, child_finished...)."""
        self.outbox.put_nowait(pb.ToEngine(**fields))

    def execute(self, execution_id: str, doc: dict[str, Any], lease: int = 1, **kw: Any) -> None:
        data, digest = codec.canonical_definition(doc)
        self.outbox.put_nowait(
            pb.ToEngine(
                execute=[
                    pb.Execute(
                        execution_id=execution_id,
                        lease=lease,
                        definition_digest=digest,
                        definition_json=data,
                        **kw,
                    )
                ]
            )
        )

    async def until(self, check: Any, within: float = 5.0) -> pb.FromEngine:
        async with asyncio.timeout(within):
            while True:
                message = await self.call.read()
                assert isinstance(message, pb.FromEngine)
                if check(message):
                    return message


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine(
        "test-engine", capacity=2, metrics_port=0, shutdown_grace_period=0.2
    ) as server:
        yield server


async def test_capacity_leases_cancel_and_status(engine: EngineServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{engine.port}") as channel:
        stream = Stream(channel)
        hello = await stream.until(lambda m: m.HasField("hello"))
        assert (hello.hello.engine_id, hello.hello.capacity) == ("test-engine", 2)
        stream.execute("s1", SLOW)
        stream.execute("s2", SLOW)
        stream.execute("s3", SLOW)
        full = await stream.until(lambda m: len(m.rejected) > 0)
        assert (full.rejected[0].execution_id, full.rejected[0].reason) == (
            "s3",
            pb.ExecutionRejected.REASON_FULL,
        )
        stream.execute("s1", SLOW, lease=1)
        dup = await stream.until(lambda m: len(m.rejected) > 0)
        assert dup.rejected[0].reason == pb.ExecutionRejected.REASON_DUPLICATE
        status = await pb_grpc.EngineStub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)
        assert (status.in_flight, status.capacity, status.streams) == (2, 2, 1)

        stream.outbox.put_nowait(pb.ToEngine(cancel=[pb.Cancel(execution_id="s1", reason="x")]))
        done = await stream.until(lambda m: len(m.finished) > 0)
        result = json.loads(done.finished[0].result_json)
        assert (result["id"], result["status"]) == ("s1", "cancelled")
        assert done.load.in_flight == 1
        stream.call.cancel()


async def test_checkpoint_is_replayed_not_rerun(engine: EngineServer) -> None:
    doc = {
        "name": "two",
        "version": "1.0.0",
        "nodes": [
            {"id": "a", "lua": "return {x = 41}"},
            {"id": "b", "depends_on": ["a"], "lua": "return {y = outputs.a.x + 1}"},
        ],
    }
    done_a = pb.NodeResult(
        node="a",
        visit=1,
        attempt=1,
        status=pb.NODE_STATUS_COMPLETED,
        output_json=b'{"x": 100}',
        outcome="SUCCESS",
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{engine.port}") as channel:
        stream = Stream(channel)
        stream.execute("c1", doc, lease=2, checkpoint=[done_a])
        done = await stream.until(lambda m: len(m.finished) > 0)
        result = json.loads(done.finished[0].result_json)
        assert result["nodes"]["b"]["output"] == {"y": 101}  # a's checkpointed output, not 41
        assert [r.node for r in done.node_results] in (["b"], [])
        stream.call.cancel()


async def test_health_reflection_and_metrics(engine: EngineServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{engine.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="weir.engine.v1.Engine"), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stream = Stream(channel)
        stream.execute("f1", FAST)
        await stream.until(lambda m: len(m.finished) > 0)
        stream.call.cancel()
    url = f"http://127.0.0.1:{engine.metrics_port}/metrics"
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("weir_engine_capacity", ())] == 2
    assert samples[("weir_engine_executions_total", (("status", "completed"),))] == 1
    assert all(name.startswith(("weir_", "python_", "process_")) for name, _ in samples)


async def test_drain_hands_back_what_does_not_finish_in_time(engine: EngineServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{engine.port}") as channel:
        stream = Stream(channel)
        stream.execute("s1", SLOW)
        await stream.until(lambda m: m.load.in_flight == 1)
        drain = asyncio.create_task(engine.drain())
        draining = await stream.until(lambda m: m.load.draining)
        assert draining.load.draining
        stream.execute("late", FAST)
        back = await stream.until(lambda m: len(m.handed_back) > 0 or len(m.rejected) > 0)
        if back.rejected:
            assert back.rejected[0].reason == pb.ExecutionRejected.REASON_DRAINING
            back = await stream.until(lambda m: len(m.handed_back) > 0)
        assert back.handed_back[0].execution_id == "s1"
        await asyncio.wait_for(drain, 5)
