"""Retries in one process: an ``OrchestratorServer`` (SQLite in tmp_path) and a real engine, over
gRPC (``weir.Client.retry``), around restarts of the orchestrator.

The original's journal comes from the store when the original is no longer in memory; a retry
that was accepted but not placed yet shows what it reuses, survives a restart with its reused
records, and keeps them when it is cancelled; a failed mapped node runs only its failed and
unfinished items again. ``tests/integration/test_retry.py`` runs retries
through real processes and the CLI.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from weir import Client

from engine.server.process import EngineServer
from orchestrator.api.convert import execution_from_pb
from orchestrator.errors import RpcError
from orchestrator.server import OrchestratorServer
from orchestrator.settings import OrchestratorSettings
from tests.integration.test_retry import PIPELINE
from tests.support.engines import running_engine
from tests.support.hits import Hits, hits_server
from tests.support.net import free_port
from tests.support.poll import eventually


@pytest.fixture
def hits() -> Iterator[Hits]:
    with hits_server() as h:
        yield h


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine(capacity=10) as server:
        yield server


def _settings(tmp_path: Path, engines: str) -> OrchestratorSettings:
    return OrchestratorSettings(
        orchestrator_id="test",
        bind_address="127.0.0.1",
        grpc_port=0,
        http_port=0,
        engines=engines,
        store_url=f"sqlite:///{tmp_path / 'weir.db'}",
        engine_health_check_interval=0.2,
        reattach_timeout=0.5,
    )


class Orchestrator:
    """Starts and restarts an orchestrator on one store; ``client`` talks to the current one."""

    def __init__(self, tmp_path: Path, engines: str) -> None:
        self.settings = _settings(tmp_path, engines)
        self.server: OrchestratorServer | None = None
        self.client: Client | None = None

    async def start(self) -> Client:
        await self.stop()
        self.server = OrchestratorServer(self.settings)
        await self.server.start()
        self.client = Client(f"127.0.0.1:{self.server.port}", timeout=20)
        return self.client

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
        if self.server is not None:
            await self.server.stop(grace=0.5)
            self.server = None


@pytest.fixture
async def orchestrator(engine: EngineServer, tmp_path: Path) -> AsyncIterator[Orchestrator]:
    o = Orchestrator(tmp_path, f"127.0.0.1:{engine.port}")
    try:
        yield o
    finally:
        await o.stop()


async def _failed_pipeline(client: Client, hits: Hits) -> tuple[str, dict[str, Any]]:
    """A pipeline run whose last step failed: (its run key, its result)."""
    await client.register(PIPELINE)
    await eventually(
        lambda: _ready(client), within=20, what="the engine to be ready", interval=0.05
    )
    run = str(uuid.uuid4())
    started = await client.start("pipeline", {"run": run, "url": hits.url})
    result = execution_from_pb(await client.wait(started.id))
    assert result["status"] == "failed" and result["error"]["node"] == "load", result
    return run, result


async def _ready(client: Client) -> bool:
    return any(e.healthy for e in await client.engines())


async def test_a_retry_after_a_restart_reads_the_original_journal_from_the_store(
    orchestrator: Orchestrator, hits: Hits
) -> None:
    client = await orchestrator.start()
    run, original = await _failed_pipeline(client, hits)
    client = await orchestrator.start()  # the original is now only in the store
    await eventually(lambda: _ready(client), within=20, what="the engine", interval=0.05)
    retry = await client.retry(original["id"])
    assert retry.retry_of == original["id"]
    done = execution_from_pb(await client.wait(retry.id))
    assert done["status"] == "completed", done
    assert hits.of(run) == {"extract": 1, "transform": 1, "load": 2}
    reused = {n: node.get("reused_from") for n, node in done["nodes"].items()}
    assert reused == {"extract": original["id"], "transform": original["id"], "load": None}
    again = execution_from_pb(await client.execution(original["id"]))
    assert again["retried_by"] == retry.id

    with pytest.raises(RpcError) as refused:
        await client.retry(original["id"])
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert f"already retried by execution {retry.id}" in refused.value.details
    with pytest.raises(RpcError) as unknown:
        await client.retry(retry.id, from_node="nope")
    assert unknown.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "has no node 'nope'" in unknown.value.details


async def test_a_retry_not_yet_placed_shows_what_it_reuses_across_a_restart_and_a_cancel(
    engine: EngineServer, tmp_path: Path, hits: Hits
) -> None:
    placed = Orchestrator(tmp_path, f"127.0.0.1:{engine.port}")
    try:
        client = await placed.start()
        _, original = await _failed_pipeline(client, hits)
    finally:
        await placed.stop()
    # The same store with an engine that is never there: the retry stays queued.
    idle = Orchestrator(tmp_path, f"127.0.0.1:{free_port()}")
    try:
        client = await idle.start()
        retry = execution_from_pb(await client.retry(original["id"]))
        assert retry["status"] == "pending" and retry["retry_of"] == original["id"]
        reused = {n: node.get("reused_from") for n, node in retry["nodes"].items()}
        assert reused == {"extract": original["id"], "transform": original["id"], "load": None}
        assert retry["nodes"]["extract"]["status"] == "completed"
        assert retry["nodes"]["extract"]["output"] == original["nodes"]["extract"]["output"]

        client = await idle.start()  # recovery reads the unplaced retry's reused records back
        again = execution_from_pb(await client.execution(retry["id"]))
        assert again["status"] == "pending"
        assert again["nodes"]["transform"]["status"] == "completed"
        assert again["nodes"]["transform"]["output"] == original["nodes"]["transform"]["output"]

        await client.cancel(retry["id"], "not now")
        ended = execution_from_pb(await client.wait(retry["id"]))
        assert ended["status"] == "cancelled" and ended["retry_of"] == original["id"]
        assert ended["nodes"]["extract"]["status"] == "completed"
        assert ended["nodes"]["load"]["status"] in ("cancelled", "skipped")
    finally:
        await idle.stop()


MAPPED = """
name: mapped
version: 1.0.0
inputs:
  run: {type: string}
  url: {type: string}
