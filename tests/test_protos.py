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
    checked_in = {k: v for k, v in generated(ROOT).items() if k.split("/")[0] == "sdk"}
    assert sorted(checked_in) == sorted(fresh), "run scripts/gen-protos and commit the result"
    stale = [name for name, text in fresh.items() if checked_in[name] != text]
    assert not stale, f"out of date (run scripts/gen-protos): {stale}"


def test_every_proto_package_is_versioned_and_generated_into_the_sdk() -> None:
    """Every contract is the SDK's (proto/weir/proto/v1/NAME.proto, package weir.NAME.v1,
    generated under sdk/python/), so a user's service installs it without the server."""
    sources = sorted((ROOT / "proto").rglob("*.proto"))
    assert {p.stem for p in sources} >= {"engine", "orchestrator", "worker"}
    for proto in sources:
        relative = proto.relative_to(ROOT / "proto")
        assert relative.parts[0] == "weir", f"{relative}: outside proto/weir/"
        assert relative.parts[-2].startswith("v"), f"{relative}: not in a versioned folder"
        sdk = ROOT / "sdk" / "python"
        assert (sdk / relative.parent / "__init__.py").exists(), f"{relative}: no package"
        package = next(
            line.split()[1].rstrip(";")
            for line in proto.read_text().splitlines()
            if line.startswith("package ")
        )
        assert package == f"weir.{relative.stem}.{relative.parts[-2]}", relative
