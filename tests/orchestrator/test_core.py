"""The service layer with a real store: idempotency, pinning and deprecation, deleting versions,
retention, sub-workflow links, and what survives closing the orchestrator and opening another
on the same SQLite file.

Engines are real gRPC servers in this process; the store is a real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.server.process import EngineServer
from engine.state.events import ExecutionStatus
from orchestrator.discovery.static import StaticDiscovery
from orchestrator.errors import AlreadyExists, FailedPrecondition, NotFound
from orchestrator.ring import make_balancer
from orchestrator.store import open_store
from orchestrator.wiring import Orchestrator
from tests.support.engines import running_engine


def _workflow(name: str, version: str, nodes: list[dict[str, Any]], **extra: Any) -> str:
    return json.dumps({"name": name, "version": version, "nodes": nodes, **extra})


ADD = _workflow(
    "add",
    "1.0.0",
    [{"id": "sum", "lua": "return {n = inputs.a + inputs.b}"}],
    inputs={"a": {"type": "integer"}, "b": {"type": "integer", "default": 1}},
    outputs={"n": "${outputs.sum.n}"},
)
ADD_1_1 = ADD.replace('"1.0.0"', '"1.1.0"').replace(
    "inputs.a + inputs.b", "inputs.a + inputs.b + 100"
)
SLOW = _workflow("slow", "1.0.0", [{"id": "wait", "sleep": "30s"}])
CALLER = _workflow(
    "caller",
    "1.0.0",
    [{"id": "call", "workflow": {"name": "add", "version": "^1.0"}, "args": {"a": 5}}],
    outputs={"n": "${outputs.call.n}"},
)


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine(capacity=20) as server:
        yield server


def _core(engine: EngineServer, store_url: str, **options: Any) -> Orchestrator:
    return Orchestrator(
        orchestrator_id="test",
        discovery=StaticDiscovery([f"127.0.0.1:{engine.port}"]),
        balancer=make_balancer("consistent-hash"),
        store=open_store(store_url),
        health_interval=0.2,
        reattach_timeout=0.5,
        **options,
    )


async def _done(core: Orchestrator, execution_id: str) -> dict[str, Any]:
    record = await asyncio.wait_for(core.executions.wait(execution_id), 20)
    return core.executions.result(record).to_json()


async def test_an_idempotency_key_returns_the_first_execution_also_after_a_restart(
    engine: EngineServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'weir.db'}"
    async with _core(engine, url) as core:
        await core.workflows.register(ADD)
        first = await core.executions.start("add", "", {"a": 1}, idempotency_key="k-1")
        again = await core.executions.start("add", "", {"a": 1}, idempotency_key="k-1")
        assert again.id == first.id
        with pytest.raises(AlreadyExists, match=f"k-1.*{first.id}"):
            await core.executions.start("add", "", {"a": 2}, idempotency_key="k-1")
        other = await core.executions.start("add", "", {"a": 1}, idempotency_key="k-2")
        assert other.id != first.id
        assert (await _done(core, first.id))["outputs"] == {"n": 2}
        racing = await asyncio.gather(
            *(core.executions.start("add", "", {"a": 3}, idempotency_key="k-3") for _ in range(5))
        )
        assert len({r.id for r in racing}) == 1
    async with _core(engine, url) as core:  # a new process on the same file
        after = await core.executions.start("add", "", {"a": 1}, idempotency_key="k-1")
        assert after.id == first.id
        assert (await _done(core, after.id))["outputs"] == {"n": 2}


async def test_executions_are_pinned_and_deprecated_versions_take_no_starts(
    engine: EngineServer, tmp_path: Path
) -> None:
    async with _core(engine, f"sqlite:///{tmp_path / 'weir.db'}") as core:
        await core.workflows.register(ADD)
        old = await core.executions.start("add", "1.0.0", {"a": 1})
        await core.workflows.register(ADD_1_1)
        latest = await core.executions.start("add", "", {"a": 1})
        assert (latest.version, (await _done(core, latest.id))["outputs"]) == ("1.1.0", {"n": 102})
        assert (old.version, (await _done(core, old.id))["outputs"]) == ("1.0.0", {"n": 2})

        await core.workflows.deprecate("add", "1.1.0")
        assert (await core.executions.start("add", "", {"a": 1})).version == "1.0.0"
        with pytest.raises(FailedPrecondition, match=r"add version 1\.1\.0 is deprecated"):
            await core.executions.start("add", "1.1.0", {"a": 1})
        await core.workflows.deprecate("add", "1.1.0", deprecated=False)
        assert (await core.executions.start("add", "", {"a": 1})).version == "1.1.0"
    async with _core(engine, f"sqlite:///{tmp_path / 'weir.db'}") as core:
        assert [v.version for v in core.registry.versions("add")] == ["1.0.0", "1.1.0"]
        assert not core.registry.get("add", "1.1.0").deprecated


async def test_executions_list_by_version_and_creation_time_and_count_by_status(
    engine: EngineServer, tmp_path: Path
) -> None:
    async with _core(engine, f"sqlite:///{tmp_path / 'weir.db'}") as core:
        await core.workflows.register(ADD)
        await core.workflows.register(ADD_1_1)
        first = await core.executions.start("add", "1.0.0", {"a": 1})
        later = [await core.executions.start("add", "1.1.0", {"a": a}) for a in range(2)]
        for record in (first, *later):
            await _done(core, record.id)
        newest_first = [later[1].id, later[0].id, first.id]
        listed = await core.executions.list_executions()
        assert [r.id for r in listed] == newest_first
        at = {r.id: r.created_at for r in listed}
        by_version = await core.executions.list_executions(workflow="add", version="1.1.0")
        assert [r.id for r in by_version] == newest_first[:2]
        after = await core.executions.list_executions(created_after=at[first.id])
        assert [r.id for r in after] == newest_first[:2]
        before = await core.executions.list_executions(created_before=at[later[1].id], limit=1)
        assert [r.id for r in before] == [later[0].id]
        [summary] = await core.executions.list_executions(summary=True, limit=1)
        assert summary.result_json is None and listed[0].result_json is not None

        assert await core.executions.counts(at[first.id]) == {"completed": 3}
        assert await core.executions.counts(at[later[0].id], workflow="add") == {"completed": 2}
        assert await core.executions.counts(0.0, workflow="other") == {}
        running = await core.executions.start("add", "1.0.0", {"a": 5})
        counts = await core.executions.counts(at[first.id])
        assert sum(counts.values()) == 4 and counts["completed"] >= 3, counts
        await _done(core, running.id)
        assert await core.executions.counts(at[first.id]) == {"completed": 4}


async def test_a_version_is_deleted_only_when_nothing_uses_it(
    engine: EngineServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'weir.db'}"
    async with _core(engine, url) as core:
        await core.workflows.register(SLOW)
        running = await core.executions.start("slow")
        with pytest.raises(FailedPrecondition, match="1 running execution"):
            await core.workflows.delete("slow", "1.0.0")
        await core.executions.cancel(running.id)
        await _done(core, running.id)
        await core.workflows.delete("slow", "1.0.0")
        with pytest.raises(NotFound):
            core.registry.get("slow")

        await core.workflows.register(ADD)
        await core.workflows.register(CALLER)
        with pytest.raises(FailedPrecondition, match="caller"):
            await core.workflows.delete("add", "1.0.0")
    async with _core(engine, url) as core:
        assert core.registry.names() == ["add", "caller"]
        # The cancelled execution's result survives its version's deletion.
        gone = await core.executions.get(running.id)
        assert gone.status is ExecutionStatus.CANCELLED


async def test_a_sub_workflow_is_an_execution_of_its_own_linked_both_ways(
    engine: EngineServer, tmp_path: Path
) -> None:
    async with _core(engine, f"sqlite:///{tmp_path / 'weir.db'}") as core:
        for source in (CALLER, ADD):  # the parent first: ranges resolve when the node runs
            await core.workflows.register(source)
        parent = await core.executions.start("caller")
        result = await _done(core, parent.id)
        assert result["status"] == "completed", result["error"]
        assert result["outputs"] == {"n": 6}
        [child_link] = result["children"]
        assert child_link["workflow"] == "add" and child_link["node"] == "call"
        child = await _done(core, child_link["id"])
        assert child["parent"] == {"execution": parent.id, "node": "call"}
        listed = await core.executions.list_executions(parent_id=parent.id)
        assert [row.id for row in listed] == [child_link["id"]]


async def test_recursion_past_the_depth_limit_fails_the_node_clearly(
    engine: EngineServer, tmp_path: Path
) -> None:
    forever = _workflow(
        "forever", "1.0.0", [{"id": "again", "workflow": {"name": "forever", "version": "*"}}]
    )
    async with _core(engine, f"sqlite:///{tmp_path / 'weir.db'}", max_depth=3) as core:
        await core.workflows.register(forever)
        top = await core.executions.start("forever")
        result = await _done(core, top.id)
        assert result["status"] == "failed"
        assert "deeper than 3" in json.dumps(result["error"]), result["error"]


async def test_retention_deletes_old_finished_executions_and_never_running_ones(
    engine: EngineServer, tmp_path: Path
) -> None:
    async with _core(engine, f"sqlite:///{tmp_path / 'weir.db'}", retention=3600.0) as core:
        await core.workflows.register(ADD)
        await core.workflows.register(SLOW)
        finished = [await core.executions.start("add", "", {"a": i}) for i in range(3)]
        for record in finished:
            await _done(core, record.id)
        running = await core.executions.start("slow")
        assert await core.retention.prune() == 0  # nothing is an hour old yet
        assert await core.retention.prune(now=time.time() + 7200) == 3
        for record in finished:
            with pytest.raises(NotFound):
                await core.executions.get(record.id)
        assert not [e async for e in _events(core, finished[0].id)]
        assert (await core.executions.get(running.id)).status is not ExecutionStatus.CANCELLED
        await core.executions.cancel(running.id)


async def _events(core: Orchestrator, execution_id: str) -> AsyncIterator[Any]:
    for row in await core.store.events(execution_id=execution_id):
        yield row