nodes:
  - id: list
    lua: return {0, 1, 2, 3, 4, 5, 6, 7}
  - id: each
    depends_on: [list]
    map: {items: "${outputs.list}", concurrency: 1}
    http:
      url: "${inputs.url}"
      json: {execution: "${inputs.run}", node: "each/${item}", fail_first: "${item == 3}"}
  - id: count
    depends_on: [each]
    lua: |
      local n = 0
      for _, r in pairs(outputs.each) do if r.ok then n = n + 1 end end
      return {n = n}
outputs:
  items: ${outputs.count.n}
"""


async def test_a_failed_mapped_node_runs_only_its_failed_and_unfinished_items_again(
    orchestrator: Orchestrator, hits: Hits
) -> None:
    client = await orchestrator.start()
    await client.register(MAPPED)
    await eventually(lambda: _ready(client), within=20, what="the engine", interval=0.05)
    run = str(uuid.uuid4())
    started = await client.start("mapped", {"run": run, "url": hits.url})
    original = execution_from_pb(await client.wait(started.id))
    assert original["status"] == "failed" and original["error"]["node"] == "each", original
    # one item at a time: 0, 1 and 2 completed, 3 failed, the rest never started
    assert hits.of(run) == {"each/0": 1, "each/1": 1, "each/2": 1, "each/3": 1}

    retry = await client.retry(started.id)
    done = execution_from_pb(await client.wait(retry.id))
    assert done["status"] == "completed" and done["outputs"] == {"items": 8}, done
    assert hits.of(run) == {f"each/{i}": 2 if i == 3 else 1 for i in range(8)}
    assert done["nodes"]["list"]["reused_from"] == started.id
    assert "reused_from" not in done["nodes"]["each"]
    assert [i["status"] for i in done["nodes"]["each"]["items"]] == ["completed"] * 8
