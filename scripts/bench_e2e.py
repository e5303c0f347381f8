"""End-to-end benchmark: a real orchestrator and two engines (``scripts/bench e2e``; not a test).

Starts ``weir orchestrator`` and two ``weir engine`` processes on 127.0.0.1 (static discovery),
registers a 3-node Lua chain (a -> b -> c, each node reading its predecessor's output) and
measures, from client coroutines in this process (or ``--clients N`` client processes):

* throughput: executions completed per second while each client keeps ``--window`` executions
  in flight (``--concurrency`` coroutines calling StartExecution), after a warm-up;
* latency: at half that rate, open loop (start times are scheduled, not paced by completions),
  from the StartExecution call to the arrival of its ``execution.completed`` event at the
  client: p50 and p99 (and the same from the scheduled time, which a late client cannot hide);
* baselines measured in the same run: the same workflow through ``engine.local.run_workflow``
  in one process (no network, no orchestrator), and a bare unary RPC (ListEngines) against the
  orchestrator, the ceiling of one Python gRPC server on this machine.

Completions are counted from one WatchEvents stream per client process (filtered on its own
workflow), never by polling executions. The CPU time each process used during the throughput
window shows which one is the bottleneck. ``--profile`` runs the orchestrator under cProfile,
``--profile-engine`` the first engine, and prints where their time went.

The whole measurement runs once per store (``--stores``, default memory, sqlite, postgres; the
PostgreSQL run gets a throwaway database), one after another in the same session, and a last
table gives each store's throughput as a ratio of the in-memory store's: what persistence costs.

Targets: >= 1,000 executions/s, p50 <= 5 ms, p99 <= 25 ms (the distribution issue); a durable
store keeps >= 0.7x the in-memory store's throughput (the durable-state issue).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SELF = Path(__file__).resolve()
ROOT = SELF.parents[1]
if str(ROOT) not in sys.path:  # run as ``python scripts/bench_e2e.py``: import weir from here
    sys.path.insert(0, str(ROOT))

from weir import Client  # noqa: E402

from engine.definition.parser import loads  # noqa: E402
from engine.local import run_workflow  # noqa: E402
from engine.lua import LuaSandbox  # noqa: E402
from orchestrator.errors import RpcError  # noqa: E402

WORKFLOW = """\
apiVersion: weir/v1
kind: Workflow
name: {name}
version: 1.0.0
description: e2e benchmark, three trivial Lua nodes in a chain
inputs:
  x: {{type: number}}
nodes:
  - id: a
    lua: "return {{x = inputs.x + 1}}"
  - id: b
    depends_on: [a]
    lua: "return {{x = outputs.a.x + 1}}"
  - id: c
    depends_on: [b]
    lua: "return {{x = outputs.b.x + 1}}"
outputs:
  x: ${{outputs.c.x}}
"""
INPUTS = {"x": 1}
TERMINAL = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})
TARGET_RATE, TARGET_P50_MS, TARGET_P99_MS = 1_000.0, 5.0, 25.0
STORE_TARGET = 0.7
"""Persistence may cost at most 30% of the in-memory store's throughput (durable-state issue)."""
STORES = ("memory", "sqlite", "postgres")
READY = 2  # EngineInfo.STATE_READY
STOP_TIMEOUT = 15.0
STEAL_WARNING = 0.2
"""Cores' worth of time stolen by the hypervisor beyond which figures are flagged."""
TOP = 25

