"""``weir convert`` as a user runs it: the FSL seed's YAML validates and loads to the same model;
an invalid file exits 2 with its line and column and no traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from engine.definition import load_file, loads

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "approval-flow.fsl"
WEIR = shutil.which("weir", path=str(Path(sys.executable).parent)) or "weir"


def weir(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [WEIR, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    return proc


def test_convert_prints_yaml_that_validates(tmp_path: Path) -> None:
    proc = weir("convert", str(EXAMPLE))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("apiVersion: weir/v1\nkind: Workflow\nname: my-flow-run\n")
    assert "    next: {AGREE: B, REJECT: C, NEXT: E, FAIL: D}\n" in proc.stdout
    assert loads(proc.stdout) == load_file(EXAMPLE)
    converted = tmp_path / "my-flow-run.yaml"
    converted.write_text(proc.stdout)
    both = weir("validate", str(EXAMPLE), str(converted))
    assert both.returncode == 0, both.stderr
    assert both.stdout.splitlines() == [
        f"{EXAMPLE}: ok (my-flow-run 1.0.0, 5 nodes)",
        f"{converted}: ok (my-flow-run 1.0.0, 5 nodes)",
    ]

    as_json = weir("convert", str(EXAMPLE), "--output", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == yaml.safe_load(proc.stdout)


def test_convert_errors_name_line_and_column(tmp_path: Path) -> None:
    seed = EXAMPLE.read_text()
    bad = tmp_path / "bad.fsl"
    bad.write_text(seed.replace('/approval";', '/approval"'))
    proc = weir("convert", str(bad))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"{bad}: line 10, column 1: expected ';' after addr, found 'method'\n"

    bad.write_text(seed.replace("version=12343);", 'version="12343");', 1))
    proc = weir("convert", str(bad))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"{bad}: line 43, column 36: arg version of action approval is int, got a string\n"
    )

    missing = weir("convert", str(tmp_path / "nothing.fsl"))
    assert missing.returncode == 2
    assert "cannot read file" in missing.stderr
