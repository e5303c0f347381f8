"""Registry version rules, settings errors and the monitor's slow-subscriber cut-off."""

from __future__ import annotations

import asyncio

import pytest

from engine.errors import DefinitionError
from engine.settings import EngineSettings
from orchestrator.errors import AlreadyExists, NotFound, VersionConflict
from orchestrator.monitor import Lagged, Monitor
from orchestrator.registry import Registry
from orchestrator.settings import OrchestratorSettings, SettingsError


def source(version: str, body: str = "return {x = 1}") -> str:
    return f"name: w\nversion: {version}\nnodes:\n  - {{id: a, lua: '{body}'}}\n"


@pytest.mark.parametrize(
    ("registered", "new", "outcome"),
    [
        ([], "1.0.0", "created"),
        (["1.0.0"], "1.0.0", "unchanged"),
        (["1.0.0"], "1.10.0", "created"),
        (["1.9.0"], "1.10.0", "created"),  # semver, not string order
        (["1.10.0"], "1.9.0", VersionConflict),
        (["1.0.0"], "1.0.0-rc.1", VersionConflict),  # a pre-release sorts before its release
        (["1.0.0-rc.1"], "1.0.0", "created"),
        (["1.0.0-alpha"], "1.0.0-alpha.1", "created"),
    ],
)
def test_version_rules(registered: list[str], new: str, outcome: object) -> None:
    registry = Registry()
    for version in registered:
        registry.register(source(version))
    if isinstance(outcome, type):
        with pytest.raises(outcome) as err:
            registry.register(source(new))
        assert new in str(err.value)
    else:
        _, created = registry.register(source(new))
        assert created == (outcome == "created")


def test_same_version_with_another_definition_is_refused() -> None:
    registry = Registry()
    registry.register(source("1.0.0"))
    with pytest.raises(AlreadyExists, match=r"w version 1\.0\.0 is already registered"):
        registry.register(source("1.0.0", "return {x = 2}"))


def test_lookups_name_what_is_missing() -> None:
    registry = Registry()
    registry.register(source("1.0.0"))
    registry.register(source("1.2.0"))
    assert registry.get("w").version == "1.2.0"
    assert registry.get("w", "1.0.0").version == "1.0.0"
    with pytest.raises(NotFound, match=r"has no version 1\.1\.0 \(has 1\.0\.0, 1\.2\.0\)"):
        registry.get("w", "1.1.0")
    with pytest.raises(NotFound, match="'x' is not registered"):
        registry.get("x")
    with pytest.raises(DefinitionError):
        registry.register("name: w\nversion: 2.0.0\nnodes: []\n")
    assert [v.version for v in registry.versions("w")] == ["1.0.0", "1.2.0"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT='http'"),
        ({"CAPACITY": "0"}, "CAPACITY='0'"),
        ({"SHUTDOWN_GRACE_PERIOD": "soon"}, "SHUTDOWN_GRACE_PERIOD='soon': invalid duration"),
    ],
)
def test_engine_settings_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        EngineSettings.from_env(env)


def test_orchestrator_settings() -> None:
    s = OrchestratorSettings.from_env(
        {"ENGINES": "a:1, b:2", "ENGINE_HEALTH_CHECK_INTERVAL": "500ms", "DISCOVERY": "static"}
    )
    assert s.engine_list() == ["a:1", "b:2"] and s.engine_health_check_interval == 0.5
    assert s.grpc_port == 50051 and s.load_balancer_type == "consistent-hash"
    with pytest.raises(SettingsError, match="ENGINES entry 'b' is not host:port"):
        OrchestratorSettings.from_env({"ENGINES": "a:1,b"})
    with pytest.raises(SettingsError, match="LOAD_BALANCER_TYPE='random'"):
        OrchestratorSettings.from_env({"LOAD_BALANCER_TYPE": "random"})
    assert OrchestratorSettings.from_env({}, grpc_port=7000).grpc_port == 7000


async def test_a_slow_subscriber_is_cut_off_without_slowing_publishers() -> None:
    monitor = Monitor(subscriber_buffer=10)
    with monitor.subscribe() as slow, monitor.subscribe(lambda e: e.type == "b") as picky:
        for i in range(25):
            monitor.publish("a" if i % 5 else "b")
        assert monitor.dropped_subscribers == 1
        received = [e.sequence async for e in _take(slow, 10)]
        assert received == list(range(1, 11))
        with pytest.raises(Lagged) as err:
            await slow.__anext__()
        assert err.value.last_sequence == 10
        assert [e.type for e in await _drain(picky)] == ["b"] * 5


async def _take(sub: object, n: int):  # type: ignore[no-untyped-def]
    for _ in range(n):
        yield await sub.__anext__()  # type: ignore[attr-defined]


async def _drain(sub: object) -> list[object]:
    out = []
    while not sub.queue.empty():  # type: ignore[attr-defined]
        out.append(await asyncio.wait_for(sub.__anext__(), 1))  # type: ignore[attr-defined]
    return out
