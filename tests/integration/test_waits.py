"""Long waits with real processes: a thousand executions waiting for signals on two engines of
capacity 5 give every slot back (parked), survive an orchestrator killed with SIGKILL while
parked, a durable timer fires while no orchestrator runs, and then every signal completes its
execution; the FSL seed's own text runs against actions that report back to ``/step``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from weir import Client
from weir.proto.v1.engine_pb2 import ExecutionStatus

from tests.integration.cluster import Cluster
from tests.support.actions import action_server
from tests.support.poll import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
APPROVAL = json.dumps(
    {
        "name": "approval",
        "version": "1.0.0",
        "inputs": {"n": {"type": "integer"}},
        "nodes": [
            {"id": "ask", "wait": {"signal": "approve"}, "next": {"AGREE": "done"}},
            {"id": "done", "lua": "return {n = inputs.n, by = outputs.ask.by}"},
        ],
        "outputs": {"n": "${outputs.done.n}", "by": "${outputs.done.by}"},
    }
)
NAP = json.dumps(
    {
        "name": "nap",
        "version": "1.0.0",
        "nodes": [
            {"id": "rest", "sleep": "4s", "args": {"rested": True}},
            {"id": "after", "depends_on": "rest", "lua": "return outputs.rest"},
        ],
        "outputs": {"rested": "${outputs.after.rested}"},
    }
)
T = TypeVar("T")
COUNT = 1000
WAITING = ExecutionStatus.EXECUTION_STATUS_WAITING
COMPLETED = ExecutionStatus.EXECUTION_STATUS_COMPLETED


async def _bounded(calls: list[Coroutine[Any, Any, T]], limit: int = 50) -> list[T]:
    """Await ``calls`` with at most ``limit`` in flight."""
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Coroutine[Any, Any, T]) -> T:
        async with semaphore:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def _count(client: Client, status: int, workflow: str) -> int:
    rows = await client.executions(workflow=workflow, status=status, limit=1000)
    return len(rows)


async def test_a_thousand_waiting_executions_park_survive_a_kill_and_complete_on_their_signals(
    cluster: Cluster,
) -> None:
    for name in ("e1", "e2"):
        cluster.start_engine(name, capacity=5, park_after="100ms")
    cluster.start_orchestrator()
    async with cluster.client(timeout=30) as client:
        await cluster.wait_ready(client, 2)
        await client.register(APPROVAL)
        await client.register(NAP)
        started = await _bounded([client.start("approval", {"n": i}) for i in range(COUNT)])
        ids = [e.id for e in started]
        nap = await client.start("nap")

        async def all_parked() -> bool:
            parked = await _count(client, WAITING, "approval")
            engines = await client.engines()
            return parked == COUNT and all(e.in_flight == 0 for e in engines)

        await eventually(all_parked, within=180, interval=0.5, what="every execution parked")
        assert (await client.execution(nap.id)).status == WAITING
    killed_at = time.monotonic()
    assert cluster.orchestrator is not None
    cluster.orchestrator.signal(signal.SIGKILL)
    cluster.orchestrator.wait(10)
    await asyncio.sleep(max(0.0, 4.5 - (time.monotonic() - killed_at)))  # the nap's timer passes
    cluster.start_orchestrator()
    async with cluster.client(timeout=30) as client:
        await cluster.wait_ready(client, 2)
        assert (await client.wait(nap.id)).status == COMPLETED
        assert json.loads((await client.execution(nap.id)).outputs_json) == {"rested": True}
        assert await _count(client, WAITING, "approval") == COUNT
        receipts = await _bounded(
            [client.signal(i, "approve", outcome="AGREE", data={"by": "ops"}) for i in ids]
        )
        assert all(r.node == "ask" for r in receipts)

        async def all_done() -> bool:
            return await _count(client, COMPLETED, "approval") == COUNT

        await eventually(all_done, within=180, interval=0.5, what="every execution completed")
        sample = await client.execution(ids[7])
        assert json.loads(sample.outputs_json) == {"n": 7, "by": "ops"}
        assert list(sample.path) == ["ask", "done"]


async def test_the_fsl_seed_runs_from_its_own_text_with_actions_reporting_to_step(
    cluster: Cluster,
) -> None:
    """The seed's text, addresses included (``http://localhost:18080/...``): the action service
    listens on that port, accepts each request at once and reports back to ``/step`` after a
    delay, with scripted outcomes: CI fails once (the FAIL -> A loop), the approval says NEXT,
    the second approval agrees, deploy fails once (FAIL -> B), notify succeeds."""
    cluster.start_engine("e1", park_after="100ms")
    cluster.start_orchestrator()
    step = f"{cluster.http_url}/step"
    with action_server(port=18080) as actions:
        actions.report("/ci", ["FAIL", "SUCCESS"], to=step)
        actions.report("/approval", ["NEXT"], to=step, after=0.3)  # parks meanwhile
        actions.report("/approval2", ["AGREE"], to=step)
        actions.report("/deploy", ["FAIL", "SUCCESS"], to=step)
        actions.report("/notify", ["SUCCESS"], to=step)
        async with cluster.client() as client:
            await cluster.wait_ready(client, 1)
            source = (ROOT / "examples" / "approval-flow.fsl").read_text()
            registered = await client.register(source)
            assert registered.workflow.name == "my-flow-run"
            started = await client.start("my-flow-run")
            done = await asyncio.wait_for(client.wait(started.id), 60)
        assert done.status == COMPLETED, done
        assert list(done.path) == ["A", "A", "D", "E", "B", "B", "C"]
        first = actions.of("/ci")[0]
        assert first["flowId"] == started.id and first["stepName"] == "A"
        assert first["ackStates"] == ["SUCCESS", "FAIL"]
        assert (first["project"], first["version"], first["retry_count"]) == (
            "https://d.zyszy.best/yametech/compass.git",
            "v0.1.0",
            10,
        )
        assert actions.of("/approval")[0]["version"] == 12343
        assert all(status == 200 for _, status, _ in actions.reports), actions.reports


async def test_the_expense_example_is_paid_or_returned_as_the_signal_says(cluster: Cluster) -> None:
    cluster.start_engine("e1", park_after="100ms")
    cluster.start_orchestrator()
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        await client.register((ROOT / "examples" / "expense-approval.yaml").read_text())
        paid = await client.start("expense-approval", {"amount": 250})
        returned = await client.start("expense-approval")
        await client.signal(paid.id, "approve", outcome="AGREE", data={"by": "grace"})
        await client.signal(returned.id, "approve", outcome="REJECT", data={"reason": "no receipt"})
        one = await asyncio.wait_for(client.wait(paid.id), 30)
        two = await asyncio.wait_for(client.wait(returned.id), 30)
    assert json.loads(one.outputs_json) == {"paid": 250, "approved_by": "grace"}
    assert list(one.path) == ["submit", "approve", "pay"]
    assert list(two.path) == ["submit", "approve", "return_it"]
    assert json.loads(two.nodes["return_it"].output_json) == {
        "returned": True,
        "reason": "no receipt",
    }
