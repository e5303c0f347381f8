"""The trigger scheduler with a fake clock and an in-process orchestrator without engines.

Executions never run here (there is no engine: they stay queued); an execution "finishes" when
the test cancels it. Each test drives ``core.triggers.tick(now)`` itself (the background loop is
off), on ``memory://`` and on an SQLite file; the replicas test runs two orchestrators on one
throwaway PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.errors import DefinitionError
from orchestrator.discovery.static import StaticDiscovery
from orchestrator.errors import FailedPrecondition, NotFound
from orchestrator.monitor import MonitorEvent
from orchestrator.ring import make_balancer
from orchestrator.store import open_store
from orchestrator.wiring import Orchestrator
from tests.support.poll import eventually
from tests.support.postgres import throwaway_database


def at(text: str) -> float:
    """``"2026-06-01T01:00:05"`` (UTC) as Unix seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


T0 = at("2026-06-01T00:00:30")


def workflow(version: str = "1.0.0", **trigger: Any) -> str:
    spec = {
        "name": "hourly",
        "cron": "0 * * * *",
        "timezone": "Europe/Paris",
        "inputs": {"day": "${trigger.time}", "tag": "${trigger.name .. '@' .. trigger.utc}"},
        **trigger,
    }
    return json.dumps(
        {
            "name": "report",
            "version": version,
            "inputs": {"day": {"type": "string"}, "tag": {"type": "string", "default": ""}},
            "nodes": [{"id": "a", "noop": {}}],
            "triggers": [spec],
        }
    )


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def new_core(url: str, name: str = "test") -> Orchestrator:
    return Orchestrator(
        orchestrator_id=name,
        discovery=StaticDiscovery([]),
        balancer=make_balancer("consistent-hash"),
        store=open_store(url),
        triggers_enabled=False,
    )


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'weir.db'}"


@pytest.fixture
async def core(url: str) -> AsyncIterator[Orchestrator]:
    async with new_core(url) as core:
        core.triggers.clock = Clock()
        yield core


def record_events(core: Orchestrator) -> list[MonitorEvent]:
    events: list[MonitorEvent] = []
    core.monitor.published.connect(
        lambda e, _json: events.append(e) if e.type.startswith("trigger.") else None
    )
    return events


async def executions(core: Orchestrator) -> list[tuple[str, dict[str, Any], str]]:
    """(version, inputs, status) of every execution of ``report``, oldest first."""
    rows = await core.executions.list_executions(workflow="report", limit=1000)
    return [(r.version, json.loads(r.inputs_json), r.status) for r in reversed(rows)]


async def days(core: Orchestrator) -> list[str]:
    return [inputs["day"] for _, inputs, _ in await executions(core)]


# --- firing ------------------------------------------------------------------------------------


async def test_a_trigger_fires_on_time_with_rendered_inputs(core: Orchestrator) -> None:
    events = record_events(core)
    await core.workflows.register(workflow())
    assert await core.triggers.tick(T0) == at("2026-06-01T01:00:00")  # first sight: the cursor
    assert await executions(core) == []
    await core.triggers.tick(at("2026-06-01T00:59:59"))
    assert await executions(core) == []

    await core.triggers.tick(at("2026-06-01T01:00:05"))
    [(version, inputs, status)] = await executions(core)
    assert (version, status) == ("1.0.0", "pending")
    assert inputs == {
        "day": "2026-06-01T03:00:00+02:00",
        "tag": "hourly@2026-06-01T01:00:00Z",
    }
    [fired] = events
    assert fired.type == "trigger.fired"
    assert (fired.workflow, fired.version) == ("report", "1.0.0")
    assert fired.data is not None
    assert fired.data["trigger"] == "hourly"
    assert fired.data["scheduled_at"] == "2026-06-01T01:00:00Z"
    assert fired.data["execution_id"] == fired.execution_id
    await core.triggers.tick(at("2026-06-01T01:00:30"))  # the same tick never fires twice
    assert len(await executions(core)) == 1
    [info] = await core.triggers.list_triggers("report")
    assert (info.last_fire_at, info.next_fire_at) == (
        at("2026-06-01T01:00:00"),
        at("2026-06-01T02:00:00"),
    )
    assert info.last_execution_id == fired.execution_id


