"""Task workers benchmark (``scripts/bench workers``; not a test).

Starts ``weir orchestrator`` (memory store unless ``--store``), one ``weir engine`` and one task
worker process (``weir worker scripts/bench_worker_app.py --slots 100``) on 127.0.0.1, then runs
two workflows of ``--fanout`` parallel nodes (20) through the whole cluster, from client
coroutines in this process:

* ``bench-task``: a ``task`` node on queue ``bench``, done by the worker (the SDK's round trip:
  engine -> orchestrator -> worker stream -> orchestrator -> engine);
* ``bench-python``: a ``python`` node calling the very same function inside the engine: the
  baseline, measured in the same run, that shows how fast this machine is today.

For each: throughput (executions completed per second with ``--window`` in flight, times the
fan-out: tasks/s), then latency at half that rate, open loop: the node's own time (from the
engine reaching the node to the node's completion, from the execution's result) and the whole
execution's (StartExecution to its ``execution.completed`` event), p50 and p99. The CPU each
process used during the throughput window shows where the time goes.

Targets (the workers issue, on this 2-core machine): task round trip p50 <= 2 ms, p99 <= 5x p50,
>= 3,000 tasks/s through one worker process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_e2e
from bench_e2e import ROOT, WEIR, Driver, Server, cpu_during, free_port, machine_of, percentile
from weir import Client

TARGET_P50_MS, TARGET_P99_RATIO, TARGET_RATE = 2.0, 5.0, 3_000.0
FLOWS = {  # the task flow first: --profile shows it
    "bench-task": "task: {queue: bench}",
    "bench-python": 'python: "bench_worker_app:double"',
}
NODE = """\
  - id: work{i}
    {executor}
    args: {{x: "${{inputs.x}}"}}
"""
FLOW = """\
apiVersion: weir/v1
kind: Workflow
name: {name}
version: 1.0.0
inputs:
  x: {{type: number}}
nodes:
{nodes}outputs:
  x: ${{outputs.work0.x}}
"""


def flow(name: str, executor: str, fanout: int) -> str:
    """``fanout`` parallel nodes with the same executor: tasks/s is ``fanout`` x executions/s,
    with the execution's own cost spread over that many tasks."""
    nodes = "".join(NODE.format(i=i, executor=executor) for i in range(fanout))
    return FLOW.format(name=name, nodes=nodes)


SCRIPTS = Path(__file__).resolve().parent


