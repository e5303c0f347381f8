"""In-process benchmarks of the engine core (run through ``scripts/bench``; not a test).

Prints microseconds per node for 10,000-node no-op DAGs (wide and deep) and a 1,000-node Lua
chain, each next to a baseline measured in the same process, so the figures read as ratios that
hold on any machine:

* no-op nodes against one bare ``asyncio`` task created and awaited per node (the cheapest
  thing an asyncio scheduler could do per node);
* Lua nodes against calling the same code straight through lupa, with no sandbox.

Targets (issue 2): <= 20 us scheduling overhead per no-op node, <= 30 us per trivial Lua node.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import bench_e2e
import lupa.lua54 as lua

from engine.definition import Definition, Workflow
from engine.driver import ExecutionDriver
from engine.executors.node import NodeRunner
from engine.lua import LuaSandbox


def wide_workflow(n: int, name: str = "wide") -> Workflow:
    """A fan-out/fan-in of ``n`` no-op nodes: root -> n - 2 nodes -> sink."""
    wf = Workflow(name, "1.0.0").node("root", noop=True)
    for i in range(n - 2):
        wf.node(f"n{i}", noop=True, depends_on="root")
    return wf.node("sink", noop=True, depends_on=[f"n{i}" for i in range(n - 2)])


def deep_workflow(n: int, name: str = "deep") -> Workflow:
    """A chain of ``n`` no-op nodes."""
    wf = Workflow(name, "1.0.0").node("n0", noop=True)
    for i in range(1, n):
        wf.node(f"n{i}", noop=True, depends_on=f"n{i - 1}")
    return wf


def wide(n: int) -> Definition:
    return wide_workflow(n).build()


def deep(n: int) -> Definition:
    return deep_workflow(n).build()


def lua_chain(n: int) -> Definition:
    """Trivial Lua nodes in a chain: the case the 30 us target is about."""
    wf = Workflow("lua-chain", "1.0.0").node("n0", lua="return {ok = true}")
    for i in range(1, n):
        wf.node(f"n{i}", lua="return {ok = true}", depends_on=f"n{i - 1}")
    return wf.build()


def lua_data_chain(n: int) -> Definition:
    """Each node reads its predecessor's output: a lazy conversion per node on top."""
    wf = Workflow("lua-data-chain", "1.0.0").node("n0", lua="return {n = 1}")
    for i in range(1, n):
        wf.node(f"n{i}", lua=f"return {{n = outputs.n{i - 1}.n + 1}}", depends_on=f"n{i - 1}")
    return wf.build()


async def run_once(definition: Definition, runner: NodeRunner) -> float:
    driver = ExecutionDriver(definition, {}, runner)
    began = time.perf_counter()
    result = await driver.run()
    elapsed = time.perf_counter() - began
    assert result.status == "completed", result.error
    assert len(result.path) == len(definition.nodes)
    return elapsed


async def baseline_tasks(n: int) -> float:
    async def node() -> None:
        return None

    began = time.perf_counter()
    for _ in range(n):
        await asyncio.create_task(node())
    return time.perf_counter() - began


def baseline_lua(n: int) -> float:
    runtime = lua.LuaRuntime(unpack_returned_tuples=True)
    make = runtime.eval("function(src) return load(src, 'n', 't') end")
    fn = make("return {n = outputs.prev.n + 1}")
    env = runtime.globals()
    began = time.perf_counter()
    for i in range(n):
        env.outputs = runtime.table_from({"prev": runtime.table_from({"n": i})})
        dict(fn())
    return time.perf_counter() - began


def per_node_us(samples: list[float], n: int) -> tuple[float, float]:
    """(best, median) microseconds per node. The best run is the one least disturbed by the
    rest of the machine, so figures and ratios use it; the median shows the noise."""
    return min(samples) / n * 1e6, statistics.median(samples) / n * 1e6


async def measure(definition: Definition, runner: NodeRunner, repeat: int) -> tuple[float, float]:
    await run_once(definition, runner)  # warm-up: compile caches, imports
    samples = [await run_once(definition, runner) for _ in range(repeat)]
    return per_node_us(samples, len(definition.nodes))


def timed(fn: Callable[[], Definition]) -> tuple[Definition, float]:
    began = time.perf_counter()
    definition = fn()
    return definition, time.perf_counter() - began


async def main(nodes: int, lua_nodes: int, repeat: int) -> None:
    sandbox = LuaSandbox()
    try:
        async with NodeRunner(sandbox=sandbox) as runner:
            wide_def, wide_parse = timed(lambda: wide(nodes))
            deep_def, deep_parse = timed(lambda: deep(nodes))
            lua_def, lua_parse = timed(lambda: lua_chain(lua_nodes))
            data_def, data_parse = timed(lambda: lua_data_chain(lua_nodes))
            task_us, _ = per_node_us([await baseline_tasks(nodes) for _ in range(repeat)], nodes)
            raw_lua_us, _ = per_node_us([baseline_lua(lua_nodes) for _ in range(repeat)], lua_nodes)
            rows = [
                (
                    "no-op DAG, wide",
                    nodes,
                    await measure(wide_def, runner, repeat),
                    20.0,
                    task_us,
                    "asyncio task/node",
                    wide_parse,
                ),
                (
                    "no-op DAG, deep",
                    nodes,
                    await measure(deep_def, runner, repeat),
                    20.0,
                    task_us,
                    "asyncio task/node",
                    deep_parse,
                ),
                (
                    "Lua chain",
                    lua_nodes,
                    await measure(lua_def, runner, repeat),
                    30.0,
                    raw_lua_us,
                    "raw lupa call",
                    lua_parse,
                ),
                (
                    "Lua data chain",
                    lua_nodes,
                    await measure(data_def, runner, repeat),
                    None,
                    raw_lua_us,
                    "raw lupa call",
                    data_parse,
                ),
            ]
    finally:
        sandbox.close()
    print(
        f"{'benchmark':<16} {'nodes':>6} {'best us':>8} {'median':>7} {'target':>7} "
        f"{'baseline':>9} {'ratio':>6}  {'baseline is':<18} {'parse+validate':>14}"
    )
    for label, n, (best, median), target, base, base_label, parse in rows:
        verdict = "" if target is None else "ok" if best <= target else "OVER"
        goal = "-" if target is None else f"{target:.0f}"
        print(
            f"{label:<16} {n:>6} {best:>8.1f} {median:>7.1f} {goal:>5} {verdict:<4}"
            f"{base:>8.1f} {best / base:>5.2f}x  {base_label:<18} {parse * 1e3:>11.0f} ms"
        )
    print(
        f"\nus per node over {repeat} runs after one warm-up: best (used for the verdict and the "
        "ratio) and median;\nratio = best / the baseline's best, in the same process (lower is "
        "better)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__ + "\n" + bench_e2e.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "mode",
        nargs="?",
        choices=("all", "engine", "e2e"),
        default="all",
        help="engine: the in-process benchmarks above; e2e: orchestrator + 2 engines "
        "(scripts/bench_e2e.py); all (default): both, e2e skipped with --quick",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer runs and executions: a few seconds each"
    )
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--lua-nodes", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, help="runs per engine benchmark (7; --quick: 3)")
    bench_e2e.add_arguments(parser)
    args = parser.parse_args()
    if args.mode in ("all", "engine"):
        repeat = args.repeat or (3 if args.quick else 7)
        asyncio.run(main(args.nodes, args.lua_nodes, repeat))
    if args.mode == "e2e" or (args.mode == "all" and not args.quick):
        bench_e2e.main(args)
