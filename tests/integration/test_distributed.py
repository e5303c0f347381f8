"""Orchestrator + engines as real processes on 127.0.0.1: results, failover, drain, bad input."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from weir import Client
from weir.proto.v1 import engine_pb2, engine_pb2_grpc

from engine.definition import load_file
from engine.local import LocalWorkflows, run_workflow
from engine.testing import scripted_server
from orchestrator.api.convert import execution_from_pb
from orchestrator.errors import RpcError
from tests.integration.cluster import ROOT, Cluster
from tests.integration.workloads import hits_server, long_workflow
from tests.support.poll import eventually

pytestmark = pytest.mark.integration
EXAMPLES = ROOT / "examples"


@pytest.fixture
async def three(cluster: Cluster) -> AsyncIterator[tuple[Cluster, Client]]:
    for name in ("e1", "e2", "e3"):
        cluster.start_engine(name)
    cluster.start_orchestrator()
    async with cluster.client() as client:
        await cluster.wait_ready(client, 3)
        yield cluster, client


def ack(state: str) -> tuple[int, dict[str, Any]]:
    return 200, {"ackState": state, "done": True}


APPROVAL = {
    "/ci": [ack("FAIL"), ack("SUCCESS")],
    "/approval": [ack("NEXT")],
    "/approval2": [ack("FAIL"), ack("AGREE")],
    "/deploy": [ack("SUCCESS")],
    "/notify": [ack("SUCCESS")],
}

CASES = [
    ("etl.yaml", {"rows": 3}),
    ("arithmetic.yaml", {"a": 12, "b": 4}),
    ("arithmetic.yaml", {"a": 12, "b": 0}),
    ("order.yaml", {}),
    ("order.yaml", {"in_stock": False}),
    ("approval-flow.yaml", {"actions_url": None}),
    ("order-batch.yaml", {}),  # two order-processing children, each placed on its own
    ("order-batch.yaml", {"second_in_stock": False}),
    ("orders-map.yaml", {}),  # a sub-workflow per item of a map
]


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": result["status"],
        "outputs": result["outputs"],
        "error": result["error"],
        "path": sorted(result["path"]),
        "nodes": {
            k: (v["status"], v["outcome"], v["visits"], v["attempts"], v["output"])
            for k, v in result["nodes"].items()
        },
    }


async def test_every_example_gives_the_same_result_as_weir_run(
    three: tuple[Cluster, Client],
) -> None:
    _, client = three
    for path in sorted(EXAMPLES.glob("*.yaml")):
        response = await client.register(path.read_text())
        assert response.created
    used = set()
    workflows = LocalWorkflows.from_directory(EXAMPLES)
    for name, inputs in CASES:
        used.add(name)
        definition = load_file(EXAMPLES / name)
        with scripted_server(APPROVAL) as local_actions, scripted_server(APPROVAL) as actions:
            if "actions_url" in inputs:
                inputs = {"actions_url": local_actions.url}
            local = (await run_workflow(definition, inputs, workflows=workflows)).to_json()
            if "actions_url" in inputs:
                inputs = {"actions_url": actions.url}
            started = await client.start(definition.name, inputs)
            remote = execution_from_pb(await client.wait(started.id))
        assert remote["status"] in ("completed", "failed"), remote
        assert comparable(remote) == comparable(local), name
        assert remote["engine"] in {"e1", "e2", "e3"}
    with_workers = {"arithmetic-workers.yaml", "user-onboarding.yaml"}  # test_tasks.py runs them
    with_signals = {"expense-approval.yaml"}  # weir run refuses it; test_waits.py runs it
    assert used == {p.name for p in EXAMPLES.glob("*.yaml")} - with_workers - with_signals, (
        "an example has no case"
    )


# --- failover --------------------------------------------------------------------------------


async def test_sigkill_an_engine_everything_completes_and_no_finished_node_runs_twice(
    three: tuple[Cluster, Client],
) -> None:
    cluster, client = three
    await client.register(long_workflow(steps=5, pause="600ms"))
    with hits_server() as hits:
        started = [await client.start("long", {"url": hits.url}) for _ in range(9)]

        async def placed() -> set[str]:
            engines = {(await client.execution(s.id)).engine_id for s in started}
            return engines if "" not in engines else set()

        engines = await eventually(placed, within=10, what="every execution placed")
        victim = sorted(engines)[0]
        on_victim = [s.id for s in started if (await client.execution(s.id)).engine_id == victim]
        # Kill between side effects, after noting which nodes the orchestrator has as finished.
        await eventually(
            lambda: hits.quiet_for(0.1) and sum(hits.counts.values()) >= 18,
            within=20,
            what="a quiet moment after the second round of hits",
        )
        finished_before = {
            (s.id, node)
            for s in started
            for node, run in execution_from_pb(await client.execution(s.id))["nodes"].items()
            if run["status"] == "completed" and node.startswith("hit")
        }
        cluster.engines[victim].signal(signal.SIGKILL)
        results = [execution_from_pb(await client.wait(s.id)) for s in started]
    assert [r["status"] for r in results] == ["completed"] * 9, [r["error"] for r in results]
    assert on_victim
    for r in results:
        if r["id"] in on_victim:
            assert r["placements"] == 2 and r["engine"] != victim
    assert {key for key in finished_before if key[0] in on_victim}, "nothing to fail over"
    twice = {key: n for key, n in hits.counts.items() if key in finished_before and n != 1}
    assert not twice, f"finished nodes ran again: {twice}"
    # A node that was running when its engine died runs again: at least once, at most twice.
    assert len(hits.counts) == 9 * 5 and max(hits.counts.values()) <= 2


async def test_sigterm_drains_the_engine_and_nothing_fails(cluster: Cluster) -> None:
    cluster.start_engine("e1", shutdown_grace_period="30s")
    cluster.start_engine("e2", shutdown_grace_period="300ms")  # too short: hands work back
    cluster.start_orchestrator()
    async with cluster.client() as client:
        await cluster.wait_ready(client, 2)
        await client.register(long_workflow(steps=3, pause="500ms"))
        with hits_server() as hits:
            started = [await client.start("long", {"url": hits.url}) for _ in range(8)]
            await eventually(
                lambda: _all_placed(client, started), within=10, what="every execution placed"
            )
            cluster.engines["e1"].signal(signal.SIGTERM)
            cluster.engines["e2"].signal(signal.SIGTERM)
            assert cluster.engines["e2"].wait(15) == 0
            cluster.start_engine("e3-late", port=cluster.engine_ports["e2"])  # somewhere to go
            assert cluster.engines["e1"].wait(30) == 0
            results = [execution_from_pb(await client.wait(s.id)) for s in started]
    assert [r["status"] for r in results] == ["completed"] * 8, [r["error"] for r in results]
    assert "handing back" in cluster.engines["e2"].output()
    assert "draining" in cluster.engines["e1"].output()


async def _all_placed(client: Client, started: list[Any]) -> bool:
    return all([(await client.execution(s.id)).engine_id for s in started])


# --- bad input -------------------------------------------------------------------------------


async def test_bad_requests_get_clear_statuses(three: tuple[Cluster, Client]) -> None:
    _, client = three
    with pytest.raises(RpcError) as err:
        await client.start("nope", {})
    assert err.value.code == grpc.StatusCode.NOT_FOUND and "'nope'" in err.value.details
    await client.register((EXAMPLES / "arithmetic.yaml").read_text())
    with pytest.raises(RpcError) as err:
        await client.start("arithmetic", {"a": "x", "b": 1, "c": 2})
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs.a" in err.value.details and "inputs.c" in err.value.details
    with pytest.raises(RpcError) as err:
        await client.register("name: bad\nversion: 1.0.0\nnodes: [{id: a, depends_on: [b]}]")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "nodes[0]" in err.value.details
    with pytest.raises(RpcError) as err:
        await client.execution("no-such-id")
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    changed = (EXAMPLES / "arithmetic.yaml").read_text().replace("Four operations", "Changed")
    with pytest.raises(RpcError) as err:
        await client.register(changed)
    assert err.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert (await client.register((EXAMPLES / "arithmetic.yaml").read_text())).created is False
    assert len(await client.executions()) == 0  # nothing half-started


async def test_engine_unreachable_at_start_then_it_comes_up(cluster: Cluster) -> None:
    port = cluster.reserve_engine("late")
    cluster.start_orchestrator()
    async with cluster.client() as client:
        await client.register((EXAMPLES / "arithmetic.yaml").read_text())
        started = await client.start("arithmetic", {"a": 1, "b": 2})
        assert execution_from_pb(started)["status"] == "pending"
        (engine,) = await client.engines()
        assert not engine.healthy
        cluster.start_engine("late", port=port)
        result = execution_from_pb(await client.wait(started.id))
    assert result["status"] == "completed" and result["outputs"]["sum"] == 3


async def test_all_engines_full_executions_wait_in_the_queue(cluster: Cluster) -> None:
    cluster.start_engine("small", capacity=1)
    cluster.start_orchestrator()
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        await client.register(long_workflow(steps=1, pause="300ms"))
        with hits_server() as hits:
            started = [await client.start("long", {"url": hits.url}) for _ in range(4)]
            statuses = [execution_from_pb(await client.execution(s.id))["status"] for s in started]
            assert statuses.count("pending") >= 2
            results = [execution_from_pb(await client.wait(s.id)) for s in started]
    assert [r["status"] for r in results] == ["completed"] * 4


async def test_a_malformed_stream_message_loses_nothing(three: tuple[Cluster, Client]) -> None:
    cluster, client = three
    port = cluster.engine_ports["e1"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        # Bytes that are not a ToEngine message: the engine ends that stream, nothing else.
        raw = channel.stream_stream(
            "/weir.engine.v1.Engine/Connect",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        call = raw(iter([b"\xff\xff\xff\xff"]))
        with pytest.raises(grpc.aio.AioRpcError):
            async for _ in call:
                pass
        # A well-formed message with bad content: refused with a reason, the stream stays up.
        stub = engine_pb2_grpc.EngineStub(channel)

        async def requests() -> AsyncIterator[engine_pb2.ToEngine]:
            yield engine_pb2.ToEngine(
                execute=[
                    engine_pb2.Execute(
                        execution_id="x",
                        lease=1,
                        definition_digest="d",
                        definition_json=b"{not json",
                    )
                ]
            )
            await asyncio.sleep(5)  # the scenario: the request side stays open, not half-closed

        stream = stub.Connect(requests())
        hello = await stream.read()
        assert hello.hello.engine_id == "e1"
        reply = await stream.read()
        assert reply.rejected[0].reason == engine_pb2.ExecutionRejected.REASON_INVALID
        assert "definition_digest" in reply.rejected[0].message
        stream.cancel()
    await client.register((EXAMPLES / "etl.yaml").read_text())
    started = [await client.start("etl", {"rows": 2}) for _ in range(6)]
    results = [execution_from_pb(await client.wait(s.id)) for s in started]
    assert {r["status"] for r in results} == {"completed"}