WEIR = shutil.which("weir", path=str(Path(sys.executable).parent)) or "weir"
PROFILED = """\
import cProfile, os, sys
from orchestrator.cli import main
profile = cProfile.Profile()
profile.enable()
try:
    main(args=sys.argv[1:], prog_name="weir")
finally:
    profile.disable()
    profile.dump_stats(os.environ["WEIR_BENCH_PROFILE"])
"""
"""``python -c PROFILED engine``: ``weir engine`` under cProfile, dumped when it exits."""


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process, every thread (Linux ``/proc``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class Server:
    """One ``weir`` server process, its output in a log file, optionally under cProfile."""

    def __init__(
        self,
        name: str,
        command: str,
        env: dict[str, str],
        logs: Path,
        profile: Path | None,
        *,
        launcher: tuple[str, dict[str, str]] | None = None,
    ) -> None:
        """``launcher``: (a Python script run with ``-c`` that starts the ``weir`` command, the
        environment it reads), for a server run under some instrument; ``profile`` is the one
        for cProfile."""
        self.name = name
        self.profile = profile
        self.log = logs / f"{name}.log"
        self._file = self.log.open("wb")
        if profile is not None:
            launcher = (PROFILED, {"WEIR_BENCH_PROFILE": str(profile)})
        if launcher is None:
            argv = [WEIR, command]
        else:
            argv = [sys.executable, "-c", launcher[0], command]
            env = {**env, **launcher[1]}
        self.popen = subprocess.Popen(
            argv,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING", **env},
            cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches us only: the servers get one SIGTERM
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def listening(self) -> bool:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited early:\n{self.output()[-3000:]}")
        return "listening on port" in self.output()

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def finish(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic) for the process to exit, then kill it."""
        try:
            self.popen.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            print(f"{self.name} did not stop within {STOP_TIMEOUT:.0f}s: killed", file=sys.stderr)
            self.popen.kill()
            self.popen.wait(5)
        self._file.close()


class Cluster:
    """An orchestrator and two engines, started together, stopped in ``stop()``."""

    def __init__(
        self, logs: Path, store_url: str, *, profile_dir: Path | None, profile_engine: bool
    ) -> None:
        self.logs = logs
        self.store_url = store_url
        self.servers: list[Server] = []
        self.engines: list[Server] = []
        self.orchestrator: Server | None = None
        self.port = free_port()
        self._profile_dir = profile_dir
        self._profile_engine = profile_engine

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, client: Client, *, capacity: int, profile_orchestrator: bool) -> None:
        """Engines, then the orchestrator half a second later (its imports take about a second,
        so the engines usually listen before it dials them; one that does not costs a 1 s gRPC
        reconnect backoff); return when the orchestrator has both engines ready."""
        ports = []
        for i in (1, 2):
            port = free_port()
            ports.append(port)
            profile = self._profile_path(f"e{i}") if i == 1 and self._profile_engine else None
            engine = Server(
                f"e{i}",
                "engine",
                {
                    "ENGINE_ID": f"e{i}",
                    "PORT": str(port),
                    "BIND_ADDRESS": "127.0.0.1",
                    "METRICS_PORT": "0",
                    "CAPACITY": str(capacity),
                    "SHUTDOWN_GRACE_PERIOD": "2s",
                },
                self.logs,
                profile,
            )
            self.engines.append(engine)
            self.servers.append(engine)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening(self.engines), 0.5)
        self.orchestrator = Server(
            "orchestrator",
            "orchestrator",
            {
                "ORCHESTRATOR_ID": "bench",
                "GRPC_PORT": str(self.port),
                "HTTP_PORT": "0",
                "BIND_ADDRESS": "127.0.0.1",
                "DISCOVERY": "static",
                "ENGINES": ",".join(f"127.0.0.1:{p}" for p in ports),
                "ENGINE_HEALTH_CHECK_INTERVAL": "2s",
                "STORE_URL": self.store_url,
            },
            self.logs,
            self._profile_path("orchestrator") if profile_orchestrator else None,
        )
        self.servers.append(self.orchestrator)
        await self._listening(self.servers)
        await self._engines_ready(client)

    def _profile_path(self, name: str) -> Path:
        assert self._profile_dir is not None
        return self._profile_dir / f"{name}.prof"

    async def _listening(self, servers: list[Server], within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while not all(s.listening() for s in servers):
            if time.monotonic() > deadline:
                raise RuntimeError("servers did not start listening:\n" + self.dump())
            await asyncio.sleep(0.02)

    async def _engines_ready(self, client: Client, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(RpcError):
                engines = await client.engines()
                if sum(1 for e in engines if e.healthy and e.state == READY) >= 2:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("engines did not become ready:\n" + self.dump())
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        stop_all(self.servers)

    def dump(self) -> str:
        return dump(self.servers)


def stop_all(servers: Sequence[Server]) -> None:
    """SIGTERM to every process at once, then SIGKILL what is left after ``STOP_TIMEOUT``."""
    for server in servers:
        server.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for server in servers:
        server.finish(deadline)


def dump(servers: Sequence[Server]) -> str:
    """The end of every server's log, for an error message."""
    return "\n".join(f"--- {s.name}\n{s.output()[-3000:]}" for s in servers)


# --- the client side -------------------------------------------------------------------------


class Watch:
    """One WatchEvents stream on a workflow; calls ``on_end(id, at, completed)`` per execution."""

    def __init__(self, client: Client, workflow: str) -> None:
        self.client = client
        self.workflow = workflow
        self.events = 0
        self.on_end: Callable[[str, float, bool], None] | None = None
        self.failed: BaseException | None = None
        self.broken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe, then run one execution through it: when it has ended, the stream is live."""
        self._task = asyncio.create_task(self._read(), name="watch")
        ended = asyncio.Event()
        self.on_end = lambda *_: ended.set()
        await self.client.start(self.workflow, INPUTS)
        waiter = asyncio.create_task(ended.wait())
        breaker = asyncio.create_task(self.broken.wait())
        await asyncio.wait([waiter, breaker], timeout=20, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        breaker.cancel()
        self.check()
        if not ended.is_set():  # subscribed after the probe ended: one more, now live
            await self.client.start(self.workflow, INPUTS)
            await asyncio.wait_for(ended.wait(), 20)
        self.on_end = None

    async def _read(self) -> None:
        try:
            async for event in self.client.events(workflow=self.workflow):
                self.events += 1
                if event.type in TERMINAL and self.on_end is not None:
                    self.on_end(
                        event.execution_id, time.monotonic(), event.type == "execution.completed"
                    )
            raise RuntimeError("the orchestrator ended the WatchEvents stream")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ABORTED = this client fell behind (Lagged)
            self.failed = exc
            self.broken.set()

    def check(self) -> None:
        if self.failed is not None:
            raise RuntimeError(f"WatchEvents stream failed: {self.failed}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Driver:
    """One client process's part of a phase: its own channel, workflow and watch stream."""

    def __init__(self, address: str, workflow: str) -> None:
        self.client = Client(address, timeout=30.0)
        self.workflow = workflow
        self.watch = Watch(self.client, workflow)

    async def open(self) -> None:
        await self.watch.start()

    async def close(self) -> None:
        await self.watch.stop()
        await self.client.close()

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        if command["phase"] == "throughput":
            return await self.throughput(**command["args"])
        if command["phase"] == "latency":
            return await self.latency(**command["args"])
        raise ValueError(f"unknown phase {command['phase']!r}")

    async def _until_idle(self, in_flight: Callable[[], int], within: float = 30.0) -> None:
        for _ in range(int(within / 0.01)):
            if in_flight() <= 0 or self.watch.failed is not None:
                return
            await asyncio.sleep(0.01)

    async def throughput(
        self, *, concurrency: int, window: int, measure_from: float, until: float
    ) -> dict[str, Any]:
        """Keep ``window`` executions in flight until ``until``; count ends in the window."""
        room = asyncio.Semaphore(window)
        ends: list[float] = []
        counts = {"started": 0, "ended": 0, "failed": 0, "errors": 0}
        events: list[int] = []

        async def sample_events() -> None:
            for at in (measure_from, until):
                await asyncio.sleep(max(at - time.monotonic(), 0))
                events.append(self.watch.events)

        def on_end(_: str, at: float, completed: bool) -> None:
            ends.append(at)
            counts["ended"] += 1
            if not completed:
                counts["failed"] += 1
            room.release()

        async def starter() -> None:
            while time.monotonic() < until and self.watch.failed is None:
                await room.acquire()
                if time.monotonic() >= until:
                    room.release()
                    return
                try:
                    await self.client.start(self.workflow, INPUTS)
                    counts["started"] += 1
                except RpcError as exc:
                    counts["errors"] += 1
                    room.release()
                    if counts["errors"] == 1:
                        print(f"StartExecution failed: {exc}", file=sys.stderr)

        self.watch.on_end = on_end
        breaker = asyncio.create_task(self._break_on_watch(room, concurrency))
        sampler = asyncio.create_task(sample_events())
        try:
            await asyncio.gather(*(starter() for _ in range(concurrency)))
            await sampler
            await self._until_idle(lambda: counts["started"] - counts["ended"])
        finally:
            breaker.cancel()
            sampler.cancel()
            self.watch.on_end = None
        self.watch.check()
        span = until - measure_from
        per_second = [0] * max(int(span), 1)
        for t in ends:
            if measure_from <= t < until:
                per_second[min(int(t - measure_from), len(per_second) - 1)] += 1
        completed = sum(per_second)
        return {
            **counts,
            "completed": completed,
            "per_second": per_second,
            "rate": completed / span,
            "events_per_s": (events[1] - events[0]) / span,
        }

    async def _break_on_watch(self, room: asyncio.Semaphore, starters: int) -> None:
        await self.watch.broken.wait()
        for _ in range(starters):  # unblock the starters, which then see the failure
            room.release()

    async def latency(
        self, *, rate: float, start_at: float, measure_from: float, until: float
    ) -> dict[str, Any]:
        """Open loop: start number i at ``start_at + i / rate`` whatever has finished."""
        sent: dict[str, tuple[float, float]] = {}  # id -> (scheduled, called)
        early: dict[str, float] = {}  # ended before its StartExecution call returned
        from_call: list[float] = []
        from_schedule: list[float] = []
        when: list[float] = []  # scheduled start, seconds into the measured span
        counts = {"started": 0, "ended": 0, "failed": 0, "errors": 0}

        def record(scheduled: float, called: float, at: float) -> None:
            if scheduled >= measure_from:
                from_call.append(at - called)
                when.append(scheduled - measure_from)
                from_schedule.append(at - scheduled)

        def on_end(execution_id: str, at: float, completed: bool) -> None:
            counts["ended"] += 1
            if not completed:
                counts["failed"] += 1
            times = sent.pop(execution_id, None)
            if times is None:
                early[execution_id] = at
            else:
                record(*times, at)

        async def one(scheduled: float) -> None:
            called = time.monotonic()
            try:
                execution = await self.client.start(self.workflow, INPUTS)
            except RpcError:
                counts["errors"] += 1
                return
            counts["started"] += 1
            at = early.pop(execution.id, None)
            if at is None:
                sent[execution.id] = (scheduled, called)
            else:
                record(scheduled, called, at)

        self.watch.on_end = on_end
        tasks: set[asyncio.Task[None]] = set()
        try:
            i = 0
            while self.watch.failed is None:
                scheduled = start_at + i / rate
                if scheduled >= until:
                    break
                delay = scheduled - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one(scheduled))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            await asyncio.gather(*tasks)
            await self._until_idle(lambda: counts["started"] - counts["ended"])
        finally:
            self.watch.on_end = None
        self.watch.check()
        return {**counts, "from_call": from_call, "from_schedule": from_schedule, "when": when}


async def worker_main() -> None:
    """``bench_e2e.py --worker ADDRESS WORKFLOW``: a client process driven over stdin/stdout."""
    address, workflow = sys.argv[2], sys.argv[3]
    driver = Driver(address, workflow)
    loop = asyncio.get_running_loop()
    try:
        await driver.open()
        print("ready", flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "quit":
                return
            result = await driver.run(json.loads(line))
            print(json.dumps(result), flush=True)
    finally:
        await driver.close()


@dataclass
class Clients:
    """The client side of the benchmark: this process, or ``n`` worker processes."""

    address: str
    workflows: list[str]
    local: Driver | None = None
    workers: list[asyncio.subprocess.Process] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers] if self.workers else [os.getpid()]

    async def open(self) -> None:
        if len(self.workflows) == 1:
            self.local = Driver(self.address, self.workflows[0])
            await self.local.open()
            return
        for workflow in self.workflows:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SELF),
                "--worker",
                self.address,
                workflow,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 26,  # a result line holds every latency sample
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                cwd=ROOT,
                start_new_session=True,
            )
            self.workers.append(proc)
        for proc in self.workers:
            line = await asyncio.wait_for(self._readline(proc), 60)
            if line != "ready":
                raise RuntimeError(f"client process {proc.pid} did not start: {line!r}")

    @staticmethod
    async def _readline(proc: asyncio.subprocess.Process) -> str:
        assert proc.stdout is not None
        return (await proc.stdout.readline()).decode().strip()

    async def run(self, phase: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        command = {"phase": phase, "args": args}
        if self.local is not None:
            return [await self.local.run(command)]
        for proc in self.workers:
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(command) + "\n").encode())
            await proc.stdin.drain()
        results = []
        for proc in self.workers:
            line = await self._readline(proc)
            if not line:
                raise RuntimeError(f"client process {proc.pid} died during the {phase} phase")
            results.append(json.loads(line))
        return results

    async def close(self) -> None:
        if self.local is not None:
            await self.local.close()
        for proc in self.workers:
            if proc.returncode is None and proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.write(b"quit\n")
                    proc.stdin.close()
        for proc in self.workers:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# --- measurements ----------------------------------------------------------------------------


