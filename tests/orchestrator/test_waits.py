"""Long waits through the orchestrator core and real in-process engines: signals (before and
after the node is reached, refused ones), durable timers, parking (engines forget what only
waits, the orchestrator wakes it), callbacks against a local HTTP service (accepted, called back
before the accept answer, duplicate, stale, never), and a restart while parked.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.server.codec import CodecError
from engine.server.process import EngineServer
from engine.state.events import ExecutionStatus
from orchestrator.discovery.static import StaticDiscovery
from orchestrator.errors import FailedPrecondition, InvalidSignal, NotFound, TaskEnded
from orchestrator.ring import make_balancer
from orchestrator.store import open_store
from orchestrator.wiring import Orchestrator
from tests.support.actions import ActionServer, action_server
from tests.support.engines import running_engine
from tests.support.poll import eventually

APPROVAL = json.dumps(
    {
        "name": "approval",
        "version": "1.0.0",
        "nodes": [
            {"id": "ask", "wait": {"signal": "approve"}, "next": {"AGREE": "yes", "REJECT": "no"}},
            {"id": "yes", "lua": "return {approved = true, by = outputs.ask.by}"},
            {"id": "no", "lua": "return {approved = false}"},
        ],
    }
)
NAP = json.dumps(
    {
        "name": "nap",
        "version": "1.0.0",
        "nodes": [
            {"id": "rest", "sleep": "1500ms", "args": {"slept": True}},
            {"id": "after", "depends_on": ["rest"], "lua": "return outputs.rest"},
        ],
        "outputs": {"slept": "${outputs.after.slept}"},
    }
)


def _core(engines: list[EngineServer], store_url: str, **options: Any) -> Orchestrator:
    return Orchestrator(
        orchestrator_id="test",
        discovery=StaticDiscovery([f"127.0.0.1:{e.port}" for e in engines]),
        balancer=make_balancer("consistent-hash"),
        store=open_store(store_url),
        health_interval=0.2,
        reattach_timeout=0.5,
        **options,
    )


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine(capacity=20, park_after=0.2) as server:
        yield server


async def _done(core: Orchestrator, execution_id: str, within: float = 20) -> dict[str, Any]:
    record = await asyncio.wait_for(core.executions.wait(execution_id), within)
    return core.executions.result(record).to_json()


async def _status(core: Orchestrator, execution_id: str, status: ExecutionStatus) -> None:
    async def reached() -> bool:
        return (await core.executions.get(execution_id)).status is status

    await eventually(reached, what=f"{execution_id} {status}")


async def _open_waits(core: Orchestrator, execution_id: str) -> list[Any]:
    return [t for t in core.board.open_tasks() if t.execution_id == execution_id]


async def test_a_signal_sent_after_the_node_is_reached_completes_it_and_routes_next(
    engine: EngineServer, tmp_path: Path
) -> None:
    async with _core([engine], f"sqlite:///{tmp_path / 'w.db'}") as core:
        await core.workflows.register(APPROVAL)
        record = await core.executions.start("approval")
        await eventually(lambda: _open_waits(core, record.id), what="the wait's task")
        receipt = await core.executions.signal(
            record.id, "approve", outcome="AGREE", data_json=b'{"by": "ana"}'
        )
        assert (receipt.node, receipt.visit) == ("ask", 1)
        result = await _done(core, record.id)
        assert result["status"] == "completed"
        assert result["path"] == ["ask", "yes"]
        assert result["nodes"]["ask"]["output"] == {"by": "ana"}
        assert result["nodes"]["ask"]["outcome"] == "AGREE"
        assert result["nodes"]["yes"]["output"] == {"approved": True, "by": "ana"}
        with pytest.raises(FailedPrecondition, match="completed"):
            await core.executions.signal(record.id, "approve", outcome="AGREE")


async def test_a_signal_sent_before_the_node_is_reached_is_kept_and_taken_in_order(
    engine: EngineServer, tmp_path: Path
) -> None:
    twice = json.dumps(
        {
            "name": "twice",
            "version": "1.0.0",
            "nodes": [
                {"id": "first", "sleep": "1200ms"},
                {"id": "a", "depends_on": "first", "wait": {"signal": "go"}},
                {"id": "b", "depends_on": "a", "wait": {"signal": "go"}},
            ],
        }
    )
    async with _core([engine], f"sqlite:///{tmp_path / 'w.db'}") as core:
        await core.workflows.register(twice)
        record = await core.executions.start("twice")
        one = await core.executions.signal(record.id, "go", data_json=b"1")
        two = await core.executions.signal(record.id, "go", data_json=b"2")
        assert one.node is None and two.node is None  # kept: nobody waits yet
        assert core.signals.kept(record.id) == 2
        result = await _done(core, record.id)
        assert [result["nodes"][n]["output"] for n in ("a", "b")] == [1, 2]
        rows = await core.store.list_signals(record.id)
        assert [r.consumed_by is not None for r in rows] == [True, True]


async def test_signals_to_unknown_executions_and_names_are_refused_clearly(
    engine: EngineServer, tmp_path: Path
) -> None:
    async with _core([engine], "memory://") as core:
        await core.workflows.register(APPROVAL)
        record = await core.executions.start("approval")
        with pytest.raises(NotFound):
            await core.executions.signal("no-such-id", "approve")
        with pytest.raises(
            InvalidSignal, match=r"no wait for signal 'aprove' \(it waits for: approve\)"
        ):
            await core.executions.signal(record.id, "aprove")
        with pytest.raises(CodecError, match="data"):
            await core.executions.signal(record.id, "approve", data_json=b"{not json")
        assert core.signals.kept(record.id) == 0
        await core.executions.cancel(record.id)


async def test_an_execution_that_only_waits_is_parked_and_resumed_by_its_signal(
    engine: EngineServer, tmp_path: Path
) -> None:
    async with _core([engine], f"sqlite:///{tmp_path / 'w.db'}") as core:
        await core.workflows.register(APPROVAL)
        record = await core.executions.start("approval")
        await _status(core, record.id, ExecutionStatus.WAITING)
        assert engine.service is not None
        await eventually(lambda: engine.service.in_flight == 0, what="the engine's slot back")
        listed = await core.executions.list_executions(status="waiting")
        assert [r.id for r in listed] == [record.id]
        await core.executions.signal(record.id, "approve", outcome="REJECT")
        result = await _done(core, record.id)
        assert result["path"] == ["ask", "no"]
        types = [e.type async for e in _events(core, record.id)]
        assert "execution.parked" in types and "signal.received" in types
        assert types.count("execution.resumed") == 1


async def test_a_durable_sleep_survives_an_orchestrator_restart_while_parked(
    engine: EngineServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    started = time.time()
    async with _core([engine], url) as core:
        await core.workflows.register(NAP)
        record = await core.executions.start("nap")
        await _status(core, record.id, ExecutionStatus.WAITING)
    await asyncio.sleep(1.5)  # the timer falls due while no orchestrator runs
    async with _core([engine], url) as core:
        result = await _done(core, record.id)
        assert result["status"] == "completed"
        assert result["outputs"] == {"slept": True}
        assert time.time() - started >= 1.5


async def _events(core: Orchestrator, execution_id: str) -> AsyncIterator[Any]:
    await core.store.durable()
    for row in await core.store.events(execution_id=execution_id):
        yield row


# --- callbacks ---------------------------------------------------------------------------------

CALLBACK = json.dumps(
    {
        "name": "build",
        "version": "1.0.0",
        "inputs": {"url": {"type": "string"}},
        "nodes": [
            {
                "id": "ci",
                "http": {"url": "${inputs.url}", "json": {"project": "weir"}, "callback": True},
                "next": {"SUCCESS": "end", "FAIL": "end"},
                "retry": {"attempts": 2, "backoff": "10ms"},
            }
        ],
        "outputs": {"ci": "${outputs.ci}"},
    }
)


@pytest.fixture
def service() -> Iterator[ActionServer]:
    with action_server() as actions:
        yield actions


async def _request(service: ActionServer, within: float = 10) -> dict[str, Any]:
    async def sent() -> Any:
        return service.of("/build")

    bodies = await eventually(sent, within=within, what="the service's request")
    body: dict[str, Any] = bodies[-1]
    return body


async def test_a_callback_completes_the_node_once_and_refuses_duplicates_of_another_answer(
    engine: EngineServer, tmp_path: Path, service: ActionServer
) -> None:
    async with _core([engine], f"sqlite:///{tmp_path / 'w.db'}") as core:
        await core.workflows.register(CALLBACK)
        record = await core.executions.start("build", "", {"url": f"{service.url}/build"})
        body = await _request(service)
        token = body["weir_task_token"]
        assert body["project"] == "weir"
        assert body["weir_callback_url"].endswith(f"/api/v1/tasks/{token}")
        await eventually(
            lambda: core.board.get(token) is not None and core.board.get(token).status == "running",
            what="the request accepted",
        )
        await core.tasks.complete(token, b'{"build": 7}', "SUCCESS")
        await core.tasks.complete(token, b'{"build": 7}', "SUCCESS")  # the same again: fine
        with pytest.raises(TaskEnded):
            await core.tasks.complete(token, b'{"build": 8}', "SUCCESS")
        result = await _done(core, record.id)
        assert result["outputs"] == {"ci": {"build": 7}}
        assert len(service.of("/build")) == 1


async def test_a_callback_before_the_accept_answer_is_taken(
    engine: EngineServer, tmp_path: Path, service: ActionServer
) -> None:
    service.hold("/build")  # the service answers the request only when released
    async with _core([engine], f"sqlite:///{tmp_path / 'w.db'}") as core:
        await core.workflows.register(CALLBACK)
        record = await core.executions.start("build", "", {"url": f"{service.url}/build"})
        body = await _request(service)
        await core.tasks.complete(body["weir_task_token"], b'{"early": true}', "")
        result = await _done(core, record.id)
        service.release("/build")
        assert result["status"] == "completed"
        assert result["outputs"] == {"ci": {"early": True}}


async def test_no_callback_within_the_timeout_fails_the_attempt_and_retry_sends_again(
    engine: EngineServer, tmp_path: Path, service: ActionServer
) -> None:
    doc = json.loads(CALLBACK)
    doc["nodes"][0]["http"]["timeout"] = "300ms"
    async with _core([engine], f"sqlite:///{tmp_path / 'w.db'}") as core:
        await core.workflows.register(json.dumps(doc))
        record = await core.executions.start("build", "", {"url": f"{service.url}/build"})
        result = await _done(core, record.id)
        assert result["status"] == "completed"  # FAIL is routed to end
        node = result["nodes"]["ci"]
        assert node["status"] == "failed" and node["attempts"] == 2
        assert "no callback within 0.3s" in node["error"]
        tokens = {b["weir_task_token"] for b in service.of("/build")}
        assert len(tokens) == 2  # each attempt has its own token
        stale = tokens.pop()
        with pytest.raises(TaskEnded):
            await core.tasks.complete(stale, b"{}", "SUCCESS")


async def test_a_refused_request_fails_the_attempt_with_the_services_answer(
    engine: EngineServer, tmp_path: Path, service: ActionServer
) -> None:
    service.fail("/build", 400)
    async with _core([engine], f"sqlite:///{tmp_path / 'w.db'}") as core:
        await core.workflows.register(CALLBACK)
        record = await core.executions.start("build", "", {"url": f"{service.url}/build"})
        result = await _done(core, record.id)
        node = result["nodes"]["ci"]
        assert node["status"] == "failed" and node["attempts"] == 1  # 400: not retried
        assert "answered 400" in node["error"]


async def test_a_parked_callback_wakes_its_execution_when_called_back(
    engine: EngineServer, tmp_path: Path, service: ActionServer
) -> None:
    async with _core([engine], f"sqlite:///{tmp_path / 'w.db'}") as core:
        await core.workflows.register(CALLBACK)
        record = await core.executions.start("build", "", {"url": f"{service.url}/build"})
        body = await _request(service)
        await _status(core, record.id, ExecutionStatus.WAITING)
        await core.tasks.complete(body["weir_task_token"], b'{"ok": 1}', "SUCCESS")
        result = await _done(core, record.id)
        assert result["outputs"] == {"ci": {"ok": 1}}
        assert len(service.of("/build")) == 1  # not sent again when placed again


async def test_a_full_engine_parks_what_only_waits_sooner_so_queued_executions_get_a_slot(
    tmp_path: Path,
) -> None:
    async with (
        running_engine(capacity=2, park_after=60) as small,
        _core([small], f"sqlite:///{tmp_path / 'w.db'}") as core,
    ):
        await core.workflows.register(APPROVAL)
        ids = [(await core.executions.start("approval")).id for _ in range(4)]

        async def every_one_waits() -> bool:
            waits = [t for t in core.board.open_tasks() if t.kind == "signal"]
            return len(waits) == 4

        await eventually(every_one_waits, within=15, what="all four waits open on 2 slots")
        for execution_id in ids:
            await core.executions.signal(execution_id, "approve", outcome="AGREE")
        for execution_id in ids:
            assert (await _done(core, execution_id))["path"] == ["ask", "yes"]