async def test_fired_at_is_the_actual_time(core: Orchestrator) -> None:
    await core.workflows.register(workflow(inputs={"day": "${trigger.fired_at}"}))
    await core.triggers.tick(T0)
    await core.triggers.tick(at("2026-06-01T01:00:07.5"))
    assert await days(core) == ["2026-06-01T01:00:07.500000Z"]


async def test_overlap_skip_waits_for_the_previous_execution(core: Orchestrator) -> None:
    events = record_events(core)
    await core.workflows.register(workflow(overlap="skip"))
    await core.triggers.tick(T0)
    await core.triggers.tick(at("2026-06-01T01:00:01"))
    [first] = [e.execution_id for e in events if e.type == "trigger.fired"]
    await core.triggers.tick(at("2026-06-01T02:00:01"))
    assert len(await executions(core)) == 1
    skipped = events[-1]
    assert skipped.type == "trigger.skipped"
    assert skipped.data is not None
    assert skipped.data["reason"] == "overlap"
    assert skipped.data["scheduled_at"] == "2026-06-01T02:00:00Z"
    assert first in skipped.message
    assert skipped.severity.name == "WARNING"

    await core.executions.cancel(first)  # the previous one ends: the next tick fires
    await core.triggers.tick(at("2026-06-01T03:00:01"))
    assert await days(core) == ["2026-06-01T03:00:00+02:00", "2026-06-01T05:00:00+02:00"]


async def test_overlap_allow_starts_alongside(core: Orchestrator) -> None:
    await core.workflows.register(workflow(overlap="allow"))
    await core.triggers.tick(T0)
    for hour in ("01", "02", "03"):
        await core.triggers.tick(at(f"2026-06-01T{hour}:00:02"))
    assert [s for _, _, s in await executions(core)] == ["pending"] * 3


async def test_overlap_cancel_previous_cancels_then_starts(core: Orchestrator) -> None:
    await core.workflows.register(workflow(overlap="cancel-previous"))
    await core.triggers.tick(T0)
    await core.triggers.tick(at("2026-06-01T01:00:02"))
    await core.triggers.tick(at("2026-06-01T02:00:02"))
    assert [s for _, _, s in await executions(core)] == ["cancelled", "pending"]


# --- catch-up -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("catch_up", "window", "fired", "missed"),
    [
        ("none", "1h", [], 5),
        ("latest", "1h", ["07:00"], 4),
        ("latest", "10m", [], 5),
        ("all", "3h", ["05:00", "06:00", "07:00"], 2),
        ("all", "1d", ["03:00", "04:00", "05:00", "06:00", "07:00"], 0),
    ],
)
async def test_catch_up_after_downtime(
    core: Orchestrator, catch_up: str, window: str, fired: list[str], missed: int
) -> None:
    events = record_events(core)
    await core.workflows.register(
        workflow(overlap="allow", catch_up=catch_up, catch_up_window=window)
    )
    await core.triggers.tick(T0)  # cursor 01:00Z; then "down" until 05:30Z
    await core.triggers.tick(at("2026-06-01T05:30:00"))
    assert [d[11:16] for d in await days(core)] == fired
    skipped = [e for e in events if e.type == "trigger.skipped"]
    if missed:
        [event] = skipped
        assert event.data is not None
        assert (event.data["reason"], event.data["count"]) == ("missed", missed)
        assert event.data["first_scheduled_at"] == "2026-06-01T01:00:00Z"
    else:
        assert skipped == []
    [info] = await core.triggers.list_triggers()
    assert info.next_fire_at == at("2026-06-01T06:00:00")


