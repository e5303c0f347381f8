"""Dynamic fan-out benchmark (``scripts/bench map``; not a test).

Issue 16: "10,000 items on one node work, in-process and through the cluster, and cost about
what 10,000 static nodes cost". Three workflows, generated as JSON definitions:

* ``static``: ``start`` -> ``--items`` no-op nodes ``n0..`` (each ``depends_on: [start]``) ->
  ``join``;
* ``mapped``: ``start`` (Lua returning the list 1..N) -> ``each`` (``map: {items:
  "${outputs.start}"}``, ``noop: {}``) -> ``join``;
* ``one``: a single no-op node, the baseline: its time is what a run costs apart from its
  nodes, so a flow's cost per node (or item) is ``(t(flow) - t(one)) / N``, all three measured
  in the same round.

Each flow runs three ways, the flows alternating (in a rotated order) within each round:

* ``weir run FILE --output json`` as a subprocess: the whole process, wall time;
* ``engine.local.run_workflow`` in this process on the loaded definition (one long-lived Lua
  sandbox): the run only, no parsing, no process start;
* through the cluster: ``weir orchestrator`` (SQLite store in a temporary directory unless
  ``--store memory``) and two ``weir engine`` processes on 127.0.0.1, the definitions applied
  with the SDK client, each execution started with ``Client.start`` (a routing key pins a flow to
  one engine, so the warm-up leaves the definition parsed there) and timed from the start call
  to its result (``GetExecution`` after the execution's terminal event; the time to that event
  is shown too). The watch asks for terminal events only: streaming every node's events to
  this client would be a cost of the benchmark, not of the path.

Every run's result is checked: completed, every node completed, and the mapped node's output
and ``items`` hold N entries with the indices 0..N-1. A wrong result stops the benchmark with
exit status 1. One warm-up run of each flow in each mode comes first and is not counted.

Target (issue 16): mapped / static <= 1.5 per node in each mode ("about what static nodes
cost"). A MISS is printed, not an exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_e2e
from bench_e2e import ROOT, WEIR, Cluster
from weir import Client
from weir.proto.v1 import engine_pb2, orchestrator_pb2

from engine.definition import Definition
from engine.definition.parser import load_file
from engine.local import run_workflow
from engine.lua import LuaSandbox

TARGET_RATIO = 1.5
"""mapped / static per node: "cost about what 10,000 static nodes cost" (issue 16)."""
FLOWS = ("one", "static", "mapped")
MODES = ("run", "engine", "cluster")
LABELS = {
    "run": "weir run (whole process)",
    "engine": "engine only (run_workflow)",
    "cluster": "cluster, start -> result",
    "cluster_end": "cluster, start -> end event",
}
TERMINAL = sorted(bench_e2e.TERMINAL)
PROFILE_TOP = 10
SETTLE = 0.5
"""Seconds of pause before each cluster run. With the SQLite store, an execution of 10,000 nodes
or items leaves the orchestrator busy for 60-90 ms after its result is out (a one-node execution
started then takes that much longer; not so with the memory store): the next run must not pay
for it. ``next_one`` shows it."""


class WrongResult(Exception):
    """A run that did not do the work: the benchmark stops here (exit status 1)."""


# --- the workflows ---------------------------------------------------------------------------


def definitions(n: int) -> dict[str, dict[str, Any]]:
    """The three workflows as definition documents (written as JSON)."""

    def workflow(flow: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": "weir/v1",
            "kind": "Workflow",
            "name": f"bench-map-{flow}",
            "version": "1.0.0",
            "description": f"scripts/bench map: {flow}, {n} items",
            "nodes": nodes,
        }

    fan = [f"n{i}" for i in range(n)]
    return {
        "one": workflow("one", [{"id": "only", "noop": {}}]),
        "static": workflow(
            "static",
            [
                {"id": "start", "noop": {}},
                *({"id": node, "noop": {}, "depends_on": ["start"]} for node in fan),
                {"id": "join", "noop": {}, "depends_on": fan},
            ],
        ),
        "mapped": workflow(
            "mapped",
            [
                {
                    "id": "start",
                    "lua": f"local t = {{}} for i = 1, {n} do t[i] = i end return t",
                },
                {
                    "id": "each",
                    "depends_on": ["start"],
                    "map": {"items": "${outputs.start}"},
                    "noop": {},
                },
                {"id": "join", "noop": {}, "depends_on": ["each"]},
            ],
        ),
    }


# --- checking a result -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeView:
    status: str
    output: Any
    items: list[tuple[int, str]] | None  # (index, status) of a mapped node's items


def from_json(result: dict[str, Any]) -> tuple[str, str, dict[str, NodeView]]:
    """(status, error, nodes) of a result object (``weir run --output json``'s shape)."""
    nodes = {
        node_id: NodeView(
            node["status"],
            node["output"],
            None
            if node.get("items") is None
            else [(item["index"], item["status"]) for item in node["items"]],
        )
        for node_id, node in result["nodes"].items()
    }
    return result["status"], json.dumps(result.get("error")), nodes


def _name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


def from_pb(execution: orchestrator_pb2.Execution) -> tuple[str, str, dict[str, NodeView]]:
    """The same from the orchestrator's ``Execution`` message."""
    nodes = {}
    for node_id, node in execution.nodes.items():
        items = None
        if node.mapped:
            items = [
                (item.index, _name(engine_pb2.NodeStatus, item.status, "NODE_STATUS_"))
                for item in node.items
            ]
        nodes[node_id] = NodeView(
            _name(engine_pb2.NodeStatus, node.status, "NODE_STATUS_"),
            json.loads(node.output_json) if node.output_json else None,
            items,
        )
    status = _name(engine_pb2.ExecutionStatus, execution.status, "EXECUTION_STATUS_")
    error = str(execution.error).strip() if execution.HasField("error") else "null"
    return status, error, nodes


def check(where: str, flow: str, n: int, view: tuple[str, str, dict[str, NodeView]]) -> None:
    """Raise ``WrongResult`` unless the run did all its work."""
    status, error, nodes = view
    problems = []
    if status != "completed":
        problems.append(f"status {status}, error {error}")
    expected = {"one": 1, "static": n + 2, "mapped": 3}[flow]
    if len(nodes) != expected:
        problems.append(f"{len(nodes)} nodes in the result, expected {expected}")
    not_done = sorted(node_id for node_id, node in nodes.items() if node.status != "completed")
    if not_done:
        problems.append(f"{len(not_done)} nodes not completed: {not_done[:5]}")
    if flow == "mapped":
        each = nodes.get("each")
        if each is None:
            problems.append("no node 'each' in the result")
        else:
            output = each.output
            if not isinstance(output, list) or len(output) != n:
                got = len(output) if isinstance(output, list) else type(output).__name__
                problems.append(f"each.output: expected a list of {n}, got {got}")
            if each.items is None:
                problems.append("each.items: missing (the node is not marked mapped)")
            else:
                indices = sorted(index for index, _ in each.items)
                if indices != list(range(n)):
                    distinct = len(set(indices))
                    problems.append(
                        f"each.items: {len(indices)} items, {distinct} distinct indices "
                        f"(first {indices[:5]}), expected 0..{n - 1}"
                    )
                failed = [index for index, status in each.items if status != "completed"]
                if failed:
                    problems.append(f"each.items: {len(failed)} not completed: {failed[:5]}")
    if problems:
        raise WrongResult(f"{where}, {flow} flow: " + "; ".join(problems))


# --- the three modes -------------------------------------------------------------------------


def weir_run(path: Path, flow: str, n: int) -> float:
    """``weir run FILE --output json`` in a fresh process: wall seconds."""
    began = time.perf_counter()
    proc = subprocess.run(
        [WEIR, "run", str(path), "--output", "json"], capture_output=True, text=True, cwd=ROOT
    )
    elapsed = time.perf_counter() - began
    if not proc.stdout.strip():
        raise WrongResult(
            f"weir run, {flow} flow: exit {proc.returncode}, no result:\n{proc.stderr[-3000:]}"
        )
    check("weir run", flow, n, from_json(json.loads(proc.stdout)))
    return elapsed


async def engine_run(definition: Definition, sandbox: LuaSandbox, flow: str, n: int) -> float:
    """``run_workflow`` in this process: seconds of the run alone."""
    gc.collect()  # the previous run's garbage is not this run's cost
    began = time.perf_counter()
    result = await run_workflow(definition, sandbox=sandbox)
    elapsed = time.perf_counter() - began
    check("engine", flow, n, from_json(result.to_json()))
    return elapsed


async def cluster_run(client: Client, flow: str, n: int) -> tuple[float, float]:
    """(seconds to the execution's terminal event, seconds to its result in hand)."""
    name = f"bench-map-{flow}"
    began = time.perf_counter()
    execution = await client.start(name, routing_key=name)
    ended: float | None = None
    async for _event in client.events(execution_id=execution.id, types=TERMINAL):
        ended = time.perf_counter()
        break
    result = await client.execution(execution.id)
    done = time.perf_counter()
    if ended is None:
        raise WrongResult(f"cluster, {flow} flow: the event stream ended without an end event")
    check(f"cluster (execution {execution.id})", flow, n, from_pb(result))
    return ended - began, done - began


# --- rounds and figures ----------------------------------------------------------------------


@dataclass
class Samples:
    """Seconds per (mode, flow), one sample per round."""

    seconds: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    next_one: dict[str, list[float]] = field(default_factory=dict)
    """Per flow: seconds of a one-node execution started on the cluster right after its result,
    which shows work the flow left behind (commits still running) that its figure does not."""

    def add(self, mode: str, flow: str, value: float) -> None:
        self.seconds.setdefault((mode, flow), []).append(value)

    def modes(self) -> list[str]:
        return [m for m in (*MODES, "cluster_end") if (m, "one") in self.seconds]

    def per_node_us(self, mode: str, flow: str, n: int) -> list[float]:
        """Per round: (t(flow) - t(one)) / N, in microseconds."""
        return [
            (t - base) / n * 1e6
            for t, base in zip(self.seconds[mode, flow], self.seconds[mode, "one"], strict=True)
        ]


def rotated(items: tuple[str, ...], round_: int) -> tuple[str, ...]:
    k = round_ % len(items)
    return items[k:] + items[:k]


def ratios(top: list[float], bottom: list[float]) -> list[float]:
    """Per-round ratios: a ratio of figures taken minutes apart would mostly measure drift."""
    return [a / b for a, b in zip(top, bottom, strict=True)]


def spread(values: list[float], digits: int = 1) -> str:
    """Median (min-max), or the one value."""
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def report(samples: Samples, n: int, rounds: int, store: str) -> None:
    print(
        f"map: {n:,} items on one node against {n:,} static no-op nodes; {rounds} round(s), "
        f"median (min-max); cluster: orchestrator ({store} store) + 2 engines"
    )
    print("us per static node / per item = (t(flow) - t(one-node flow)) / N, same round\n")
    header = (
        f"{'mode':<29}{'one-node ms':>13}{'static us':>22}{'mapped us':>22}{'mapped/static':>22}"
    )
    print(header)
    verdicts = []
    per_node: dict[tuple[str, str], list[float]] = {}
    for mode in samples.modes():
        one_ms = [t * 1e3 for t in samples.seconds[mode, "one"]]
        static = per_node[mode, "static"] = samples.per_node_us(mode, "static", n)
        mapped = per_node[mode, "mapped"] = samples.per_node_us(mode, "mapped", n)
        ratio = ratios(mapped, static)
        print(
            f"{LABELS[mode]:<29}{spread(one_ms, 2 if mode == 'engine' else 0):>13}"
            f"{spread(static):>22}{spread(mapped):>22}{spread(ratio, 2):>22}"
        )
        if mode != "cluster_end":
            verdicts.append((LABELS[mode].split(",")[0].split(" (")[0], ratio))
    if ("cluster", "one") in samples.seconds:
        print("\ncluster / in-process, per node (same round):")
        for flow in ("static", "mapped"):
            cluster = per_node["cluster", flow]
            parts = [
                f"{spread(ratios(cluster, per_node[mode, flow]))}x {base}"
                for mode, base in (("run", "weir run"), ("engine", "engine only"))
                if (mode, flow) in per_node
            ]
            print(f"  {flow:<7} " + ", ".join(parts))
        after = ", ".join(
            f"{flow} {spread([t * 1e3 for t in samples.next_one[flow]], 0)}" for flow in FLOWS
        )
        print(f"cluster: a one-node execution started right after the result, ms: after {after}")
    print(f"\ntarget (issue 16): mapped / static <= {TARGET_RATIO} per node, each mode")
    for label, ratio in verdicts:
        verdict = "PASS" if statistics.median(ratio) <= TARGET_RATIO else "MISS"
        print(f"  {label:<12} {statistics.median(ratio):.2f}  {verdict}")


async def measure(args: argparse.Namespace, tmp: Path) -> Samples:
    n = args.items
    docs = definitions(n)
    paths = {}
    for flow, doc in docs.items():
        paths[flow] = tmp / f"{flow}.json"
        paths[flow].write_text(json.dumps(doc))
    loaded = {flow: load_file(path) for flow, path in paths.items()}
    samples = Samples()
    sandbox = LuaSandbox()
    cluster: Cluster | None = None
    try:
        client: Client | None = None
        async with contextlib.AsyncExitStack() as stack:
            if not args.no_cluster:
                logs = tmp / "logs"
                logs.mkdir()
                store = "memory://" if args.store == "memory" else f"sqlite:///{tmp / 'weir.db'}"
                cluster = Cluster(logs, store, profile_dir=None, profile_engine=False)
                client = await stack.enter_async_context(Client(cluster.address, timeout=120.0))
                began = time.monotonic()
                await cluster.start(client, capacity=100, profile_orchestrator=False)
                for flow in FLOWS:
                    await client.register(json.dumps(docs[flow]))
                print(f"cluster up in {time.monotonic() - began:.1f} s", file=sys.stderr)

            async def one_round(round_: int | None) -> None:
                order = rotated(FLOWS, round_ or 0)
                for flow in order:
                    t = weir_run(paths[flow], flow, n)
                    if round_ is not None:
                        samples.add("run", flow, t)
                for flow in order:
                    t = await engine_run(loaded[flow], sandbox, flow, n)
                    if round_ is not None:
                        samples.add("engine", flow, t)
                if client is not None:
                    for flow in order:
                        await asyncio.sleep(SETTLE)
                        to_end, to_result = await cluster_run(client, flow, n)
                        _, after = await cluster_run(client, "one", n)  # the aftermath
                        if round_ is not None:
                            samples.add("cluster_end", flow, to_end)
                            samples.add("cluster", flow, to_result)
                            samples.next_one.setdefault(flow, []).append(after)
                where = "warm-up" if round_ is None else f"round {round_ + 1}/{args.rounds}"
                print(f"{where} done", file=sys.stderr)

            await one_round(None)
            for r in range(args.rounds):
                await one_round(r)
    except Exception as exc:
        in_process = isinstance(exc, WrongResult) and not str(exc).startswith("cluster")
        if cluster is not None and not in_process:
            print(cluster.dump()[-6000:], file=sys.stderr)
        raise
    finally:
        if cluster is not None:
            cluster.stop()
        sandbox.close()
    return samples


def profile_mapped(path: Path, n: int) -> str:
    """One in-process run of the mapped flow under cProfile, in a loop of its own (a profile
    taken inside a running loop charges the loop's other callbacks to whatever awaits): the top
    functions by cumulative and by own time, the asyncio plumbing left out."""
    definition = load_file(path)
    sandbox = LuaSandbox()

    async def run() -> None:
        # Not returned: asyncio.run's clean-up reprs its main task, result and all (Python
        # 3.11's signal handler restore), which would bill a repr of every item to the run.
        await run_workflow(definition, sandbox=sandbox)

    try:
        asyncio.run(run())  # warm-up: Lua compile caches
        profile = cProfile.Profile()
        gc.collect()
        profile.runcall(asyncio.run, run())
    finally:
        sandbox.close()
    stats = pstats.Stats(profile)
    entries = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]

    def plumbing(file: str, func: str) -> bool:
        return (
            "/asyncio/" in file
            or file.endswith("bench_map.py")
            or (
                file == "~"
                and func.startswith(("<method 'run' of", "<built-in method builtins.exec"))
            )
        )

    kept = [(key, value) for key, value in entries.items() if not plumbing(key[0], key[2])]
    # cumtime counts a coroutine's every resumption, so the root may exceed total_tt
    whole = max(total, *(value[3] for _, value in kept))
    lines = []
    for sort, column in (("cumulative", 3), ("own time", 2)):
        lines += [
            f"\ncProfile of one mapped run, engine only ({n:,} items; {total:.3f} s under the "
            f"profiler), top {PROFILE_TOP} by {sort}:",
            f"{'cumtime s':>10} {'%':>5} {'tottime s':>10} {'%':>5} {'calls':>9}  function",
        ]
        rows = sorted(kept, key=lambda kv: kv[1][column], reverse=True)
        for (file, line, func), (_, calls, tt, ct, _) in rows[:PROFILE_TOP]:
            where = func if file == "~" else f"{'/'.join(Path(file).parts[-2:])}:{line}({func})"
            lines.append(
                f"{ct:>10.3f} {ct / whole * 100:>5.1f} {tt:>10.3f} {tt / whole * 100:>5.1f} "
                f"{calls:>9}  {where}"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 2,000 items")
    parser.add_argument("--items", type=int, help="N: static nodes and mapped items (10,000)")
    parser.add_argument("--rounds", type=int, help="rounds, each flow once per mode (3)")
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--no-cluster", action="store_true", help="the in-process modes only")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one in-process mapped run at the end"
    )
    args = parser.parse_args()
    args.items = args.items or (2_000 if args.quick else 10_000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="weir-bench-map-") as tmp:
        try:
            samples = asyncio.run(measure(args, Path(tmp)))
        except WrongResult as exc:
            print(f"WRONG RESULT: {exc}", file=sys.stderr)
            return 1
        profile = profile_mapped(Path(tmp) / "mapped.json", args.items) if args.profile else ""
    report(samples, args.items, args.rounds, args.store)
    print(profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