def latency_slices(
    when: list[float], latencies: list[float], span: float, count: int = 5
) -> list[tuple[float, float, float, float]]:
    """(from s, to s, p50 ms, p99 ms) for ``count`` equal slices of the latency phase."""
    if span < 2 * count:
        return []
    step = span / count
    out = []
    for i in range(count):
        part = [x for w, x in zip(when, latencies, strict=True) if i * step <= w < (i + 1) * step]
        out.append(
            (
                round(i * step, 1),
                round((i + 1) * step, 1),
                percentile(part, 50) * 1e3,
                percentile(part, 99) * 1e3,
            )
        )
    return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def inprocess_rate(concurrency: int, rounds: int, seconds: float) -> tuple[float, float]:
    """(best, median) executions/s of the workflow through ``run_workflow`` in this process."""
    sandbox = LuaSandbox()
    definition = loads(WORKFLOW.format(name="bench-e2e"), sandbox=sandbox)
    try:
        await run_workflow(definition, INPUTS, sandbox=sandbox)  # warm-up: compile caches
        rates = []
        for _ in range(rounds):
            done = 0
            until = time.monotonic() + seconds

            async def loop(until: float) -> None:
                nonlocal done
                while time.monotonic() < until:
                    result = await run_workflow(definition, INPUTS, sandbox=sandbox)
                    assert result.status == "completed", result.error
                    done += 1

            began = time.monotonic()
            await asyncio.gather(*(loop(until) for _ in range(concurrency)))
            rates.append(done / (time.monotonic() - began))
    finally:
        sandbox.close()
    return max(rates), statistics.median(rates)


