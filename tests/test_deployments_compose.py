"""deployments/docker-compose.yml and deployments/prometheus/: valid, and in step with the settings.

Offline: ``docker-compose config`` validates the file without a Docker daemon, and everything
else is read from the YAML. Every variable the compose file sets must be one the process reads
(a typo there would be silently ignored), with a value its settings accept.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.definition.duration import parse_duration
from engine.settings import EngineSettings, EnvSettings
from orchestrator.settings import OrchestratorSettings

ROOT = Path(__file__).parents[1]
DEPLOYMENTS = ROOT / "deployments"
COMPOSE = DEPLOYMENTS / "docker-compose.yml"
PROMETHEUS_DIR = DEPLOYMENTS / "prometheus"
ENGINE_SERVICES = ["engine-1", "engine-2", "engine-3"]
SERVICES = {*ENGINE_SERVICES, "orchestrator", "worker", "postgres", "prometheus"}
IMAGES = {"engine": "weir-engine:0.1.0", "orchestrator": "weir-orchestrator:0.1.0"}
_DEFAULTED = re.compile(r"\$\{([A-Z_][A-Z0-9_]*):?-([^}]*)\}")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's variables, ``${VAR:-default}`` replaced by its default (as with VAR unset)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    resolved = {}
    for name, value in env.items():
        text = _DEFAULTED.sub(lambda m: m.group(2), "" if value is None else str(value))
        assert "$" not in text.replace("$$", ""), f"{name}: only ${{VAR:-default}} is used here"
        resolved[name] = text
    return resolved


def _default(settings: type[EnvSettings], field: str) -> Any:
    return settings.model_fields[field].default


def _setting(service: dict[str, Any], settings: type[EnvSettings], field: str) -> Any:
    """The value the process will use: the compose variable if set, else the default."""
    resolved = settings.from_env(_environment(service))
    return getattr(resolved, field)


def _container_ports(entries: list[Any]) -> dict[int, str | None]:
    """Published ports as {container port: host IP} (short and long syntax)."""
    ports: dict[int, str | None] = {}
    for entry in entries:
        if isinstance(entry, dict):
            ports[int(entry["target"])] = entry.get("host_ip")
            continue
        parts = str(entry).split("/")[0].split(":")
        ports[int(parts[-1])] = parts[0] if len(parts) == 3 else None
    return ports


def test_docker_compose_config_accepts_the_file() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not on PATH: scripts/test installs it (scripts/_tools.sh); "
            "or run: apt-get install docker-compose"
        )
    env = {k: v for k, v in os.environ.items() if k != "WEIR_API_TOKEN"}
    proc = subprocess.run(
        [exe, "-f", str(COMPOSE), "config", "--quiet"],
        cwd=DEPLOYMENTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warn" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr


def test_the_stack_has_three_engines_an_orchestrator_a_worker_postgres_and_prometheus() -> None:
    services = _services()
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service.get("restart") in {"unless-stopped", "always"}, name
    assert set(_compose().get("volumes") or {}) >= {"postgres-data", "prometheus-data"}


@pytest.mark.parametrize("name", [*ENGINE_SERVICES, "orchestrator"])
def test_weir_images_build_from_the_repository_root(name: str) -> None:
    service = _services()[name]
    kind = "orchestrator" if name == "orchestrator" else "engine"
    assert service["image"] == IMAGES[kind]
    context = (DEPLOYMENTS / service["build"]["context"]).resolve()
    assert context == ROOT.resolve()
    assert service["build"]["dockerfile"] == f"Dockerfile.{kind}"
    assert (context / service["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize(
    ("name", "settings"),
    [*((e, EngineSettings) for e in ENGINE_SERVICES), ("orchestrator", OrchestratorSettings)],
)
def test_every_variable_is_a_setting_with_a_valid_value(
    name: str, settings: type[EnvSettings]
) -> None:
    env = _environment(_services()[name])
    known = {field.upper() for field in settings.model_fields}
    assert set(env) <= known, f"{name} sets variables {settings.__name__} does not read"
    settings.from_env(env)  # raises SettingsError naming a bad value


def test_engines_have_their_own_ids_and_drain_before_they_are_killed() -> None:
    services = _services()
    for name in ENGINE_SERVICES:
        engine = services[name]
        assert _environment(engine)["ENGINE_ID"] == name
        grace = _setting(engine, EngineSettings, "shutdown_grace_period")
        assert parse_duration(engine["stop_grace_period"]) > grace, name
        assert "ports" not in engine, f"{name}: engines are reached on the compose network only"
        health = " ".join(engine["healthcheck"]["test"])
        port = _setting(engine, EngineSettings, "port")
        assert "grpc_health" in health and f"127.0.0.1:{port}" in health, name


def test_engine_ports_are_the_settings_defaults() -> None:
    for name in ENGINE_SERVICES:
        engine = _services()[name]
        port = _setting(engine, EngineSettings, "port")
        metrics = _setting(engine, EngineSettings, "metrics_port")
        assert (port, metrics) == (
            _default(EngineSettings, "port"),
            _default(EngineSettings, "metrics_port"),
        )
        assert {int(p) for p in engine["expose"]} == {port, metrics}
    assert _dockerfile_exposes("Dockerfile.engine") == {port, metrics}


def test_orchestrator_ports_are_the_settings_defaults_on_loopback() -> None:
    orchestrator = _services()["orchestrator"]
    grpc_port = _setting(orchestrator, OrchestratorSettings, "grpc_port")
    http_port = _setting(orchestrator, OrchestratorSettings, "http_port")
    assert (grpc_port, http_port) == (
        _default(OrchestratorSettings, "grpc_port"),
        _default(OrchestratorSettings, "http_port"),
    )
    assert _container_ports(orchestrator["ports"]) == {
        grpc_port: "127.0.0.1",
        http_port: "127.0.0.1",
    }
    assert _dockerfile_exposes("Dockerfile.orchestrator") == {grpc_port, http_port}
    prometheus = _container_ports(_services()["prometheus"]["ports"])
    assert set(prometheus.values()) == {"127.0.0.1"}


def _dockerfile_exposes(dockerfile: str) -> set[int]:
    ports: set[int] = set()
    for line in (ROOT / dockerfile).read_text().splitlines():
        if line.startswith("EXPOSE "):
            ports |= {int(p.split("/")[0]) for p in line.split()[1:]}
    return ports


def test_orchestrator_finds_exactly_the_engines_at_their_port() -> None:
    services = _services()
    orchestrator = services["orchestrator"]
    assert _setting(orchestrator, OrchestratorSettings, "discovery") == "static"
    engines = OrchestratorSettings.from_env(_environment(orchestrator)).engine_list()
    expected = [f"{e}:{_setting(services[e], EngineSettings, 'port')}" for e in ENGINE_SERVICES]
    assert sorted(engines) == expected


def test_orchestrator_stores_state_in_the_postgres_service_once_it_is_healthy() -> None:
    services = _services()
    orchestrator, postgres = services["orchestrator"], services["postgres"]
    pg = _environment(postgres)
    url = _setting(orchestrator, OrchestratorSettings, "store_url")
    user, password, db = pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]
    assert url == f"postgresql://{user}:{password}@postgres:5432/{db}"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    depends = orchestrator["depends_on"]
    assert set(depends) == {"postgres", *ENGINE_SERVICES}
    assert depends["postgres"] == {"condition": "service_healthy"}
    for engine in ENGINE_SERVICES:
        assert depends[engine]["condition"] in {"service_healthy", "service_started"}


def _prometheus_config() -> tuple[Path, dict[str, Any]]:
    prometheus = _services()["prometheus"]
    flags = dict(a.split("=", 1) for a in prometheus["command"] if "=" in a)
    config_in_container = Path(flags["--config.file"])
    for volume in prometheus["volumes"]:
        source, target, *_ = str(volume).split(":")
        if target == str(config_in_container.parent):
            path = DEPLOYMENTS / source / config_in_container.name
            break
    else:
        pytest.fail("prometheus: no volume mounts the directory of --config.file")
    assert path.resolve() == (PROMETHEUS_DIR / "prometheus.yml").resolve()
    config = yaml.safe_load(path.read_text())
    assert isinstance(config, dict)
    return path, config


def test_prometheus_scrapes_exactly_the_services_that_serve_metrics() -> None:
    _, config = _prometheus_config()
    assert config["global"]["scrape_interval"] == "15s"
    jobs: dict[str, set[str]] = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert job.get("scheme", "http") == "http"
        jobs[job["job_name"]] = {t for sc in job["static_configs"] for t in sc["targets"]}
    services = _services()
    orchestrator_port = _setting(services["orchestrator"], OrchestratorSettings, "http_port")
    assert jobs == {
        "weir-orchestrator": {f"orchestrator:{orchestrator_port}"},
        "weir-engine": {
            f"{e}:{_setting(services[e], EngineSettings, 'metrics_port')}" for e in ENGINE_SERVICES
        },
    }


def test_prometheus_rules_parse_and_name_documented_metrics() -> None:
    path, config = _prometheus_config()
    documented = set(re.findall(r"`(weir_\w+)`", (ROOT / "docs" / "metrics.md").read_text()))
    suffixes = ("_bucket", "_count", "_sum")
    rule_files = config.get("rule_files") or []
    assert rule_files, "the alerting and recording rules are loaded"
    for rule_file in rule_files:
        groups = yaml.safe_load((path.parent / rule_file).read_text())["groups"]
        assert groups
        for group in groups:
            for rule in group["rules"]:
                assert ("record" in rule) != ("alert" in rule), rule
                assert isinstance(rule["expr"], str) and rule["expr"].strip(), rule
                for metric in re.findall(r"\b(weir_\w+)", rule["expr"]):
                    base = next((metric[: -len(s)] for s in suffixes if metric.endswith(s)), metric)
                    assert metric in documented or base in documented, f"{rule}: {metric}"
                for job in re.findall(r'job=~?"([^"]+)"', rule["expr"]):
                    names = {j["job_name"] for j in config["scrape_configs"]}
                    assert set(job.split("|")) <= names, rule


def test_the_example_worker_reaches_the_orchestrators_grpc_port_with_the_sdk_image() -> None:
    worker = _services()["worker"]
    assert worker["build"]["dockerfile"] == "Dockerfile.worker"
    assert (ROOT / "Dockerfile.worker").is_file()
    orchestrator = _environment(_services()["orchestrator"])
    assert _environment(worker)["WEIR_SERVER"] == f"orchestrator:{orchestrator['GRPC_PORT']}"
    text = (ROOT / "Dockerfile.worker").read_text()
    assert "COPY engine" not in text and "COPY orchestrator" not in text  # the SDK alone
