"""``map`` through the cluster (real orchestrator and engine processes on 127.0.0.1): the same
result as ``weir run``, concurrency held across processes, and failover or an orchestrator
restart re-running only the items that had not finished (counted by a local HTTP service)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from engine.definition import loads
from engine.local import run_workflow
from orchestrator.api.convert import execution_from_pb
from tests.integration.cluster import Cluster
from tests.integration.test_tasks import WORKER_APP
from tests.support.hits import Hits, hits_server
from tests.support.poll import eventually

pytestmark = pytest.mark.integration


def slow_map(items: int, concurrency: int, hold: float) -> str:
    """``list`` makes ``items`` numbers; ``each`` posts one side effect per item, ``hold``
    seconds each, ``concurrency`` at once; ``sum`` adds up what the items returned."""
    return json.dumps(
        {
            "name": "slow-map",
            "version": "1.0.0",
            "inputs": {"url": {"type": "string"}},
            "nodes": [
                {
                    "id": "list",
                    "lua": f"local t = {{}} for i = 1, {items} do t[i] = i end; return t",
                },
                {
                    "id": "each",
                    "depends_on": ["list"],
                    "map": {"items": "${outputs.list}", "concurrency": concurrency},
                    "http": {
                        "url": "${inputs.url}",
                        "json": {
                            "execution": "${execution.id}",
                            "node": "each/${index}",
                            "hold": hold,
                        },
                    },
                },
                {
                    "id": "sum",
                    "depends_on": ["each"],
                    "lua": "local n = 0 for _, r in pairs(outputs.each) do "
                    "if r.ok then n = n + 1 end end return n",
                },
            ],
            "outputs": {"ok": "${outputs.sum}"},
        }
    )


MIXED = """
name: mixed-map
version: 1.0.0
inputs:
  words: {type: array, default: [alpha, beta, gamma, delta, epsilon]}