async def unary_rate(client: Client, concurrency: int, seconds: float) -> float:
    """ListEngines calls/s: what the orchestrator's gRPC server costs per call, doing nothing."""
    done = 0
    until = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < until:
            await client.engines()
            done += 1

    began = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done / (time.monotonic() - began)


def machine_cpu() -> tuple[float, float, float] | None:
    """(busy, idle, steal) seconds of every core since boot (Linux ``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq
    return busy / _TICK, (idle + iowait) / _TICK, steal / _TICK


async def cpu_during(pids: dict[str, int], start: float, end: float) -> dict[str, float]:
    """Fraction of one core each process used between the monotonic times ``start``, ``end``,
    and the whole machine's ``busy``, ``idle`` and ``steal`` (stolen by the hypervisor)."""
    await asyncio.sleep(max(start - time.monotonic(), 0))
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    machine_before = machine_cpu()
    began = time.monotonic()
    await asyncio.sleep(max(end - time.monotonic(), 0))
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    machine_after = machine_cpu()
    span = time.monotonic() - began
    shares = {
        name: (after[name] - b) / span  # type: ignore[operator]
        for name, b in before.items()
        if b is not None and after[name] is not None
    }
    if machine_before is not None and machine_after is not None:
        for key, a, b in zip(("busy", "idle", "steal"), machine_after, machine_before, strict=True):
            shares[f"machine {key}"] = (a - b) / span
    return shares


