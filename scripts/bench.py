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

import lupa.lua54 as lua

from engine.definition import Definition, Workflow
from engine.driver import ExecutionDriver
from engine.executors.node import NodeRunner
from engine.lua import LuaSandbox


def wide(n: int) -> Definition:
    wf = Workflow("wide", "1.0.0").node("root", noop=True)
    for i in range(n - 2):
        wf.node(f"n{i}", noop=True, depends_on="root")
    return wf.node("sink", noop=True, depends_on=[f"n{i}" for i in range(n - 2)]).build()


def deep(n: int) -> Definition:
    wf = Workflow("deep", "1.0.0").node("n0", noop=True)
    for i in range(1, n):
        wf.node(f"n{i}", noop=True, depends_on=f"n{i - 1}")
    return wf.build()


def lua_chain(n: int) -> Definition:
    wf = Workflow("lua-chain", "1.0.0").node("n0", lua="return {n = 1}")
    for i in range(1, n):
        wf.node(f"n{i}", lua=f"return {{n = outputs.n{i - 1}.n + 1}}", depends_on=f"n{i - 1}")
    return wf.build()


async def run_once(definition: Definition, runner: NodeRunner) -> float:
    driver = ExecutionDriver(definition, {}, runner)
    began = time.perf_counter()
    result = await driver.run()
    elapsed = time.perf_counter() - began
    assert result["status"] == "completed", result["error"]
    assert len(result["path"]) == len(definition.nodes)
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


def median_us(samples: list[float], n: int) -> float:
    return statistics.median(samples) / n * 1e6


async def measure(label: str, definition: Definition, runner: NodeRunner, repeat: int) -> float:
    await run_once(definition, runner)  # warm-up: compile caches, imports
    samples = [await run_once(definition, runner) for _ in range(repeat)]
    return median_us(samples, len(definition.nodes))


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
            task_us = median_us([await baseline_tasks(nodes) for _ in range(repeat)], nodes)
            raw_lua_us = median_us([baseline_lua(lua_nodes) for _ in range(repeat)], lua_nodes)
            rows = [
                (
                    "no-op DAG, wide",
                    nodes,
                    await measure("wide", wide_def, runner, repeat),
                    20.0,
                    task_us,
                    "asyncio task/node",
                    wide_parse,
                ),
                (
                    "no-op DAG, deep",
                    nodes,
                    await measure("deep", deep_def, runner, repeat),
                    20.0,
                    task_us,
                    "asyncio task/node",
                    deep_parse,
                ),
                (
                    "Lua chain",
                    lua_nodes,
                    await measure("lua", lua_def, runner, repeat),
                    30.0,
                    raw_lua_us,
                    "raw lupa call",
                    lua_parse,
                ),
            ]
    finally:
        sandbox.close()
    print(
        f"{'benchmark':<18} {'nodes':>6} {'us/node':>8} {'target':>7} "
        f"{'baseline':>9} {'ratio':>6}  "
        f"{'baseline is':<18} {'parse+validate':>14}"
    )
    for label, n, us, target, base, base_label, parse in rows:
        verdict = "ok" if us <= target else "OVER"
        print(
            f"{label:<18} {n:>6} {us:>8.1f} {target:>6.0f}{verdict[0]:>1} "
            f"{base:>9.1f} {us / base:>5.2f}x  "
            f"{base_label:<18} {parse * 1e3:>11.0f} ms"
        )
    print(
        f"\nmedian of {repeat} runs after one warm-up; ratio = us/node / baseline us/node "
        "(lower is better)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--lua-nodes", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.nodes, args.lua_nodes, args.repeat))
