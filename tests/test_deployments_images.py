"""The images agree with the code: entry points are real ``weir`` commands, exposed ports are
the settings' defaults, and every environment variable a Dockerfile sets or reads is a setting.
(hadolint runs in ``test_packaging.py``.)"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.settings import EngineSettings
from orchestrator.cli import main
from orchestrator.settings import OrchestratorSettings

ROOT = Path(__file__).parents[1]
IMAGES = {
    "Dockerfile.engine": (EngineSettings, "engine", {"port", "metrics_port"}),
    "Dockerfile.orchestrator": (OrchestratorSettings, "orchestrator", {"grpc_port", "http_port"}),
}


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    parsed = [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]
    stages = [i for i, (kind, *_) in enumerate(parsed) if kind.upper() == "FROM"]
    return [(kind.upper(), rest[0] if rest else "") for kind, *rest in parsed[stages[-1] :]]


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_image_runs_a_weir_command_on_the_settings_ports(dockerfile: str) -> None:
    settings, command, port_fields = IMAGES[dockerfile]
    final = _instructions(ROOT / dockerfile)
    by_kind: dict[str, list[str]] = {}
    for kind, args in final:
        by_kind.setdefault(kind, []).append(args)

    assert json.loads(by_kind["ENTRYPOINT"][-1]) == ["weir"]
    assert json.loads(by_kind["CMD"][-1]) == [command]
    help_text = CliRunner().invoke(main, [command, "--help"])
    assert help_text.exit_code == 0, help_text.output

    exposed = {int(p) for args in by_kind["EXPOSE"] for p in args.split()}
    defaults = {settings.model_fields[name].default for name in port_fields}
    assert exposed == defaults

    assert by_kind["USER"][-1] not in ("root", "0")
    fields = {name.upper() for name in settings.model_fields}
    for args in by_kind.get("ENV", []):
        name = args.split("=", 1)[0].split()[0]
        assert name in fields, f"{dockerfile} sets {name}, which weir {command} does not read"
    checks = by_kind.get("HEALTHCHECK", [])
    assert len(checks) == 1
    for name in re.findall(r"environ\.get\('([A-Z_]+)'\)", checks[0]):
        assert name in fields, f"{dockerfile}'s HEALTHCHECK reads {name}, not a setting"


def test_requirements_lock_pins_the_whole_runtime_closure_as_installed() -> None:
    """The images build from requirements.lock, so it must name every runtime dependency
    (transitive ones too) at the version the tests ran with; ``scripts/lock`` rewrites it."""
    spec = importlib.util.spec_from_file_location("lock", ROOT / "scripts" / "lock.py")
    assert spec is not None and spec.loader is not None
    lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock)
    assert (ROOT / "requirements.lock").read_text() == lock.render(), "run scripts/lock"
    for dockerfile in IMAGES:
        text = (ROOT / dockerfile).read_text()
        assert "-c requirements.lock" in text and "requirements.lock ./" in text, dockerfile