def machine_of(shares: dict[str, float]) -> dict[str, float]:
    """Move the whole-machine figures out of ``cpu_during``'s result."""
    return {k.removeprefix("machine "): shares.pop(k) for k in list(shares) if k[:8] == "machine "}


def machine_text(machine: dict[str, float], ours: float | None = None) -> str:
    text = (
        f"busy {machine['busy'] * 100:.0f}%, idle {machine['idle'] * 100:.0f}%, "
        f"stolen by the hypervisor {machine['steal'] * 100:.0f}%"
    )
    if ours is not None:
        others = max(machine["busy"] - ours, 0.0)
        text += f"; processes not ours {others * 100:.0f}%"
    if machine["steal"] > STEAL_WARNING:
        text += "\n  WARNING: the host ran other VMs on our cores: these figures are unreliable"
    return text


@dataclass
class Settings:
    duration: float
    warmup: float
    latency_duration: float
    concurrency: int
    window: int
    clients: int
    capacity: int
    baseline_concurrency: int
    baseline_rounds: int
    baseline_seconds: float
    rpc_seconds: float
    latency_rate: float | None
    profile: bool
    profile_engine: bool
    profile_dir: Path | None
    quick: bool
    stores: tuple[str, ...]
    rounds: int
    postgres_admin: str


def settings_from(args: argparse.Namespace) -> Settings:
    quick = bool(args.quick)
    duration = args.duration if args.duration is not None else (0.6 if quick else 30.0)
    return Settings(
        duration=duration,
        warmup=args.warmup if args.warmup is not None else (0.2 if quick else 3.0),
        latency_duration=(
            args.latency_duration
            if args.latency_duration is not None
            else (0.5 if quick else min(15.0, duration))
        ),
        concurrency=args.concurrency,
        window=args.window,
        clients=args.clients,
        capacity=args.capacity,
        baseline_concurrency=args.baseline_concurrency,
        baseline_rounds=2 if quick else 5,
        baseline_seconds=0.15 if quick else 1.0,
        rpc_seconds=0.2 if quick else 2.0,
        latency_rate=args.latency_rate,
        profile=args.profile,
        profile_engine=args.profile_engine,
        profile_dir=Path(args.profile_dir) if args.profile_dir else None,
        quick=quick,
        stores=tuple(x.strip() for x in args.stores.split(",") if x.strip()),
        rounds=max(args.rounds, 1),
        postgres_admin=args.postgres_admin,
    )


@dataclass
class Results:
    baseline: tuple[float, float] = (0.0, 0.0)
    """In-process executions/s: best, median."""
    rpc: float = 0.0
    rate: float = 0.0
    per_second: list[int] = field(default_factory=list)
    events: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    machine: dict[str, float] = field(default_factory=dict)
    latency_rate: float = 0.0
    from_call: list[float] = field(default_factory=list)
    from_schedule: list[float] = field(default_factory=list)
    when: list[float] = field(default_factory=list)
    machine_latency: dict[str, float] = field(default_factory=dict)
    failed: int = 0
    errors: int = 0
    boot: float = 0.0
    elapsed: float = 0.0