async def test_a_tick_within_the_grace_fires_under_catch_up_none(core: Orchestrator) -> None:
    await core.workflows.register(workflow())
    await core.triggers.tick(T0)
    await core.triggers.tick(at("2026-06-01T01:00:59"))
    assert len(await executions(core)) == 1
    await core.triggers.tick(at("2026-06-01T02:01:01"))  # 61 s late: missed
    assert len(await executions(core)) == 1


# --- persistence, versions ------------------------------------------------------------------


async def test_the_cursor_survives_a_restart_and_nothing_fires_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'weir.db'}"
    async with new_core(url) as core:
        await core.workflows.register(workflow())
        await core.triggers.tick(T0)
        await core.triggers.tick(at("2026-06-01T01:00:01"))
    async with new_core(url) as core:
        events = record_events(core)
        await core.triggers.tick(at("2026-06-01T01:00:02"))  # the same tick, a new process
        assert len(await executions(core)) == 1
        # the last execution is known after the restart: still queued, so overlap skips
        await core.triggers.tick(at("2026-06-01T02:00:01"))
        assert [e.data["reason"] for e in events if e.data] == ["overlap"]
        [info] = await core.triggers.list_triggers()
        assert info.last_execution_id is not None
        await core.executions.cancel(info.last_execution_id)
        await core.triggers.tick(at("2026-06-01T03:00:01"))
        assert [d[11:16] for d in await days(core)] == ["03:00", "05:00"]


async def test_a_new_version_keeps_the_cursor_and_fires_itself(core: Orchestrator) -> None:
    await core.workflows.register(workflow("1.0.0", overlap="allow"))
    await core.triggers.tick(T0)
    await core.workflows.register(workflow("1.1.0", overlap="allow"))
    await core.triggers.tick(at("2026-06-01T00:59:00"))
    await core.triggers.tick(at("2026-06-01T01:00:01"))
    assert [v for v, _, _ in await executions(core)] == ["1.1.0"]

    # another schedule: the cursor starts again from now (no catch-up)
    await core.workflows.register(workflow("1.2.0", overlap="allow", cron="30 * * * *"))
    await core.triggers.tick(at("2026-06-01T01:40:00"))
    [info] = await core.triggers.list_triggers("report")
    assert (info.version, info.next_fire_at) == ("1.2.0", at("2026-06-01T02:30:00"))


async def test_deprecating_the_latest_version_fires_the_previous_one(core: Orchestrator) -> None:
    await core.workflows.register(workflow("1.0.0", overlap="allow"))
    await core.workflows.register(workflow("1.1.0", overlap="allow"))
    await core.workflows.deprecate("report", "1.1.0")
    await core.triggers.tick(T0)
    await core.triggers.tick(at("2026-06-01T01:00:01"))
    assert [v for v, _, _ in await executions(core)] == ["1.0.0"]

    await core.workflows.deprecate("report", "1.0.0")  # nothing startable: nothing fires
    await core.triggers.tick(at("2026-06-01T02:00:01"))
    assert len(await executions(core)) == 1
    assert await core.triggers.list_triggers() == []


async def test_a_disabled_trigger_skips_its_ticks(core: Orchestrator) -> None:
    events = record_events(core)
    await core.workflows.register(workflow(enabled=False))
    await core.triggers.tick(T0)
    await core.triggers.tick(at("2026-06-01T01:00:01"))
    assert await executions(core) == []
    [event] = events
    assert event.data is not None
    assert (event.type, event.data["reason"]) == ("trigger.skipped", "disabled")


