"""The orchestrator's ring follows Kubernetes: engines appear, become unready, disappear.

Real engines (gRPC servers in this process), the real ``kubernetes`` client against the fake API
server, and the orchestrator core placing executions on whatever the ring holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.server.process import EngineServer
from orchestrator.discovery.kubernetes import KubernetesDiscovery
from orchestrator.ring import make_balancer
from orchestrator.wiring import Orchestrator
from tests.orchestrator.discovery.fake_k8s import FakeKubernetes
from tests.orchestrator.discovery.manifests import endpoint, endpoint_slice, write_kubeconfig
from tests.support.engines import running_engine
from tests.support.poll import eventually

SERVICE = "weir-engine"
FLOW = "name: f\nversion: 1.0.0\nnodes:\n  - {id: a, lua: 'return {x = 1}'}\n"


@pytest.fixture
async def engines() -> AsyncIterator[dict[str, EngineServer]]:
    async with contextlib.AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(running_engine(name, capacity=5))
            for name in ("pod-a", "pod-b", "pod-c")
        }


def publish(api: FakeKubernetes, server: EngineServer, *, ready: bool = True) -> None:
    """One slice per engine: each listens on its own loopback port."""
    api.apply(
        "endpointslices",
        endpoint_slice(
            f"{SERVICE}-{server.engine_id}",
            SERVICE,
            [endpoint("127.0.0.1", pod=server.engine_id, ready=ready)],
            ports=[("grpc", server.port)],
        ),
    )


def ready(core: Orchestrator) -> set[str]:
    return {e.id for e in core.engine_summaries() if e.state == "ready"}


async def test_the_ring_follows_endpoint_slices(
    api: FakeKubernetes, engines: dict[str, EngineServer], tmp_path: Path
) -> None:
    discovery = KubernetesDiscovery(
        "default",
        mode="endpointslices",
        service_name=SERVICE,
        label_selector="",
        port=50051,
        in_cluster=False,
        kubeconfig=str(write_kubeconfig(tmp_path / "kubeconfig", api.url)),
        watch_timeout=30.0,
        request_timeout=2.0,
        backoff=(0.05, 0.4),
    )
    a, b, c = engines["pod-a"], engines["pod-b"], engines["pod-c"]
    publish(api, a)
    publish(api, b)
    core = Orchestrator(
        orchestrator_id="o",
        discovery=discovery,
        balancer=make_balancer("consistent-hash"),
        health_interval=0.2,
    )
    async with core:
        await core.workflows.register(FLOW)
        await eventually(lambda: ready(core) == {"pod-a", "pod-b"})

        publish(api, c)  # appears
        await eventually(lambda: ready(core) == {"pod-a", "pod-b", "pod-c"})
        publish(api, b, ready=False)  # becomes unready: leaves discovery and the ring
        await eventually(lambda: ready(core) == {"pod-a", "pod-c"})
        records = [await core.executions.start("f") for _ in range(20)]
        for record in records:
            await asyncio.wait_for(core.executions.wait(record.id), 10)
        assert {r.placement.engine_name for r in records} == {"pod-a", "pod-c"}

        api.delete("endpointslices", f"{SERVICE}-pod-a")  # disappears
        await eventually(lambda: ready(core) == {"pod-c"})
        publish(api, b)  # ready again: rejoins
        await eventually(lambda: ready(core) == {"pod-b", "pod-c"})
        records = [await core.executions.start("f") for _ in range(20)]
        for record in records:
            await asyncio.wait_for(core.executions.wait(record.id), 10)
        assert {r.placement.engine_name for r in records} == {"pod-b", "pod-c"}
        assert all(r.status == "completed" for r in records)
