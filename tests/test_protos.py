"""The generated protobuf modules are checked in; they must match what scripts/gen-protos makes."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generated(base: Path) -> dict[str, str]:
    return {
        str(p.relative_to(base)): p.read_text()
        for p in base.rglob("*")
        if p.name.endswith(SUFFIXES) and ".venv" not in p.parts
    }


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "gen-protos"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    fresh = generated(tmp_path)
    assert fresh, "gen-protos produced nothing"
    checked_in = {
        k: v
        for k, v in generated(ROOT).items()
        if k.split("/")[0] in ("engine", "orchestrator", "sdk")
    }
    assert sorted(checked_in) == sorted(fresh), "run scripts/gen-protos and commit the result"
    stale = [name for name, text in fresh.items() if checked_in[name] != text]
    assert not stale, f"out of date (run scripts/gen-protos): {stale}"


def test_every_proto_package_is_versioned_and_mirrors_its_python_package() -> None:
    for proto in (ROOT / "proto").rglob("*.proto"):
        relative = proto.relative_to(ROOT / "proto")
        assert relative.parts[-2].startswith("v"), f"{relative}: not in a versioned folder"
        # proto/weir/ is the SDK's, generated under sdk/python/; the rest under the root
        base = ROOT / "sdk" / "python" if relative.parts[0] == "weir" else ROOT
        assert (base / relative.parent / "__init__.py").exists(), f"{relative}: no package"
        package = next(
            line.split()[1].rstrip(";")
            for line in proto.read_text().splitlines()
            if line.startswith("package ")
        )
        # weir.engine.v1, weir.orchestrator.v1; the SDK's by file: weir.worker.v1
        kind = relative.stem if relative.parts[0] == "weir" else relative.parts[0]
        assert package == f"weir.{kind}.{relative.parts[-2]}", relative
