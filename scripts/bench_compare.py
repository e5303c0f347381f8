"""Weir beside Dask and Prefect, on the same work (``scripts/bench compare``; not a test).

Four systems run in one session:

* ``weir run``: weir's engine in one process, as ``weir run FILE`` runs a workflow
  (``engine.local.run_workflow``, with a long-lived Lua sandbox), no server;
* ``weir cluster``: ``weir orchestrator`` and two ``weir engine`` processes on 127.0.0.1 (the
  cluster of ``scripts/bench e2e``, in-memory store unless ``--store``); a DAG is one execution,
  timed from the StartExecution call to its end event at the client;
* ``Dask``: ``distributed.LocalCluster`` with two worker processes;
* ``Prefect``: Prefect 3 with its own local server (SQLite).

Dask and Prefect are installed into their own virtualenv (``.venv-peers``, pinned by
``scripts/bench_peers.txt``), never into the project's, and driven by ``scripts/bench_peers.py``
over JSON lines on stdin/stdout; ``weir run`` goes through the same protocol from
``scripts/bench_weir_worker.py``, so no system shares a process with the driver.

The work:

* DAG shapes of no-op tasks, microseconds per task (wall time of the run / tasks): a fan-out/fan-in
  of 1,000 and of 10,000 tasks (root -> n - 2 tasks -> sink) and a 1,000-deep chain;
* end to end, one execution is a chain of three tasks (x + 1 each; Lua nodes in weir, Python
  functions in the peers): executions/s with a window of executions in flight, then p50/p99
  latency from the start call to the result, open loop at half that rate.

Every round runs each system once per workload, the order rotated round by round so that the
machine's drift falls on every system alike, after one warm-up run of every workload on every
system (the throughput phase has its own warm-up seconds), and each sample waits for the machine
to go quiet first. Each figure is the median of the rounds
with its min and max; each ratio is taken within a round, then summarised the same way.

Targets (issue 7): weir >= 50x faster per task than Dask and >= 1,000x faster than Prefect on
the DAG shapes, through its own orchestrator and engines; >= 1,000 executions/s end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import bench
import bench_e2e
from bench_e2e import ROOT, TERMINAL, percentile
from weir import Client

from engine.definition import Workflow

SELF = Path(__file__).resolve()
PEERS = ("dask", "prefect")
SYSTEMS = ("weir", "weir-cluster", "dask", "prefect")
LABELS = {"weir": "weir run", "weir-cluster": "weir cluster", "dask": "Dask", "prefect": "Prefect"}
WEIR_SYSTEMS = ("weir", "weir-cluster")
WINDOWS = {"weir": 64, "weir-cluster": 256, "dask": 64, "prefect": 16}
"""Executions in flight in the throughput phase: roughly what gives each system its best rate."""
PER_TASK_TARGETS = {"dask": 50.0, "prefect": 1_000.0}
RATE_TARGET = 1_000.0
E2E_NAME = "compare-e2e"
REQUIREMENTS = SELF.parent / "bench_peers.txt"


@dataclass(frozen=True)
class Shape:
    """One DAG workload: ``fanout`` (root -> n - 2 -> sink) or ``chain`` of ``tasks`` no-ops."""

    kind: str
    tasks: int

    @property
    def label(self) -> str:
        return f"{'fan-out/in' if self.kind == 'fanout' else 'chain'} {self.tasks:,}"

    @property
    def workflow(self) -> str:
        return f"compare-{self.kind}-{self.tasks}"

    def definition(self) -> Workflow:
        build = bench.wide_workflow if self.kind == "fanout" else bench.deep_workflow
        return build(self.tasks, self.workflow)

    def command(self) -> dict[str, Any]:
        return {"op": "dag", "shape": self.kind, "tasks": self.tasks}


class System(Protocol):
    """A system under test: answers the commands of ``scripts/bench_peers.py``'s protocol."""

    name: str
    info: dict[str, Any]

    async def open(self) -> None: ...

    async def call(self, command: dict[str, Any], within: float) -> dict[str, Any]: ...

    async def close(self) -> None: ...


# --- systems ---------------------------------------------------------------------------------