async def run(s: Settings) -> None:
    began = time.monotonic()
    baseline = await inprocess_rate(s.baseline_concurrency, s.baseline_rounds, s.baseline_seconds)
    logs = Path(tempfile.mkdtemp(prefix="weir-bench-e2e-"))
    results: list[dict[str, Results]] = []
    for round_ in range(1, s.rounds + 1):
        results.append({})
        for store in s.stores:
            started = time.monotonic()
            r = Results(baseline=baseline)
            results[-1][store] = r
            name = store if s.rounds == 1 else f"{store}, round {round_}"
            async with store_url(store, logs, s.postgres_admin) as url:
                cluster = await run_cluster(s, r, logs / f"{store}-{round_}", url)
            r.elapsed = time.monotonic() - started
            report(s, r, name)
            for server in cluster.servers:
                if server.profile is not None:
                    print_profile(f"{server.name} ({name})", server.profile)
    if len(s.stores) > 1:
        report_stores(results)
    print(f"server logs in {logs}; whole e2e run {time.monotonic() - began:.1f} s")


@contextlib.asynccontextmanager
async def store_url(store: str, logs: Path, postgres_admin: str) -> AsyncIterator[str]:
    """The orchestrator's STORE_URL for ``store``; PostgreSQL gets a throwaway database."""
    if store == "memory":
        yield "memory://"
    elif store == "sqlite":
        (logs / store).mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{logs / store / 'weir.db'}"
    else:
        import asyncpg  # only needed here

        name = f"weir_bench_{os.getpid()}_{int(time.time())}"
        admin = await asyncpg.connect(postgres_admin, timeout=10)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield postgres_admin.rsplit("/", 1)[0] + f"/{name}"
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def run_cluster(s: Settings, r: Results, logs: Path, url: str) -> Cluster:
    profile_dir = s.profile_dir or logs
    for folder in (logs, profile_dir):
        folder.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(logs, url, profile_dir=profile_dir, profile_engine=s.profile_engine)
    clients: Clients | None = None
    try:
        async with Client(cluster.address, timeout=30.0) as admin:
            booting = time.monotonic()
            await cluster.start(admin, capacity=s.capacity, profile_orchestrator=s.profile)
            r.boot = time.monotonic() - booting
            workflows = [f"bench-e2e-{i}" for i in range(s.clients)]
            for name in workflows:
                await admin.register(WORKFLOW.format(name=name))
            r.rpc = await unary_rate(admin, s.concurrency, s.rpc_seconds)
            clients = Clients(cluster.address, workflows)
            await clients.open()
            await measure(s, r, cluster, clients)
            await clients.close()
            clients = None
    finally:
        if clients is not None:
            with contextlib.suppress(Exception):
                await clients.close()
        cluster.stop()
    return cluster


async def measure(s: Settings, r: Results, cluster: Cluster, clients: Clients) -> None:
    """The throughput phase, then the latency phase at half its rate."""
    assert cluster.orchestrator is not None
    pids = {
        "orchestrator": cluster.orchestrator.pid,
        **{e.name: e.pid for e in cluster.engines},
        **{
            ("client" if s.clients == 1 else f"client{i}"): pid
            for i, pid in enumerate(clients.pids)
        },
    }
    measure_from = time.monotonic() + s.warmup
    until = measure_from + s.duration
    cpu = asyncio.create_task(cpu_during(pids, measure_from, until))
    results = await clients.run(
        "throughput",
        {
            "concurrency": s.concurrency,
            "window": s.window,
            "measure_from": measure_from,
            "until": until,
        },
    )
    r.cpu = await cpu
    r.machine = machine_of(r.cpu)
    r.rate = sum(x["rate"] for x in results)
    r.per_second = [sum(c) for c in zip(*(x["per_second"] for x in results), strict=True)]
    r.events = sum(x["events_per_s"] for x in results)

    r.latency_rate = s.latency_rate or max(r.rate / 2, 1.0)
    start_at = time.monotonic() + 0.05
    measure_from = start_at + (0.1 if s.quick else 1.0)
    until = measure_from + s.latency_duration
    cpu = asyncio.create_task(cpu_during(pids, measure_from, until))
    latency = await clients.run(
        "latency",
        {
            "rate": r.latency_rate / s.clients,
            "start_at": start_at,
            "measure_from": measure_from,
            "until": until,
        },
    )
    r.machine_latency = machine_of(await cpu)
    r.from_call = [v for x in latency for v in x["from_call"]]
    r.from_schedule = [v for x in latency for v in x["from_schedule"]]
    r.when = [v for x in latency for v in x["when"]]
    r.failed = sum(x["failed"] for x in [*results, *latency])
    r.errors = sum(x["errors"] for x in [*results, *latency])