async def test_a_failing_template_is_reported_and_the_loop_goes_on(core: Orchestrator) -> None:
    events = record_events(core)
    await core.workflows.register(workflow(inputs={"day": "${trigger.name .. nil}"}))
    await core.triggers.tick(T0)
    await core.triggers.tick(at("2026-06-01T01:00:01"))
    assert await executions(core) == []
    [event] = events
    assert event.data is not None
    assert (event.type, event.data["reason"]) == ("trigger.skipped", "error")
    assert "concatenate" in event.message
    await core.triggers.tick(at("2026-06-01T02:00:01"))  # and again, without killing the pass
    assert [e.data["reason"] for e in events if e.data] == ["error", "error"]


async def test_an_input_the_workflow_refuses_is_an_error(core: Orchestrator) -> None:
    events = record_events(core)
    await core.workflows.register(
        json.dumps(
            {
                "name": "report",
                "version": "1.0.0",
                "inputs": {"n": {"type": "integer"}},
                "nodes": [{"id": "a", "noop": {}}],
                "triggers": [{"cron": "@hourly", "inputs": {"n": "${trigger.name}"}}],
            }
        )
    )
    await core.triggers.tick(T0)
    await core.triggers.tick(at("2026-06-01T01:00:01"))
    [event] = events
    assert event.data is not None
    assert event.data == {
        "trigger": "cron-0",
        "reason": "error",
        "scheduled_at": "2026-06-01T01:00:00Z",
    }
    assert "inputs.n: expected integer" in event.message


# --- the API --------------------------------------------------------------------------------------


async def test_api_triggers_put_list_fire_and_delete(core: Orchestrator) -> None:
    await core.workflows.register(workflow())
    await core.triggers.tick(T0)
    info = await core.triggers.put_trigger(
        "report", "daily", {"cron": "@daily", "inputs": {"day": "${trigger.utc}"}}
    )
    assert (info.source, info.cron, info.timezone, info.overlap) == ("api", "@daily", "UTC", "skip")
    assert info.next_fire_at == at("2026-06-02T00:00:00")
    listed = await core.triggers.list_triggers()
    assert [(i.name, i.source) for i in listed] == [("daily", "api"), ("hourly", "definition")]
    assert listed[0].inputs == {"day": "${trigger.utc}"}
    assert listed[1].inputs == {
        "day": "${trigger.time}",
        "tag": "${trigger.name .. '@' .. trigger.utc}",
    }

    await core.triggers.tick(at("2026-06-02T00:00:03"))
    assert "2026-06-02T00:00:00Z" in await days(core)

    # replacing it with the same schedule keeps the cursor; another schedule starts again
    again = await core.triggers.put_trigger(
        "report", "daily", {"cron": "@daily", "enabled": False, "inputs": {"day": "x"}}
    )
    assert again.next_fire_at == at("2026-06-03T00:00:00")
    assert again.enabled is False
    core.triggers.clock = Clock(at("2026-06-02T06:00:00"))
    moved = await core.triggers.put_trigger(
        "report", "daily", {"cron": "0 12 * * *", "timezone": "Asia/Tokyo", "inputs": {"day": "x"}}
    )
    assert moved.next_fire_at == at("2026-06-03T03:00:00")

    await core.triggers.delete_trigger("report", "daily")
    assert [i.name for i in await core.triggers.list_triggers("report")] == ["hourly"]