class Worker:
    """A system in a child process, driven over JSON lines (the peers, and ``weir run``)."""

    def __init__(self, name: str, argv: list[str], logs: Path, env: dict[str, str]) -> None:
        self.name = name
        self.info: dict[str, Any] = {}
        self.log = logs / f"{name}.log"
        self._argv = argv
        self._env = env
        self._proc: asyncio.subprocess.Process | None = None

    async def open(self) -> None:
        with self.log.open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                limit=1 << 26,  # a latency reply holds every sample
                env={**os.environ, **self._env},
                cwd=ROOT,
                start_new_session=True,  # Ctrl-C reaches the driver only, which closes us
            )
        self.info = await self._reply(180.0)

    async def call(self, command: dict[str, Any], within: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write((json.dumps(command) + "\n").encode())
        await self._proc.stdin.drain()
        return await self._reply(within)

    async def _reply(self, within: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), within)
        except TimeoutError:
            raise RuntimeError(f"{self.name}: no answer within {within:.0f} s") from None
        if not line:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited; its log ({self.log}) ends:\n{tail}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']} (log: {self.log})")
        return reply

    async def close(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.write(b'{"op": "quit"}\n')
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


class WeirCluster:
    """An orchestrator and two engines (bench_e2e's ``Cluster``), driven from this process."""

    name = "weir-cluster"

    def __init__(
        self, logs: Path, store: str, postgres_admin: str, shapes: list[Shape], profile: bool
    ) -> None:
        self.info: dict[str, Any] = {"store": store}
        self._postgres_admin = postgres_admin
        self._logs = logs
        self._store = store
        self._shapes = shapes
        self._profile = profile
        self._stack = contextlib.AsyncExitStack()
        self.cluster: bench_e2e.Cluster | None = None
        self._admin: Client | None = None
        self._driver: bench_e2e.Driver | None = None

    async def open(self) -> None:
        url = await self._stack.enter_async_context(
            bench_e2e.store_url(self._store, self._logs, self._postgres_admin)
        )
        self.cluster = bench_e2e.Cluster(
            self._logs, url, profile_dir=self._logs, profile_engine=self._profile
        )
        self._stack.callback(self.cluster.stop)
        self._admin = await self._stack.enter_async_context(
            Client(self.cluster.address, timeout=120.0)
        )
        await self.cluster.start(self._admin, capacity=2000, profile_orchestrator=self._profile)
        for shape in self._shapes:
            await self._admin.register(shape.definition().to_yaml())
        await self._admin.register(bench_e2e.WORKFLOW.format(name=E2E_NAME))
        self._driver = bench_e2e.Driver(self.cluster.address, E2E_NAME)
        await self._driver.open()
        self._stack.push_async_callback(self._driver.close)

    async def call(self, command: dict[str, Any], within: float) -> dict[str, Any]:
        return await asyncio.wait_for(self._call(command), within)

    async def _call(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._admin is not None and self._driver is not None
        op = command["op"]
        if op == "dag":
            shape = Shape(command["shape"], command["tasks"])
            began = time.perf_counter()
            # One engine runs every execution of a shape (a routing key pins it), so the
            # warm-up left the definition parsed in its cache, as in a long-running deployment.
            execution = await self._admin.start(shape.workflow, routing_key=shape.workflow)
            async for event in self._admin.events(execution_id=execution.id, types=[*TERMINAL]):
                if event.type != "execution.completed":
                    raise RuntimeError(f"weir cluster: {shape.label} ended with {event.type}")
                break
            return {"seconds": time.perf_counter() - began, "tasks": shape.tasks}
        now = time.monotonic()
        if op == "throughput":
            measure_from = now + command["warmup"]
            result = await self._driver.throughput(
                concurrency=32,
                window=command["window"],
                measure_from=measure_from,
                until=measure_from + command["seconds"],
            )
            return {k: result[k] for k in ("completed", "failed", "rate")}
        if op == "latency":
            result = await self._driver.latency(
                rate=command["rate"], start_at=now, measure_from=now, until=now + command["seconds"]
            )
            return {
                "latencies_ms": [x * 1e3 for x in result["from_call"]],
                "started": result["started"],
                "failed": result["failed"],
            }
        raise ValueError(f"unknown op {op!r}")

    async def close(self) -> None:
        await self._stack.aclose()


# --- the peers' virtualenv -------------------------------------------------------------------


def peers_python(venv: Path) -> Path:
    """The peers' interpreter, (re)creating ``venv`` from ``REQUIREMENTS`` when they changed."""
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    print(f"installing Dask and Prefect into {venv} (not the project's venv)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True
    )
    stamp.write_text(digest + "\n")
    return python


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Plan:
    shapes: list[Shape]
    systems: list[str]
    runs: int
    seconds: float
    warmup: float
    latency_seconds: float
    windows: dict[str, int]
    max_tasks: dict[str, int]
    e2e: bool
    settle: float


@dataclass
class Samples:
    """Per (workload, system): one figure per round, None where the system sat that round out."""

    dag: dict[tuple[Shape, str], list[float | None]] = field(default_factory=dict)
    rate: dict[str, list[float]] = field(default_factory=dict)
    p50: dict[str, list[float]] = field(default_factory=dict)
    p99: dict[str, list[float]] = field(default_factory=dict)
    startup: dict[str, float] = field(default_factory=dict)


def rotated(systems: list[str], round_: int) -> list[str]:
    k = round_ % len(systems)
    return systems[k:] + systems[:k]


async def settle(most: float, quiet: float = 0.3) -> float:
    """Wait (at most ``most`` seconds) until the machine uses under ``quiet`` cores: Prefect's
    server goes on digesting a run's events long after the run returned, and that work must
    not land on the next system's figure. Returns the seconds waited."""
    began = time.monotonic()
    before = bench_e2e.machine_cpu()
    while before is not None and time.monotonic() - began < most:
        await asyncio.sleep(0.5)
        after = bench_e2e.machine_cpu()
        if after is None or (after[0] - before[0]) / 0.5 < quiet:
            break
        before = after
    return time.monotonic() - began


def dag_timeout(tasks: int) -> float:
    return 120.0 + tasks * 0.5  # Prefect: ~40 ms a task


async def measure(plan: Plan, systems: dict[str, System], out: Samples) -> None:
    for name, system in systems.items():  # warm-up: imports, caches, connections
        for shape in plan.shapes:
            if shape.tasks <= plan.max_tasks.get(name, shape.tasks):
                await settle(plan.settle)
                await system.call(shape.command(), dag_timeout(shape.tasks))
        progress(f"{LABELS[name]} warmed up")
    for shape in plan.shapes:
        for round_ in range(plan.runs):
            for name in rotated(plan.systems, round_):
                figures = out.dag.setdefault((shape, name), [])
                if shape.tasks > plan.max_tasks.get(name, shape.tasks):
                    figures.append(None)
                    continue
                await settle(plan.settle)
                reply = await systems[name].call(shape.command(), dag_timeout(shape.tasks))
                figures.append(reply["seconds"] / shape.tasks * 1e6)
                progress(f"{shape.label}, round {round_ + 1}: {LABELS[name]} {figures[-1]:,.1f} us")
    if not plan.e2e:
        return
    for round_ in range(plan.runs):
        for name in rotated(plan.systems, round_):
            await settle(plan.settle)
            throughput = await systems[name].call(
                {
                    "op": "throughput",
                    "seconds": plan.seconds,
                    "warmup": plan.warmup,
                    "window": plan.windows[name],
                },
                plan.seconds + plan.warmup + 120,
            )
            rate = max(throughput["rate"] / 2, 0.5)
            latency = await systems[name].call(
                {"op": "latency", "rate": rate, "seconds": plan.latency_seconds},
                plan.latency_seconds + 120,
            )
            samples = [x / 1e3 for x in latency["latencies_ms"]]
            out.rate.setdefault(name, []).append(throughput["rate"])
            out.p50.setdefault(name, []).append(percentile(samples, 50) * 1e3)
            out.p99.setdefault(name, []).append(percentile(samples, 99) * 1e3)
            progress(
                f"end to end, round {round_ + 1}: {LABELS[name]} {throughput['rate']:,.1f}/s, "
                f"p50 {out.p50[name][-1]:,.1f} ms, p99 {out.p99[name][-1]:,.1f} ms"
            )


def progress(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> Samples:
    plan = plan_from(args)
    logs = Path(tempfile.mkdtemp(prefix="weir-bench-compare-"))
    python = peers_python(Path(args.peers_venv)) if set(plan.systems) & set(PEERS) else None
    profile = str(logs / "weir-run.prof") if args.profile else None
    project_env = {"PYTHONPATH": f"{ROOT}:{SELF.parent}"}
    systems: dict[str, System] = {}
    out = Samples()
    async with contextlib.AsyncExitStack() as stack:
        for name in plan.systems:
            if name == "weir":
                worker = SELF.parent / "bench_weir_worker.py"
                argv = [sys.executable, str(worker), *([profile] if profile else [])]
                systems[name] = Worker(name, argv, logs, project_env)
            elif name == "weir-cluster":
                systems[name] = WeirCluster(
                    logs, args.store, args.postgres_admin, plan.shapes, args.profile
                )
            else:
                assert python is not None
                argv = [str(python), str(SELF.parent / "bench_peers.py"), name]
                env = {"PYTHONPATH": ""}
                if name == "prefect" and args.prefect_database == "postgres":
                    url = await stack.enter_async_context(
                        bench_e2e.store_url("postgres", logs, args.postgres_admin)
                    )
                    env["PREFECT_API_DATABASE_CONNECTION_URL"] = url.replace(
                        "postgresql://", "postgresql+asyncpg://", 1
                    )
                systems[name] = Worker(name, argv, logs, env)
        await measure_all(plan, systems, out)
    report(plan, out, systems)
    if args.json:
        save(Path(args.json), to_json(plan, out, systems))
    if args.profile:
        cluster = systems.get("weir-cluster")
        if profile and "weir" in systems:
            bench_e2e.print_profile("weir run (DAG runs only)", Path(profile))
        if isinstance(cluster, WeirCluster) and cluster.cluster is not None:
            for server in cluster.cluster.servers:
                if server.profile is not None:
                    bench_e2e.print_profile(f"weir cluster {server.name}", server.profile)
    print(f"\nlogs in {logs}")
    return out


async def measure_all(plan: Plan, systems: dict[str, System], out: Samples) -> None:
    """Open every system, measure, and close them all whatever happened."""
    try:
        for name, system in systems.items():
            began = time.monotonic()
            await system.open()
            out.startup[name] = time.monotonic() - began
            progress(f"{LABELS[name]} ready in {out.startup[name]:.1f} s {system.info}")
        await measure(plan, systems, out)
    finally:
        for system in systems.values():
            with contextlib.suppress(Exception):
                await system.close()


# --- reporting -------------------------------------------------------------------------------


def spread(values: list[float | None], digits: int = 1) -> str:
    """'median (min-max)' of the values present, or '-'."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    med, low, high = statistics.median(present), min(present), max(present)
    if len(present) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({low:,.{digits}f}-{high:,.{digits}f})"


def ratios(top: list[float | None], bottom: list[float | None]) -> list[float | None]:
    """Round-by-round ``top / bottom``: pairs from the same round only."""
    return [t / b if t is not None and b else None for t, b in zip(top, bottom, strict=True)]


def verdict(values: list[float | None], target: float) -> str:
    present = [v for v in values if v is not None]
    return "" if not present else "ok" if statistics.median(present) >= target else "MISSED"


def report(plan: Plan, out: Samples, systems: dict[str, System]) -> None:
    names = plan.systems
    print(f"\nmicroseconds per task, median (min-max) of {plan.runs} rounds (lower is better)")
    print(f"{'workload':<18}" + "".join(f"{LABELS[n]:>28}" for n in names))
    for shape in plan.shapes:
        cells = [spread(out.dag[(shape, n)]) for n in names]
        print(f"{shape.label:<18}" + "".join(f"{c:>28}" for c in cells))
    pairs = [(p, w) for p in names if p in PEERS for w in names if w in WEIR_SYSTEMS]
    if pairs:
        print("\nhow many times faster per task, pair by pair within each round (target)")
        print(
            f"{'workload':<18}" + "".join(f"{LABELS[p] + ' / ' + LABELS[w]:>34}" for p, w in pairs)
        )
        for shape in plan.shapes:
            cells = []
            for p, w in pairs:
                r = ratios(out.dag[(shape, p)], out.dag[(shape, w)])
                goal = PER_TASK_TARGETS[p]
                cells.append(f"{spread(r)}x {verdict(r, goal):<6}")
            print(f"{shape.label:<18}" + "".join(f"{c:>34}" for c in cells))
        print(
            "targets: "
            + ", ".join(f"{LABELS[p]} >= {t:,.0f}x" for p, t in PER_TASK_TARGETS.items())
        )
    if not plan.e2e:
        return
    print(f"\nend to end, 3-task chain: median (min-max) of {plan.runs} rounds")
    print(f"{'system':<14} {'window':>6} {'executions/s':>24} {'p50 ms':>22} {'p99 ms':>22}")
    for n in names:
        print(
            f"{LABELS[n]:<14} {plan.windows[n]:>6} {spread(list(out.rate[n])):>24} "
            f"{spread(list(out.p50[n]), 2):>22} {spread(list(out.p99[n]), 2):>22}"
        )
    if "weir-cluster" in names:
        verdict_rate = verdict(list(out.rate["weir-cluster"]), RATE_TARGET)
        print(f"weir cluster target: >= {RATE_TARGET:,.0f} executions/s: {verdict_rate}")
        for p in (n for n in names if n in PEERS):
            rate = ratios(list(out.rate["weir-cluster"]), list(out.rate[p]))
            p50 = ratios(list(out.p50[p]), list(out.p50["weir-cluster"]))
            print(
                f"weir cluster vs {LABELS[p]}: {spread(rate)}x the executions/s, "
                f"p50 {spread(p50)}x lower"
            )
    print("\nstartup, s: " + ", ".join(f"{LABELS[n]} {out.startup[n]:.1f}" for n in names))
    for n in names:
        if systems[n].info:
            print(f"{LABELS[n]}: {systems[n].info}")


def save(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def to_json(plan: Plan, out: Samples, systems: dict[str, System]) -> dict[str, Any]:
    return {
        "runs": plan.runs,
        "systems": {n: systems[n].info for n in plan.systems},
        "dag_us_per_task": {
            shape.label: {n: out.dag[(shape, n)] for n in plan.systems} for shape in plan.shapes
        },
        "e2e": {"rate": out.rate, "p50_ms": out.p50, "p99_ms": out.p99, "windows": plan.windows},
        "startup_s": out.startup,
    }


def plan_from(args: argparse.Namespace) -> Plan:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        raise SystemExit(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    windows, max_tasks = dict(WINDOWS), {}
    for text, into, option in (
        (args.windows, windows, "--windows"),
        (args.max_tasks, max_tasks, "--max-tasks"),
    ):
        for item in filter(None, (x.strip() for x in text.split(","))):
            name, _, value = item.partition("=")
            if name not in SYSTEMS or not value.isdigit():
                raise SystemExit(
                    f"{option}: expected SYSTEM=N with SYSTEM in {SYSTEMS}, got {item!r}"
                )
            into[name] = int(value)
    quick = args.quick
    fanout = [100, 1000] if quick else args.fanout
    chain = [100] if quick else args.chain
    return Plan(
        shapes=[Shape("fanout", n) for n in fanout] + [Shape("chain", n) for n in chain],
        systems=systems,
        runs=1 if quick else args.runs,
        seconds=2.0 if quick else args.duration,
        warmup=0.5 if quick else args.warmup,
        latency_seconds=2.0 if quick else args.latency_duration,
        windows=windows,
        max_tasks=max_tasks,
        e2e=not args.no_e2e,
        settle=args.settle,
    )


def numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="scripts/bench compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3, help="rounds per workload (3)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="which to run (all four)")
    parser.add_argument("--fanout", type=numbers, default=[1000, 10000], help="fan-out sizes")
    parser.add_argument("--chain", type=numbers, default=[1000], help="chain lengths (1000)")
    parser.add_argument(
        "--max-tasks",
        default="",
        help="skip larger DAGs on a system, e.g. prefect=1000 (a 10,000-task run of Prefect "
        "takes about 7 min)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="throughput seconds (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before counting (2)")
    parser.add_argument("--latency-duration", type=float, default=10.0, help="latency seconds")
    parser.add_argument(
        "--windows", default="", help=f"executions in flight, e.g. dask=64 ({WINDOWS})"
    )
    parser.add_argument("--no-e2e", action="store_true", help="DAG shapes only")
    parser.add_argument(
        "--store", default="memory", help="weir cluster's store: memory, sqlite, postgres"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="before each sample, wait up to this long for the machine to go quiet (60 s)",
    )
    parser.add_argument(
        "--prefect-database",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="Prefect server's database: a throwaway PostgreSQL database (default; with SQLite "
        "concurrent flow runs fail with 'database is locked' and retry for seconds) or SQLite",
    )
    parser.add_argument(
        "--postgres-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where throwaway PostgreSQL databases are created (weir --store postgres, Prefect)",
    )
    parser.add_argument("--peers-venv", default=str(ROOT / ".venv-peers"), help="the peers' venv")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile weir run, the orchestrator and engine e1"
    )
    parser.add_argument("--json", help="also write every sample to this file")
    parser.add_argument("--quick", action="store_true", help="1 round of small DAGs, 2 s phases")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
