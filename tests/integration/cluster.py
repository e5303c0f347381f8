"""Real ``weir engine`` / ``weir orchestrator`` processes on 127.0.0.1 for integration tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from weir import Client

from tests.support.net import free_port
from tests.support.poll import eventually, wait_for

ROOT = Path(__file__).parents[2]
WEIR = shutil.which("weir", path=str(Path(sys.executable).parent)) or "weir"


class Proc:
    """A ``weir`` subprocess whose output goes to a log file (shown when a test fails)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        self._file = self.log.open("wb")
        self.popen = subprocess.Popen(
            [WEIR, *args],
            stdout=self._file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            cwd=ROOT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._file.close()


class Cluster:
    """An orchestrator and engines, all real processes with static discovery."""

    def __init__(self, logs: Path, store_url: str = "") -> None:
        self.logs = logs
        self.store_url = store_url or f"sqlite:///{logs / 'weir.db'}"
        self.starts = 0
        self.engines: dict[str, Proc] = {}
        self.engine_ports: dict[str, int] = {}
        self.orchestrator: Proc | None = None
        self.orchestrators: list[Proc] = []
        self.others: list[Proc] = []
        self.port = 0
        self.http_port = 0

    def start_engine(self, name: str, *, port: int | None = None, **env: Any) -> Proc:
        port = port or self.engine_ports.get(name) or free_port()
        self.engine_ports[name] = port
        proc = Proc(
            name,
            ["engine"],
            {
                "ENGINE_ID": name,
                "PORT": str(port),
                "BIND_ADDRESS": "127.0.0.1",
                "METRICS_PORT": "0",
                "CAPACITY": "10",
                **{k.upper(): str(v) for k, v in env.items()},
            },
            self.logs,
        )
        self.engines[name] = proc
        wait_for(
            lambda: "listening on port" in proc.output() or proc.popen.poll() is not None,
            within=20,
            what=f"engine {name} to listen",
            interval=0.05,
        )
        assert proc.popen.poll() is None, proc.output()
        return proc

    def start_process(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        """Another ``weir`` process (a task worker...), stopped and dumped with the cluster."""
        proc = Proc(name, args, env, self.logs)
        self.others.append(proc)
        return proc

    def reserve_engine(self, name: str) -> int:
        """A port for an engine that is not started yet (an unreachable engine)."""
        self.engine_ports[name] = free_port()
        return self.engine_ports[name]

    def start_orchestrator(self, **env: Any) -> Proc:
        """Start (or restart: same port, same store) the orchestrator; ``env`` overrides."""
        self.port = self.port or free_port()
        self.http_port = self.http_port or free_port()
        engines = ",".join(f"127.0.0.1:{p}" for p in self.engine_ports.values())
        self.starts += 1
        proc = Proc(
            "orchestrator" if self.starts == 1 else f"orchestrator-{self.starts}",
            ["orchestrator"],
            {
                "GRPC_PORT": str(self.port),
                "HTTP_PORT": str(self.http_port),
                "BIND_ADDRESS": "127.0.0.1",
                "DISCOVERY": "static",
                "ENGINES": engines,
                "ENGINE_HEALTH_CHECK_INTERVAL": "300ms",
                "ENGINE_HEALTH_CHECK_TIMEOUT": "1s",
                "STORE_URL": self.store_url,
                **{k.upper(): str(v) for k, v in env.items()},
            },
            self.logs,
        )
        self.orchestrator = proc
        self.orchestrators.append(proc)
        wait_for(
            lambda: "listening on port" in proc.output() or proc.popen.poll() is not None,
            within=20,
            what="the orchestrator to listen",
            interval=0.05,
        )
        assert proc.popen.poll() is None, proc.output()
        return proc

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def client(self, timeout: float = 10.0) -> Client:
        return Client(self.address, timeout=timeout)

    async def wait_ready(self, client: Client, count: int, within: float = 20.0) -> None:
        async def ready() -> bool:
            engines = await client.engines()
            return sum(1 for e in engines if e.healthy and e.state == 2) >= count

        await eventually(ready, within=within, what=f"{count} ready engines", interval=0.05)

    def stop(self) -> None:
        for proc in [*self.others, *self.engines.values(), *self.orchestrators]:
            proc.stop()

    def dump(self) -> str:
        procs = [*self.engines.values(), *self.orchestrators, *self.others]
        return "\n".join(f"--- {p.name}\n{p.output()[-4000:]}" for p in procs)