def report(s: Settings, r: Results, store: str) -> None:
    p50, p99 = percentile(r.from_call, 50) * 1e3, percentile(r.from_call, 99) * 1e3
    s50, s99 = percentile(r.from_schedule, 50) * 1e3, percentile(r.from_schedule, 99) * 1e3
    base_best, base_median = r.baseline
    cores = os.cpu_count() or 1
    total = sum(r.cpu.values())
    cpu_ms = total / r.rate * 1e3 if r.rate else float("nan")
    who = "this process" if s.clients == 1 else f"{s.clients} client processes, a workflow each"
    print(
        f"\ne2e, store {store}: orchestrator + 2 engines (CAPACITY={s.capacity}), "
        f"3-node Lua chain; client: "
        f"{who},\n{s.concurrency} start coroutines and {s.window} executions in flight "
        f"per client; {s.duration:g} s measured after {s.warmup:g} s warm-up"
        + (" [servers under cProfile: slower]" if s.profile or s.profile_engine else "")
    )
    print(
        f"{'benchmark':<27} {'value':>8} {'target':>9}     {'baseline':>8} {'ratio':>6}  "
        "baseline is"
    )
    rows: list[tuple[str, float, str, float | None, float | None, str]] = [
        (
            "throughput, executions/s",
            r.rate,
            ">=",
            TARGET_RATE,
            base_best,
            "run_workflow in-process",
        ),
        (f"latency p50 at {r.latency_rate:.0f}/s, ms", p50, "<=", TARGET_P50_MS, None, ""),
        (f"latency p99 at {r.latency_rate:.0f}/s, ms", p99, "<=", TARGET_P99_MS, None, ""),
        (
            "cpu per execution, ms",
            cpu_ms,
            "",
            None,
            1e3 / base_best if base_best else None,
            "run_workflow in-process (1 core)",
        ),
        ("bare unary RPC, calls/s", r.rpc, "", None, None, "(ListEngines, same coroutines)"),
    ]
    for label, value, op, target, base, base_label in rows:
        if target is None:
            goal, verdict = "-", ""
        else:
            goal = f"{op} {target:.0f}"
            met = value >= target if op == ">=" else value <= target
            verdict = "ok" if met else "MISS"
        ratio = f"{value / base:>5.2f}x" if base else ""
        digits = 2 if value < 10 else 1 if value < 100 else 0
        base_text = f"{base:>8.{2 if base < 10 else 0}f}" if base else ""
        print(
            f"{label:<27} {value:>8.{digits}f} {goal:>9} {verdict:<4}{base_text:>9} {ratio:>6}  "
            f"{base_label}".rstrip()
        )
    per_execution = (lambda share: f" = {share / r.rate * 1e3:.2f} ms") if r.rate else str
    print(
        "\ncpu during the throughput window, % of one core = cpu ms per execution:\n  "
        + ", ".join(f"{n} {share * 100:.0f}%{per_execution(share)}" for n, share in r.cpu.items())
        + f"; total {total * 100:.0f}% of {cores * 100}%{per_execution(total)}"
    )
    if cpu_ms == cpu_ms:
        print(
            f"  so {cores} cores busy with nothing else would top out near "
            f"{cores / cpu_ms * 1e3:.0f} executions/s"
        )
    if r.machine:
        print(f"  whole machine: {machine_text(r.machine, total)}")
    if len(r.per_second) >= 4:
        print(
            f"  completions per second: min {min(r.per_second)}, "
            f"median {statistics.median(r.per_second):.0f}, max {max(r.per_second)}: "
            + " ".join(str(n) for n in r.per_second)
        )
    print(
        f"  watch stream: {r.events:.0f} events/s to the client"
        f" ({r.events / r.rate if r.rate else 0:.1f} per execution)"
    )
    print(
        f"latency from the scheduled start (open loop): p50 {s50:.1f} ms, p99 {s99:.1f} ms; "
        f"{len(r.from_call)} executions measured"
    )
    slices = latency_slices(r.when, r.from_call, s.latency_duration)
    if slices:
        print(
            "  p50/p99 ms by slice: "
            + ", ".join(f"{t0:g}-{t1:g} s {a:.1f}/{b:.1f}" for t0, t1, a, b in slices)
        )
    if r.machine_latency:
        print(f"  whole machine: {machine_text(r.machine_latency)}")
    print(
        f"in-process baseline: best {base_best:.0f}, median {base_median:.0f} executions/s "
        f"({s.baseline_concurrency} coroutines, {s.baseline_rounds} x {s.baseline_seconds:g} s)"
    )
    if r.failed or r.errors:
        print(f"WARNING: {r.failed} executions failed, {r.errors} StartExecution calls failed")
    print(f"cluster up in {r.boot:.1f} s; this store's run {r.elapsed:.1f} s")


