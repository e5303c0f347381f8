"""An engine's ``/metrics`` port, scraped over HTTP after node attempts that succeed, fail and
retry, and parsed with prometheus-client's own parser.

Durations are checked for what they measured, not only for being there: a 20 ms ``sleep`` node
must be recorded as about that long, and the Lua attempts as taking some time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from weir.proto.v1 import engine_pb2 as pb
from weir.proto.v1 import engine_pb2_grpc as pb_grpc

from engine.server import codec
from engine.server.process import EngineServer
from tests.support.engines import running_engine

FLAKY = {
    "name": "flaky",
    "version": "1.0.0",
    "nodes": [
        {"id": "nap", "sleep": "20ms"},
        {"id": "a", "depends_on": ["nap"], "noop": {}},
        {
            "id": "boom",
            "depends_on": ["a"],
            "lua": "error('no luck')",
            "retry": {"attempts": 3, "backoff": "10ms"},
        },
    ],
}


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine("metrics-engine", capacity=2, metrics_port=0) as server:
        yield server


async def _run(engine: EngineServer, execution_id: str, doc: dict[str, Any]) -> None:
    data, digest = codec.canonical_definition(doc)
    first = pb.ToEngine(
        execute=[
            pb.Execute(
                execution_id=execution_id, lease=1, definition_digest=digest, definition_json=data
            )
        ]
    )
    outbox: asyncio.Queue[pb.ToEngine] = asyncio.Queue()
    outbox.put_nowait(first)

    async def requests() -> AsyncIterator[pb.ToEngine]:
        while True:
            yield await outbox.get()

    async with grpc.aio.insecure_channel(f"127.0.0.1:{engine.port}") as channel:
        call = pb_grpc.EngineStub(channel).Connect(requests())
        async with asyncio.timeout(10):
            while True:
                message = await call.read()
                assert isinstance(message, pb.FromEngine)
                if message.finished:
                    break
        call.cancel()


async def test_node_attempts_are_timed_by_executor_and_retries_counted(
    engine: EngineServer,
) -> None:
    await _run(engine, "x1", FLAKY)
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"http://127.0.0.1:{engine.metrics_port}/metrics", timeout=5)
    reply.raise_for_status()
    families = list(text_string_to_metric_families(reply.text))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    assert all(f.name.startswith("weir_") for f in families), [f.name for f in families]
    lua_failed = (("executor", "lua"), ("status", "failed"))
    noop_ok = (("executor", "noop"), ("status", "completed"))
    sleep_ok = (("executor", "sleep"), ("status", "completed"))
    assert samples["weir_engine_node_duration_seconds_count", lua_failed] == 3
    assert samples["weir_engine_node_duration_seconds_count", noop_ok] == 1
    assert samples["weir_engine_node_duration_seconds_count", sleep_ok] == 1
    assert samples["weir_engine_node_duration_seconds_sum", lua_failed] > 0
    # a noop ends within the resolution of time.time() (0.24 microseconds today): it may be 0
    assert samples["weir_engine_node_duration_seconds_sum", noop_ok] >= 0
    # 20 ms, give or take the event loop's timer slack and the wall clock's adjustments
    assert 0.015 < samples["weir_engine_node_duration_seconds_sum", sleep_ok] < 5
    assert samples["weir_engine_execution_duration_seconds_count", ()] == 1
    assert samples["weir_engine_execution_duration_seconds_sum", ()] > 0.015  # the nap, at least
    assert samples["weir_engine_node_retries_total", (("executor", "lua"),)] == 2
    assert samples["weir_engine_node_results_total", (("status", "failed"),)] == 3
    assert samples["weir_engine_executions_total", (("status", "failed"),)] == 1
    assert not [labels for _, labels in samples if "x1" in dict(labels).values()]