nodes:
  - id: lengths
    map: {items: "${inputs.words}", concurrency: 2, tolerate: "20%"}
    args: {word: "${item}"}
    lua: |
      if args.word == "gamma" then error("no gamma") end
      return {word = args.word, n = #args.word, at = index}
  - id: empty
    map: {items: "${{}}"}
    lua: return 1
  - id: total
    depends_on: [lengths, empty]
    lua: |
      local n = 0
      for _, r in pairs(outputs.lengths) do n = n + r.n end
      return {n = n, empty = #outputs.empty}
outputs:
  total: ${outputs.total}
"""


def items_view(result: dict[str, Any], node: str) -> list[tuple[Any, ...]]:
    return [
        (i["index"], i["status"], i["attempts"], i["output"], i["error"])
        for i in result["nodes"][node]["items"]
    ]


async def test_the_cluster_gives_the_same_result_and_items_as_weir_run(cluster: Cluster) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        await client.register(MIXED)
        local = (await run_workflow(loads(MIXED), {})).to_json()
        started = await client.start("mixed-map", {})
        remote = execution_from_pb(await client.wait(started.id))
    assert remote["status"] == local["status"] == "completed", remote["error"]
    assert remote["outputs"] == local["outputs"] == {"total": {"n": 21, "empty": 0}}
    assert items_view(remote, "lengths") == items_view(local, "lengths")
    assert remote["nodes"]["lengths"]["output"] == local["nodes"]["lengths"]["output"]
    assert remote["nodes"]["lengths"]["output"][2] is None
    assert remote["nodes"]["empty"]["output"] == [] and remote["nodes"]["empty"]["items"] == []


async def test_concurrency_holds_through_the_cluster(cluster: Cluster) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    with hits_server() as hits:
        async with cluster.client() as client:
            await cluster.wait_ready(client, 1)
            await client.register(slow_map(items=15, concurrency=3, hold=0.05))
            started = await client.start("slow-map", {"url": hits.url})
            result = execution_from_pb(await client.wait(started.id))
        assert result["status"] == "completed", result["error"]
        assert result["outputs"] == {"ok": 15}
        assert hits.of(started.id) == {f"each/{i}": 1 for i in range(15)}
        assert hits.peak == 3


async def _finished_items(client: Any, execution_id: str) -> set[int]:
    """The items the orchestrator holds as completed (durable in its journal)."""
    result = execution_from_pb(await client.execution(execution_id))
    items = result["nodes"]["each"].get("items") or []
    return {i["index"] for i in items if i["status"] == "completed"}


def _twice(hits: Hits, execution_id: str) -> dict[str, int]:
    return {node: n for node, n in hits.of(execution_id).items() if n != 1}


async def test_sigkill_the_engine_mid_map_reruns_only_the_unfinished_items(
    cluster: Cluster,
) -> None:
    cluster.start_engine("e1")
    cluster.start_engine("e2")
    cluster.start_orchestrator()
    items, concurrency = 30, 4
    with hits_server() as hits:
        async with cluster.client() as client:
            await cluster.wait_ready(client, 2)
            await client.register(slow_map(items=items, concurrency=concurrency, hold=0.15))
            started = await client.start("slow-map", {"url": hits.url})
            await eventually(
                lambda: len(hits.of(started.id)) >= 10, within=20, what="ten items posted"
            )
            victim = (await client.execution(started.id)).engine_id
            finished = await _finished_items(client, started.id)
            cluster.engines[victim].signal(signal.SIGKILL)
            result = execution_from_pb(await client.wait(started.id))
        assert result["status"] == "completed", result["error"]
        assert result["outputs"] == {"ok": items}
        assert result["placements"] == 2 and result["engine"] != victim
        counts = hits.of(started.id)
        assert set(counts) == {f"each/{i}" for i in range(items)}
        assert len(finished) >= 4, "nothing had finished before the kill"
        # Items the orchestrator held as finished never ran again; only those in flight at the
        # kill (at most `concurrency`, plus the ones the engine finished but had not reported).
        assert all(counts[f"each/{i}"] == 1 for i in finished), _twice(hits, started.id)
        assert len(_twice(hits, started.id)) <= concurrency + 2, _twice(hits, started.id)
        assert max(counts.values()) <= 2


async def test_kill_9_the_orchestrator_mid_map_no_item_runs_twice(cluster: Cluster) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    items = 24
    with hits_server() as hits:
        async with cluster.client() as client:
            await cluster.wait_ready(client, 1)
            await client.register(slow_map(items=items, concurrency=4, hold=0.1))
            started = await client.start("slow-map", {"url": hits.url})
            await eventually(
                lambda: len(hits.of(started.id)) >= 8, within=20, what="eight items posted"
            )
        assert cluster.orchestrator is not None
        cluster.orchestrator.signal(signal.SIGKILL)
        assert cluster.orchestrator.wait(10) == -signal.SIGKILL
        cluster.start_orchestrator()
        async with cluster.client() as client:
            result = execution_from_pb(await client.wait(started.id))
        assert result["status"] == "completed", result["error"]
        assert result["placements"] == 1  # re-attached, not re-placed
        assert hits.of(started.id) == {f"each/{i}": 1 for i in range(items)}
        assert [i["status"] for i in result["nodes"]["each"]["items"]] == ["completed"] * items


async def test_task_items_are_done_by_a_worker_each_with_its_own_task(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "work.log"
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    flow = json.dumps(
        {
            "name": "task-map",
            "version": "1.0.0",
            "nodes": [
                {
                    "id": "each",
                    "map": {"items": [3, 1, 4, 1, 5], "concurrency": 2},
                    "task": "work",
                    "args": {"n": "${item}", "delay": 0.05},
                }
            ],
            "outputs": {"doubled": "${outputs.each}"},
        }
    )
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        cluster.start_process(
            "w1",
            ["worker", str(WORKER_APP), "--id", "w1", "--slots", "8"],
            {"WEIR_SERVER": cluster.address, "WORK_LOG": str(log), "SLOTS": "8"},
        )
        await eventually(lambda: _joined(client), what="the worker joined", within=20)
        await client.register(flow)
        started = await client.start("task-map", {})
        result = execution_from_pb(await client.wait(started.id))
    assert result["status"] == "completed", result["error"]
    assert result["outputs"] == {"doubled": [{"n": 6}, {"n": 2}, {"n": 8}, {"n": 2}, {"n": 10}]}
    starts = [json.loads(line) for line in log.read_text().splitlines() if '"start"' in line]
    assert len(starts) == 5 == len({s["token"] for s in starts})  # one task per item
    keys = {s["key"] for s in starts}
    assert keys == {f"{started.id}/each/1/{i}" for i in range(5)}  # an idempotency key per item
    assert max(s["running"] for s in starts) <= 2  # the map's concurrency, not the worker's slots


async def _joined(client: Any) -> bool:
    return len(await client.workers()) >= 1
