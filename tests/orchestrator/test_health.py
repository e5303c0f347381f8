"""Supervised background work, seen from outside: an ``OrchestratorServer`` on 127.0.0.1 whose
background loop fails turns ``/readyz`` 503 (saying which loop and why), gRPC health
NOT_SERVING, and shows in ``/metrics``; it keeps serving the API meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.server import OrchestratorServer
from orchestrator.settings import OrchestratorSettings
from tests.support.poll import eventually


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[OrchestratorServer]:
    server = OrchestratorServer(
        OrchestratorSettings(
            orchestrator_id="t",
            bind_address="127.0.0.1",
            grpc_port=0,
            http_port=0,
            store_url=f"sqlite:///{tmp_path / 'w.db'}",
            triggers_enabled=False,
        )
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


async def _health(server: OrchestratorServer) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    return int(reply.status)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_a_failed_background_loop_makes_the_orchestrator_unready_and_not_serving(
    server: OrchestratorServer,
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ok"}
        assert await _health(server) == health_pb2.HealthCheckResponse.SERVING

        async def broken_loop() -> None:
            raise RuntimeError("a bug in a loop")

        server.core.supervisor.loop("broken", broken_loop())
        await eventually(lambda: _not_serving(server), what="gRPC health to say NOT_SERVING")
        unready = await http.get("/readyz")
        assert unready.status_code == 503
        assert unready.json() == {"status": "broken failed: RuntimeError: a bug in a loop"}
        s = _samples((await http.get("/metrics")).text)
        assert s["weir_orchestrator_healthy", ()] == 0
        assert s["weir_background_failures_total", (("task", "broken"),)] == 1
        assert (await http.get("/api/v1/workflows")).status_code == 200  # still serving


async def _not_serving(server: OrchestratorServer) -> bool:
    return await _health(server) == health_pb2.HealthCheckResponse.NOT_SERVING