def report_stores(rounds: list[dict[str, Results]]) -> None:
    """Persistence's cost: each store's throughput as a ratio of the in-memory store's run of
    the same round (the stores alternate within a round, so the machine's drift hits both)."""
    print(
        f"\nstores ({len(rounds)} round(s), the stores one after another in each): target >= "
        f"{STORE_TARGET:.2f}x the in-memory store's throughput; median (min-max) over rounds"
    )
    print(
        f"{'store':<10} {'exec/s':>16} {'ratio to memory':>22} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'orch cpu ms':>12}"
    )
    for store in rounds[0]:
        runs = [round_[store] for round_ in rounds]
        rates = [r.rate for r in runs]
        ratios = [
            r.rate / round_["memory"].rate
            for r, round_ in zip(runs, rounds, strict=True)
            if "memory" in round_ and round_["memory"].rate
        ]
        if ratios and store != "memory":
            ratio = statistics.median(ratios)
            verdict = " ok" if ratio >= STORE_TARGET else " MISS"
            ratio_text = f"{ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        else:
            verdict, ratio_text = "", ""
        cpu = [r.cpu.get("orchestrator", 0.0) / r.rate * 1e3 for r in runs if r.rate]
        print(
            f"{store:<10} {statistics.median(rates):>6.0f} ({min(rates):.0f}-{max(rates):.0f})"
            f" {ratio_text:>22}"
            f" {statistics.median(percentile(r.from_call, 50) * 1e3 for r in runs):>7.1f}"
            f" {statistics.median(percentile(r.from_call, 99) * 1e3 for r in runs):>7.1f}"
            f" {statistics.median(cpu) if cpu else float('nan'):>12.2f}{verdict}"
        )


def print_profile(name: str, path: Path) -> None:
    if not path.exists():
        print(f"\nno profile for {name}: {path} was not written (did it stop cleanly?)")
        return
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = stats.stats  # type: ignore[attr-defined]

    def label(key: tuple[str, int, str]) -> str:
        file, line, func = key
        if file == "~":
            return func
        parts = Path(file).parts
        short = "/".join(parts[-2:]) if len(parts) > 1 else file
        return f"{short}:{line}({func})"

    for sort, column in (("tottime", 2), ("cumulative", 3)):
        print(f"\n{name} profile ({path}), total {total:.1f} s, top {TOP} by {sort}:")
        print(f"{'tottime':>8} {'%':>5} {'cumtime':>8} {'%':>5} {'calls':>9}  function")
        top = sorted(entries.items(), key=lambda kv: kv[1][column], reverse=True)[:TOP]
        for key, (_, calls, tt, ct, _) in top:
            print(
                f"{tt:>8.2f} {tt / total * 100:>5.1f} {ct:>8.2f} {ct / total * 100:>5.1f} "
                f"{calls:>9}  {label(key)}"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The e2e options, shared with ``scripts/bench.py``."""
    group = parser.add_argument_group("e2e (orchestrator + 2 engines)")
    group.add_argument(
        "--duration", type=float, help="throughput seconds measured (30; --quick: 0.6)"
    )
    group.add_argument("--warmup", type=float, help="seconds before measuring (3; --quick: 0.2)")
    group.add_argument(
        "--latency-duration", type=float, help="latency seconds measured (15; --quick: 0.5)"
    )
    group.add_argument(
        "--latency-rate", type=float, help="starts/s of the latency phase (half the throughput)"
    )
    group.add_argument(
        "--concurrency", type=int, default=32, help="StartExecution coroutines per client"
    )
    group.add_argument(
        "--window", type=int, default=256, help="executions in flight per client (throughput)"
    )
    group.add_argument(
        "--clients", type=int, default=1, help="client processes (1: this process is the client)"
    )
    group.add_argument("--capacity", type=int, default=2000, help="CAPACITY of each engine")
    group.add_argument(
        "--baseline-concurrency", type=int, default=32, help="run_workflow coroutines"
    )
    group.add_argument(
        "--stores",
        default=",".join(STORES),
        help="STORE_URL kinds to run, one after another: memory, sqlite, postgres (all three)",
    )
    group.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the stores this many times, alternating, and report medians (1)",
    )
    group.add_argument(
        "--postgres-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where the throwaway PostgreSQL database is created",
    )
    group.add_argument("--profile", action="store_true", help="run the orchestrator under cProfile")
    group.add_argument("--profile-engine", action="store_true", help="run engine e1 under cProfile")
    group.add_argument("--profile-dir", help="where the .prof files go (default: the log dir)")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through ``run``'s finally: the servers are stopped


def main(args: argparse.Namespace) -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    asyncio.run(run(settings_from(args)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(worker_main())
    else:
        cli = argparse.ArgumentParser(
            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        cli.add_argument("--quick", action="store_true", help="a few seconds, fewer executions")
        add_arguments(cli)
        main(cli.parse_args())
