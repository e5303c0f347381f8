"""The SDK alone, installed in a fresh virtualenv: only grpcio and protobuf come with it, and a
worker script runs there against the fake server.

pip uses the machine's configured index and its own cache. Without a network (nothing to build
the wheel with, or no grpcio to download) the test is skipped, saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.sdk.fake import FakeServer, FakeWorkers, task
from tests.support.poll import eventually

SDK = Path(__file__).parents[2] / "sdk" / "python"
SERVER_ONLY = {"sqlalchemy", "fastapi", "lupa", "kubernetes", "weir"}
OFFLINE = (
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "No matching distribution found",
    "Could not find a version that satisfies",
    "ConnectTimeout",
    "ReadTimeout",
)

SCRIPT = """
    import sys

    import weir

    print(weir.__file__, flush=True)
    worker = weir.Worker(["double"], slots=1, worker_id="fresh-venv")


    @worker.task("double")
    def double(x: int) -> dict[str, int]:
        return {"y": 2 * x}


    worker.run()
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def _install(venv: Path) -> Path:
    """The fresh venv's python, with the SDK installed; skips when pip cannot reach an index."""
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=60
    )
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(SDK)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
        cwd=venv,
    )
    if installed.returncode != 0:
        output = installed.stdout + installed.stderr
        if any(sign in output for sign in OFFLINE):
            pytest.skip(f"pip cannot reach a package index from here: {output.strip()[-300:]}")
        raise AssertionError(f"pip install {SDK} failed:\n{output}")
    return python


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_the_sdk_alone_installs_and_runs_a_worker(
    tmp_path: Path, server: FakeServer, fake: FakeWorkers
) -> None:
    python = await asyncio.to_thread(_install, tmp_path / "venv")
    listed = await asyncio.to_thread(
        subprocess.run,
        [str(python), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=_clean_env(),
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"weir-sdk", "grpcio", "protobuf"} <= names
    assert not names & SERVER_ONLY, f"the SDK pulled in server packages: {names & SERVER_ONLY}"
    contracts = await asyncio.to_thread(
        subprocess.run,
        [
            str(python),
            "-c",
            "import weir, weir.proto.v1.engine_pb2, weir.proto.v1.orchestrator_pb2; "
            "print(weir.Client.__name__, weir.ApiError.__name__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
        cwd=tmp_path,
    )
    assert contracts.stdout.split() == ["Client", "ApiError"], contracts.stderr  # the client too

    script = tmp_path / "work" / "fresh_worker.py"
    script.parent.mkdir()
    script.write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(python),
            str(script),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=_clean_env(WEIR_SERVER=server.address),
            cwd=script.parent,
        )
    try:
        await eventually(lambda: fake.connected, within=30, what="the fresh venv's worker")
        assert fake.hellos[0].worker_id == "fresh-venv"
        fake.push(task("t1", "double", x=21))
        await eventually(lambda: fake.result("t1"), what="the task's result")
        assert fake.result("t1").output == {"y": 42}  # type: ignore[union-attr]
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await process.wait() == 0
        assert log.read_text().splitlines()[0].startswith(str(tmp_path / "venv"))
    except BaseException:
        print(log.read_text(errors="replace"))
        raise
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
