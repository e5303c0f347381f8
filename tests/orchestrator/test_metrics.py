"""The orchestrator's ``/metrics`` text, parsed with prometheus-client's own parser.

A real engine in this process and a SQLite store: executions that complete, fail after a retry
and get cancelled; a subscriber that lags; an engine that goes away with work on it. Every
family starts with ``weir_`` and no label value is an execution id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.server.process import EngineServer
from orchestrator.discovery.static import StaticDiscovery
from orchestrator.engines.messages import RefusalReason
from orchestrator.monitor import Monitor
from orchestrator.ring import make_balancer
from orchestrator.store import open_store
from orchestrator.wiring import Orchestrator
from tests.support.engines import running_engine
from tests.support.poll import eventually

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _workflow(name: str, nodes: list[dict[str, Any]]) -> str:
    return json.dumps({"name": name, "version": "1.0.0", "nodes": nodes})


OK = _workflow("ok", [{"id": "a", "lua": "return {x = 1}"}, {"id": "b", "noop": {}}])
FLAKY = _workflow(
    "flaky",
    [{"id": "boom", "lua": "error('no luck')", "retry": {"attempts": 2, "backoff": "10ms"}}],
)
SLOW = _workflow("slow", [{"id": "nap", "sleep": "30s"}])


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine(capacity=20) as server:
        yield server


def _core(engine: EngineServer, tmp_path: Path, **options: Any) -> Orchestrator:
    return Orchestrator(
        orchestrator_id="test",
        discovery=StaticDiscovery([f"127.0.0.1:{engine.port}"]),
        balancer=make_balancer("consistent-hash"),
        store=open_store(f"sqlite:///{tmp_path / 'weir.db'}"),
        health_interval=0.2,
        health_timeout=0.5,
        triggers_enabled=False,  # not under test: trigger events are published by hand below
        **options,
    )


def _scrape(core: Orchestrator) -> tuple[list[Any], Samples]:
    payload, content_type = core.metrics.render()
    assert content_type.startswith("text/plain")
    families = list(text_string_to_metric_families(payload.decode()))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    return families, samples


async def _done(core: Orchestrator, execution_id: str) -> str:
    record = await asyncio.wait_for(core.executions.wait(execution_id), 20)
    return str(record.status)


async def test_executions_nodes_retries_drops_and_commits_are_counted(
    engine: EngineServer, tmp_path: Path
) -> None:
    async with _core(engine, tmp_path, monitor=Monitor(subscriber_buffer=2)) as core:
        with core.monitor.subscribe():  # never read: cut off after two events
            for source in (OK, FLAKY, SLOW):
                await core.workflows.register(source)
            ok = [await core.executions.start("ok") for _ in range(2)]
            flaky = await core.executions.start("flaky")
            slow = await core.executions.start("slow")
            assert [await _done(core, r.id) for r in (*ok, flaky)] == [
                "completed",
                "completed",
                "failed",
            ]
            await eventually(lambda: slow.status.value == "running")
            await core.executions.cancel(slow.id)
            assert await _done(core, slow.id) == "cancelled"
        await eventually(
            lambda: _scrape(core)[1].get(("weir_store_write_seconds_count", ()), 0) > 0
        )
        families, s = _scrape(core)

    ids = {r.id for r in (*ok, flaky, slow)}
    assert all(f.name.startswith("weir_") for f in families), [f.name for f in families]
    leaked = [(name, labels) for name, labels in s for _, v in labels if v in ids]
    assert not leaked, leaked

    for workflow, count in (("ok", 2), ("flaky", 1), ("slow", 1)):
        assert s["weir_executions_started_total", (("workflow", workflow),)] == count
    for workflow, status, count in (("ok", "completed", 2), ("flaky", "failed", 1)):
        labels = (("status", status), ("workflow", workflow))
        assert s["weir_executions_finished_total", labels] == count
        assert s["weir_execution_duration_seconds_count", labels] == count
    cancelled = (("status", "cancelled"), ("workflow", "slow"))
    assert s["weir_executions_finished_total", cancelled] == 1

    lua_ok = (("executor", "lua"), ("status", "completed"))
    lua_failed = (("executor", "lua"), ("status", "failed"))
    noop_ok = (("executor", "noop"), ("status", "completed"))
    assert s["weir_node_duration_seconds_count", lua_ok] == 2
    assert s["weir_node_duration_seconds_count", noop_ok] == 2
    assert s["weir_node_duration_seconds_count", lua_failed] == 2  # both attempts
    assert s["weir_node_retries_total", (("executor", "lua"),)] == 1
    assert s["weir_execution_queue_wait_seconds_count", ()] == 4
    assert s["weir_events_published_total", (("type", "node.retrying"),)] == 1

    link = (("engine", f"127.0.0.1:{engine.port}"),)
    assert s["weir_orchestrator_engine_capacity", link] == 20
    assert s["weir_orchestrator_engine_in_flight", link] == 0
    assert s["weir_orchestrator_engine_ready", link] == 1
    assert s["weir_orchestrator_engine_state", (*link, ("state", "ready"))] == 1
    assert s["weir_orchestrator_engine_info", (*link, ("engine_id", "e1"), ("version", "0.1.0"))]
    assert (s["weir_executions_queued", ()], s["weir_executions_in_flight", ()]) == (0, 0)

    assert s["weir_subscriber_drops_total", ()] >= 1
    assert s["weir_store_write_rows_sum", ()] > 0
    assert s["weir_store_failed", ()] == 0
    [info] = [labels for name, labels in s if name == "weir_orchestrator_info"]
    assert dict(info)["orchestrator"] == "test"


async def test_a_lost_engine_counts_a_stream_loss_and_a_failover_and_queues_its_work(
    tmp_path: Path,
) -> None:
    async with running_engine(capacity=5) as server, _core(server, tmp_path) as core:
        await core.workflows.register(SLOW)
        record = await core.executions.start("slow")
        await eventually(lambda: record.status.value == "running")
        assert _scrape(core)[1]["weir_executions_in_flight", ()] == 1
        await server.stop()
        await eventually(lambda: _scrape(core)[1]["weir_executions_queued", ()] == 1)
        _, s = _scrape(core)
    link = (("engine", f"127.0.0.1:{server.port}"),)
    assert s["weir_orchestrator_engine_streams_lost_total", link] == 1
    assert s["weir_dispatch_errors_total", (("reason", "failover"),)] == 1
    assert s["weir_orchestrator_engine_ready", link] == 0
    assert s["weir_executions_in_flight", ()] == 0


async def test_trigger_events_and_engine_refusals_are_counted_with_bounded_labels(
    engine: EngineServer, tmp_path: Path
) -> None:
    core = _core(engine, tmp_path)  # not started: events and refusals are counted all the same
    publish = core.monitor.publish
    publish("trigger.fired", workflow="ok", data={"trigger": "nightly", "tick": 1.0})
    publish("trigger.fired", workflow="ok", data={"trigger": "nightly", "tick": 2.0})
    publish("trigger.skipped", workflow="ok", data={"trigger": "nightly", "reason": "overlap"})
    publish("trigger.skipped", workflow="ok", data={"trigger": "nightly", "reason": "a b c"})
    core.lifecycle.refused(RefusalReason.FULL)  # what an engine's refusals emit
    core.lifecycle.refused(RefusalReason.DRAINING)
    _, s = _scrape(core)
    nightly = (("trigger", "nightly"), ("workflow", "ok"))
    assert s["weir_trigger_fires_total", nightly] == 2
    assert s["weir_trigger_skips_total", (("reason", "overlap"), *nightly)] == 1
    assert s["weir_trigger_skips_total", (("reason", "other"), *nightly)] == 1
    assert s["weir_dispatch_errors_total", (("reason", "full"),)] == 1
    assert s["weir_dispatch_errors_total", (("reason", "draining"),)] == 1
    assert s["weir_events_published_total", (("type", "trigger.fired"),)] == 2


def test_two_orchestrators_in_one_process_keep_their_own_registries(tmp_path: Path) -> None:
    cores = [
        Orchestrator(
            orchestrator_id=f"o{i}",
            discovery=StaticDiscovery([]),
            balancer=make_balancer("round-robin"),
        )
        for i in range(2)
    ]
    cores[0].monitor.publish("workflow.registered", workflow="w")
    counts = [
        _scrape(core)[1].get(("weir_events_published_total", (("type", "workflow.registered"),)))
        for core in cores
    ]
    assert counts == [1, None]
