"""``weir worker TARGET``: finding the worker in a file or module, and a real process that
drains on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from tests.sdk.fake import FakeServer, FakeWorkers, task
from tests.support.poll import eventually

WEIR = shutil.which("weir", path=str(Path(sys.executable).parent)) or "weir"


@pytest.fixture
def clean_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The modules ``weir worker`` imports in this process are forgotten after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    try:
        yield
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("x = 1\n", "{file}", "defines no weir.Worker at module level"),
        (
            "import weir\nb = weir.Worker()\na = weir.Worker()\n",
            "{file}",
            "defines 2 weir.Workers (a, b): name one, e.g. {file}:a",
        ),
        ("x = 1\n", "{file}:x", "{file}:x is a int, not a weir.Worker"),
        ("x = 1\n", "{file}:nope", "has no attribute 'nope'"),
        ("import not_a_module_anywhere\n", "{file}", "importing {file} failed: ModuleNotFound"),
        ("raise RuntimeError('boom')\n", "{file}", "failed: RuntimeError: boom"),
        ("import weir\nw = weir.Worker()\n", "{file}", "has no queue"),
        ("", "missing.py", "no such file: missing.py"),
    ],
)
def test_a_target_without_one_usable_worker_is_a_clear_error(
    tmp_path: Path, clean_imports: None, source: str, target: str, message: str
) -> None:
    file = write(tmp_path / "cli_target_case.py", source)
    target = target.format(file=file)
    result = CliRunner().invoke(main, ["worker", target, "--server", "127.0.0.1:1"])
    assert result.exit_code == 2, result.output
    assert message.format(file=file) in result.output
    assert "Traceback" not in result.output


def test_a_module_and_attribute_name_the_worker(
    tmp_path: Path, clean_imports: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "cli_pkg" / "__init__.py", "")
    write(
        tmp_path / "cli_pkg" / "jobs.py",
        """
        import weir
        first = weir.Worker()
        second = weir.Worker(["q"])
        """,
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["worker", "cli_pkg.jobs:second", "--id", "w9"])
    assert result.exit_code == 2, result.output
    assert "worker w9: no handler for queue(s) 'q'" in result.output  # second, configured
    result = CliRunner().invoke(main, ["worker", "cli_pkg.nope"])
    assert result.exit_code == 2
    assert "no module named 'cli_pkg.nope'" in result.output


class WorkerProcess:
    """``weir worker FILE`` as a real process; its output in a log file shown on failure."""

    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "worker.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, *args: str, env: dict[str, str] | None = None) -> None:
        with self.log.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                WEIR,
                "worker",
                *args,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait(self, within: float) -> int:
        assert self.process is not None
        async with asyncio.timeout(within):
            return await self.process.wait()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
async def worker_process(tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    process = WorkerProcess(tmp_path)
    try:
        yield process
    except BaseException:
        print(process.output())
        raise
    finally:
        await process.kill()


SLOW_WORKER = """
    import pathlib
    import time

    import weir

    HERE = pathlib.Path(__file__).parent
    worker = weir.Worker(grace={grace})


    @worker.task("slow")
    def slow(n: int, ctx: weir.TaskContext) -> dict[str, int]:
        (HERE / "started").write_text(ctx.token)
        deadline = time.monotonic() + 30
        while not (HERE / "go").exists():
            assert time.monotonic() < deadline, "never told to go"
            time.sleep(0.01)
        return {{"n": n}}
"""


@pytest.mark.integration
async def test_sigterm_lets_the_running_task_finish_and_exits_0(
    tmp_path: Path, server: FakeServer, fake: FakeWorkers, worker_process: WorkerProcess
) -> None:
    file = write(tmp_path / "slow_worker.py", SLOW_WORKER.format(grace=30))
    await worker_process.start(str(file), "--server", server.address, "--slots", "2")
    await eventually(lambda: fake.connected, within=30, what="the worker's stream")
    assert fake.hellos[0].slots == 2
    fake.push(task("t1", "slow", n=5))
    await eventually(lambda: (tmp_path / "started").exists(), what="the task to start")
    worker_process.signal(signal.SIGTERM)
    await eventually(lambda: fake.draining, what="draining=true")
    fake.push(task("t2", "slow", n=6))
    await eventually(lambda: fake.released == ["t2"], what="the new task released")
    (tmp_path / "go").touch()
    assert await worker_process.wait(within=20) == 0
    assert fake.result("t1").output == {"n": 5}  # type: ignore[union-attr]
    assert fake.ended == 1
    assert "SIGTERM: draining" in worker_process.output()


@pytest.mark.integration
async def test_a_task_running_past_the_grace_is_released_and_the_worker_exits_0(
    tmp_path: Path, server: FakeServer, fake: FakeWorkers, worker_process: WorkerProcess
) -> None:
    file = write(tmp_path / "stuck_worker.py", SLOW_WORKER.format(grace=30))
    await worker_process.start(str(file), "--grace", "0.3", env={"WEIR_SERVER": server.address})
    await eventually(lambda: fake.connected, within=30, what="the worker's stream")
    fake.push(task("t1", "slow", n=1))
    await eventually(lambda: (tmp_path / "started").exists(), what="the task to start")
    worker_process.signal(signal.SIGTERM)
    assert await worker_process.wait(within=20) == 0
    assert fake.released == ["t1"]
    assert fake.results == []
    assert "still runs after the 0.3s grace: released" in worker_process.output()