class Stack:
    """The orchestrator, one engine and one worker process."""

    def __init__(self, logs: Path, store_url: str, slots: int, profile: Path | None) -> None:
        self.logs = logs
        self.port = free_port()
        engine_port = free_port()
        path = f"{ROOT}{os.pathsep}{SCRIPTS}"  # the engine imports bench_worker_app
        self.engine = Server(
            "engine",
            "engine",
            {
                "ENGINE_ID": "e1",
                "PORT": str(engine_port),
                "BIND_ADDRESS": "127.0.0.1",
                "METRICS_PORT": "0",
                "CAPACITY": "5000",
                "PYTHONPATH": path,
            },
            logs,
            None,
        )
        self.orchestrator = Server(
            "orchestrator",
            "orchestrator",
            {
                "ORCHESTRATOR_ID": "bench",
                "GRPC_PORT": str(self.port),
                "HTTP_PORT": "0",
                "BIND_ADDRESS": "127.0.0.1",
                "DISCOVERY": "static",
                "ENGINES": f"127.0.0.1:{engine_port}",
                "STORE_URL": store_url,
            },
            logs,
            profile,
        )
        self._worker_log = (logs / "worker.log").open("wb")
        self.worker = subprocess.Popen(
            [WEIR, "worker", str(SCRIPTS / "bench_worker_app.py"), "--slots", str(slots)],
            stdout=self._worker_log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "WEIR_SERVER": self.address, "LOG_LEVEL": "WARNING"},
            cwd=ROOT,
            start_new_session=True,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pids(self) -> dict[str, int]:
        return {
            "orchestrator": self.orchestrator.pid,
            "engine": self.engine.pid,
            "worker": self.worker.pid,
            "client": os.getpid(),
        }

    async def ready(self, client: Client, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(Exception):
                engines = await client.engines()
                workers = await client.workers()
                if any(e.healthy for e in engines) and workers:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the stack did not come up; logs in " + str(self.logs))
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        for server in (self.orchestrator, self.engine):
            server.terminate()
        if self.worker.poll() is None:
            self.worker.terminate()
        deadline = time.monotonic() + bench_e2e.STOP_TIMEOUT
        for server in (self.orchestrator, self.engine):
            server.finish(deadline)
        try:
            self.worker.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait(5)
        self._worker_log.close()


async def node_times(client: Client, workflow: str, count: int) -> list[float]:
    """The nodes' durations (the engine reached it -> it completed) in the newest executions."""
    durations = []
    for summary in await client.executions(workflow=workflow, limit=count):
        execution = await client.execution(summary.id)
        for node in execution.nodes.values():
            start = node.started_at.ToNanoseconds() / 1e9
            end = node.finished_at.ToNanoseconds() / 1e9
            if end >= start > 0:
                durations.append(end - start)
    return durations


class EndsOnly(bench_e2e.Watch):
    """The e2e benchmark's watch, asking the server for execution ends only: the task flow's
    five events per node (the python flow's two) would otherwise be converted and streamed to
    this client, a cost of the benchmark, not of the path it measures."""

    async def _read(self) -> None:
        try:
            async for event in self.client.events(
                workflow=self.workflow, types=sorted(bench_e2e.TERMINAL)
            ):
                self.events += 1
                if self.on_end is not None:
                    self.on_end(
                        event.execution_id, time.monotonic(), event.type == "execution.completed"
                    )
            raise RuntimeError("the orchestrator ended the WatchEvents stream")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed = exc
            self.broken.set()


async def measure(stack: Stack, workflow: str, args: argparse.Namespace) -> dict[str, Any]:
    driver = Driver(stack.address, workflow)
    driver.watch = EndsOnly(driver.client, workflow)
    await driver.open()
    try:
        warm = time.monotonic()
        await driver.throughput(
            concurrency=args.concurrency, window=args.window, measure_from=warm, until=warm + 2
        )
        begin = time.monotonic() + 1.0
        until = begin + args.duration
        cpu = asyncio.create_task(cpu_during(stack.pids, begin, until))
        peak = await driver.throughput(
            concurrency=args.concurrency, window=args.window, measure_from=begin, until=until
        )
        shares = await cpu
        machine = machine_of(shares)
        rate = peak["rate"]
        start_at = time.monotonic() + 0.5
        latency = await driver.latency(
            rate=max(rate / 2, 1.0),
            start_at=start_at,
            measure_from=start_at + 1.0,
            until=start_at + 1.0 + args.latency_duration,
        )
        nodes = await node_times(driver.client, workflow, min(200, latency["started"]))
    finally:
        await driver.close()
    return {
        "rate": rate * args.fanout,
        "failed": peak["failed"] + latency["failed"],
        "half": rate * args.fanout / 2,
        "node_p50": percentile(nodes, 50) * 1e3,
        "node_p99": percentile(nodes, 99) * 1e3,
        "e2e_p50": percentile(latency["from_call"], 50) * 1e3,
        "e2e_p99": percentile(latency["from_call"], 99) * 1e3,
        "cpu": shares,
        "machine": machine,
    }


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"workers, store {args.store}: orchestrator + 1 engine + 1 worker process "
        f"({args.slots} slots); {args.fanout} parallel nodes per execution, {args.window} "
        "executions in flight; node times at half the peak rate"
    )
    print(f"{'':34}{'tasks/s':>9}{'node p50':>10}{'node p99':>10}{'e2e p50':>9}{'e2e p99':>9}  ms")
    names = {"bench-task": "task (SDK worker round trip)", "bench-python": "python node (baseline)"}
    for flow, r in results.items():
        print(
            f"{names[flow]:34}{r['rate']:>9.0f}{r['node_p50']:>10.2f}{r['node_p99']:>10.2f}"
            f"{r['e2e_p50']:>9.2f}{r['e2e_p99']:>9.2f}"
            + (f"   ({r['failed']} failed)" if r["failed"] else "")
        )
    task, base = results["bench-task"], results["bench-python"]
    print(
        f"ratio task / python: throughput {task['rate'] / base['rate']:.2f}x, "
        f"node p50 {task['node_p50'] / base['node_p50']:.1f}x"
    )
    for flow, r in results.items():
        parts = ", ".join(f"{k} {v * 100:.0f}%" for k, v in r["cpu"].items())
        print(f"cpu during {flow}'s throughput window (% of one core): {parts}")
    checks = [
        ("task node p50 <= 2 ms", task["node_p50"] <= TARGET_P50_MS),
        ("task node p99 <= 5x p50", task["node_p99"] <= TARGET_P99_RATIO * task["node_p50"]),
        (">= 3,000 tasks/s", task["rate"] >= TARGET_RATE),
    ]
    print("targets: " + ", ".join(f"{name} {'ok' if ok else 'MISS'}" for name, ok in checks))


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="weir-bench-workers-") as tmp:
        logs = Path(tmp)
        store = "memory://" if args.store == "memory" else f"sqlite:///{logs / 'weir.db'}"
        profile = logs / "orchestrator.prof" if args.profile else None
        stack = Stack(logs, store, args.slots, profile)
        try:
            async with Client(stack.address, timeout=30) as client:
                await stack.ready(client)
                for name, executor in FLOWS.items():
                    await client.register(flow(name, executor, args.fanout))
            results = {flow: await measure(stack, flow, args) for flow in FLOWS}
        finally:
            stack.stop()
        report(results, args)
        if profile is not None:
            bench_e2e.print_profile("orchestrator", profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="throughput window, s")
    parser.add_argument("--latency-duration", type=float, default=6.0, help="latency phase, s")
    parser.add_argument("--window", type=int, default=20, help="executions kept in flight")
    parser.add_argument("--concurrency", type=int, default=32, help="starting coroutines")
    parser.add_argument("--slots", type=int, default=100, help="the worker's slots")
    parser.add_argument("--fanout", type=int, default=20, help="parallel nodes per execution")
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--quick", action="store_true", help="short phases (a smoke run)")
    parser.add_argument(
        "--profile", action="store_true", help="run the orchestrator under cProfile and print it"
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.latency_duration = 2.0, 2.0
    asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