async def test_api_trigger_errors(core: Orchestrator) -> None:
    await core.workflows.register(workflow())
    with pytest.raises(NotFound, match="nope"):
        await core.triggers.put_trigger("nope", "t", {"cron": "@daily"})
    with pytest.raises(FailedPrecondition, match="hourly of report is defined in its definition"):
        await core.triggers.put_trigger(
            "report", "hourly", {"cron": "@daily", "inputs": {"day": "x"}}
        )
    with pytest.raises(DefinitionError) as info:
        await core.triggers.put_trigger(
            "report",
            "t",
            {"cron": "0 0 * *", "timezone": "Europe/Pari", "inputs": {"dy": "${inputs.x}"}},
        )
    assert [str(i) for i in info.value.issues] == [
        "cron: invalid cron expression '0 0 * *': expected 5 fields (minute hour day-of-month "
        "month day-of-week) or an alias like @daily, got 4",
        "timezone: unknown time zone 'Europe/Pari' (did you mean 'Europe/Paris'?)",
        "inputs.dy: undeclared input (did you mean 'day'?) (declared: day, tag)",
        "inputs.dy: 'inputs' is not available in a trigger template: only trigger "
        "(time, utc, name, workflow, fired_at)",
        "inputs: required input 'day' (string) is not given",
    ]
    with pytest.raises(DefinitionError, match="overlap: expected 'allow', 'skip' or"):
        await core.triggers.put_trigger("report", "t", {"cron": "@daily", "overlap": "never"})
    with pytest.raises(DefinitionError, match="name: must start with a letter"):
        await core.triggers.put_trigger("report", "no spaces", {"cron": "@daily"})
    with pytest.raises(FailedPrecondition, match="change the definition"):
        await core.triggers.delete_trigger("report", "hourly")
    with pytest.raises(NotFound, match="no API trigger 'other'"):
        await core.triggers.delete_trigger("report", "other")


async def test_a_definition_trigger_takes_its_name_over_from_an_api_trigger(
    core: Orchestrator,
) -> None:
    await core.workflows.register(workflow(name="first"))
    await core.triggers.put_trigger(
        "report", "hourly", {"cron": "@daily", "inputs": {"day": "api"}}
    )
    await core.workflows.register(workflow("1.1.0"))  # now "hourly" is in the definition
    await core.triggers.tick(T0)
    [info] = [i for i in await core.triggers.list_triggers() if i.name == "hourly"]
    assert (info.source, info.cron) == ("definition", "0 * * * *")
    await core.triggers.tick(at("2026-06-01T01:00:01"))
    assert await days(core) == ["2026-06-01T03:00:00+02:00"]


# --- replicas ------------------------------------------------------------------------------------


async def test_replicas_on_one_postgres_fire_each_tick_exactly_once() -> None:
    async with throwaway_database() as url, new_core(url, "a") as a:
        await a.workflows.register(workflow(cron="* * * * *", overlap="allow", timezone="UTC"))
        async with new_core(url, "b") as b:  # b loads the workflow a registered
            start = at("2026-06-01T00:00:30")
            await asyncio.gather(a.triggers.tick(start), b.triggers.tick(start))
            ticks = 30
            for i in range(1, ticks + 1):
                now = start + 60 * i  # 30 s after each minute
                await asyncio.gather(*(c.triggers.tick(now) for c in (a, b, a, b)))
            await a.store.durable()
            await b.store.durable()
            rows = await a.store.list_executions(workflow="report", limit=1000)
            scheduled = sorted(json.loads(r.inputs_json)["day"] for r in rows)
            assert len(scheduled) == ticks
            assert len(set(scheduled)) == ticks
            assert scheduled[0] == "2026-06-01T00:01:00+00:00"
            assert {r.idempotency_key for r in rows} == {
                f"trigger:report:hourly:2026-06-01T00:{m:02d}:00Z" for m in range(1, 31)
            }
            owners = {r.owner for r in await a.store.trigger_states()}
            assert owners <= {"a", "b"}


# --- the loop ------------------------------------------------------------------------------------


async def test_the_background_loop_fires_when_the_clock_reaches_a_tick() -> None:
    core = Orchestrator(
        orchestrator_id="loop",
        discovery=StaticDiscovery([]),
        balancer=make_balancer("consistent-hash"),
        trigger_interval=0.05,
    )
    clock = Clock()
    core.triggers.clock = clock
    async with core:
        await core.workflows.register(workflow())  # wakes the loop: it sees the trigger
        await eventually(core.store.trigger_states, what="the loop to save the trigger's state")
        clock.now = at("2026-06-01T01:00:01")
        await eventually(lambda: executions(core), what="the loop to start an execution")
        assert await days(core) == ["2026-06-01T03:00:00+02:00"]
