"""Sub-workflows through the orchestrator, with real processes: chains three deep across three
engines, failure flowing up, cancellation flowing down, and the depth limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from weir import Client

from orchestrator.api.convert import execution_from_pb
from tests.integration.cluster import Cluster
from tests.support.poll import eventually

pytestmark = pytest.mark.integration


def _workflow(name: str, version: str, nodes: list[dict[str, Any]], **extra: Any) -> str:
    return json.dumps({"name": name, "version": version, "nodes": nodes, **extra})


LEAF = _workflow(
    "leaf",
    "1.2.0",
    [
        {"id": "pause", "sleep": "30s", "when": "inputs.slow"},
        {
            "id": "work",
            "lua": "if inputs.fail then error('leaf refused ' .. inputs.n) end "
            "return {n = inputs.n * 10}",
        },
    ],
    inputs={
        "n": {"type": "integer"},
        "fail": {"type": "boolean", "default": False},
        "slow": {"type": "boolean", "default": False},
    },
    outputs={"n": "${outputs.work.n}"},
)
MIDDLE = _workflow(
    "middle",
    "1.0.0",
    [
        {
            "id": "call-leaf",
            "workflow": {"name": "leaf", "version": "^1.1"},
            "args": {"n": "${inputs.n + 1}", "fail": "${inputs.fail}", "slow": "${inputs.slow}"},
        }
    ],
    inputs={
        "n": {"type": "integer"},
        "fail": {"type": "boolean", "default": False},
        "slow": {"type": "boolean", "default": False},
    },
    outputs={"n": "${outputs['call-leaf'].n}"},
)
TOP = _workflow(
    "top",
    "1.0.0",
    [
        {
            "id": "call-middle",
            "workflow": {"name": "middle", "version": "~1.0.0"},
            "args": {"n": "${inputs.n}", "fail": "${inputs.fail}", "slow": "${inputs.slow}"},
        }
    ],
    inputs={
        "n": {"type": "integer"},
        "fail": {"type": "boolean", "default": False},
        "slow": {"type": "boolean", "default": False},
    },
    outputs={"n": "${outputs['call-middle'].n}"},
)


@pytest.fixture
async def chain(cluster: Cluster) -> AsyncIterator[tuple[Cluster, Client]]:
    # Capacity 1: a parent waiting for its child holds its engine, so each level of the chain
    # has to run on another engine.
    for name in ("e1", "e2", "e3"):
        cluster.start_engine(name, capacity=1)
    cluster.start_orchestrator()
    async with cluster.client() as client:
        await cluster.wait_ready(client, 3)
        for source in (TOP, MIDDLE, LEAF):  # parents first: dependencies resolve at run time
            await client.register(source)
        yield cluster, client


async def _family(client: Client, top_id: str) -> list[dict[str, Any]]:
    """The top execution, its child and its grandchild, each as a result object."""
    family = [execution_from_pb(await client.execution(top_id))]
    while family[-1].get("children"):
        family.append(execution_from_pb(await client.execution(family[-1]["children"][0]["id"])))
    return family


async def test_a_chain_three_deep_runs_across_three_engines(
    chain: tuple[Cluster, Client],
) -> None:
    _, client = chain
    top = await client.wait((await client.start("top", {"n": 4})).id)
    result = execution_from_pb(top)
    assert result["status"] == "completed", result["error"]
    assert result["outputs"] == {"n": 50}
    family = await _family(client, top.id)
    assert [f["workflow"] for f in family] == ["top", "middle", "leaf"]
    assert [f["status"] for f in family] == ["completed"] * 3
    assert len({f["engine"] for f in family}) == 3, [f["engine"] for f in family]
    assert family[1]["parent"] == {"execution": top.id, "node": "call-middle"}
    assert family[2]["parent"] == {"execution": family[1]["id"], "node": "call-leaf"}
    assert family[2]["version"] == "1.2.0"
    children = await client.executions(parent=top.id)
    assert [(c.id, c.workflow, c.parent_execution_id) for c in children] == [
        (family[1]["id"], "middle", top.id)
    ]


async def test_a_failing_grandchild_fails_its_parents_with_its_error(
    chain: tuple[Cluster, Client],
) -> None:
    _, client = chain
    top = execution_from_pb(
        await client.wait((await client.start("top", {"n": 1, "fail": True})).id)
    )
    assert top["status"] == "failed"
    assert top["error"]["node"] == "call-middle"
    assert "leaf refused 2" in top["error"]["message"]
    family = await _family(client, top["id"])
    assert [f["status"] for f in family] == ["failed"] * 3


async def test_cancelling_the_top_cancels_its_child_and_grandchild(
    chain: tuple[Cluster, Client],
) -> None:
    _, client = chain
    started = await client.start("top", {"n": 1, "slow": True})

    async def grandchild_running() -> str:
        family = await _family(client, started.id)
        return family[2]["id"] if len(family) == 3 and family[2]["status"] == "running" else ""

    leaf_id = await eventually(grandchild_running, within=20, what="the grandchild to run")
    await client.cancel(started.id, "changed my mind")
    top = execution_from_pb(await client.wait(started.id))
    leaf = execution_from_pb(await client.wait(leaf_id))
    assert top["status"] == "cancelled"
    assert leaf["status"] == "cancelled"
    assert "changed my mind" in leaf["error"]["message"]
    family = await _family(client, started.id)
    assert [f["status"] for f in family] == ["cancelled"] * 3


async def test_recursion_deeper_than_the_limit_fails_clearly(cluster: Cluster) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator(max_subworkflow_depth=3)
    forever = _workflow(
        "forever", "1.0.0", [{"id": "again", "workflow": {"name": "forever", "version": "*"}}]
    )
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        await client.register(forever)
        result = execution_from_pb(await client.wait((await client.start("forever")).id))
    assert result["status"] == "failed"
    assert "nested deeper than 3 levels" in result["error"]["message"]
    assert "MAX_SUBWORKFLOW_DEPTH" in result["error"]["message"]
