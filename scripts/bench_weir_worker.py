"""``weir run`` behind the protocol of ``scripts/bench_peers.py`` (for ``scripts/bench compare``).

``python scripts/bench_weir_worker.py [PROFILE]`` answers ``dag``, ``throughput`` and ``latency``
commands on stdin/stdout, running each workflow with ``engine.local.run_workflow`` in this
process (what ``weir run FILE`` does) with one long-lived Lua sandbox. With ``PROFILE``, the DAG
runs (only) are profiled with cProfile and the stats written there on exit.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import bench
import bench_e2e

from engine.definition import Definition
from engine.definition.parser import loads
from engine.local import run_workflow
from engine.lua import LuaSandbox


async def closed_loop(
    one: Callable[[], Awaitable[None]], window: int, warmup: float, seconds: float
) -> dict[str, Any]:
    """Keep ``window`` executions in flight; count those ending in the last ``seconds``."""
    measure_from = time.monotonic() + warmup
    until = measure_from + seconds
    completed = failed = 0

    async def loop() -> None:
        nonlocal completed, failed
        while time.monotonic() < until:
            try:
                await one()
            except Exception:
                failed += 1
                continue
            if time.monotonic() >= measure_from:
                completed += 1

    await asyncio.gather(*(loop() for _ in range(window)))
    return {"completed": completed, "failed": failed, "rate": completed / seconds}


async def open_loop(
    one: Callable[[], Awaitable[None]], rate: float, seconds: float
) -> dict[str, Any]:
    """Start execution ``i`` at ``i / rate`` whatever has finished; latency of each, in ms."""
    latencies: list[float] = []
    failed = 0

    async def timed() -> None:
        nonlocal failed
        began = time.perf_counter()
        try:
            await one()
        except Exception:
            failed += 1
            return
        latencies.append((time.perf_counter() - began) * 1e3)

    start = time.monotonic()
    tasks = []
    for i in range(max(int(rate * seconds), 1)):
        await asyncio.sleep(max(start + i / rate - time.monotonic(), 0))
        tasks.append(asyncio.create_task(timed()))
    await asyncio.gather(*tasks)
    return {"latencies_ms": latencies, "started": len(tasks), "failed": failed}


async def serve(profile_path: str | None) -> None:
    """Answer commands until ``quit`` or EOF."""
    sandbox = LuaSandbox()
    e2e = loads(bench_e2e.WORKFLOW.format(name="compare-e2e"), sandbox=sandbox)
    definitions: dict[tuple[str, int], Definition] = {}
    profile = cProfile.Profile() if profile_path else None

    async def run(definition: Definition, inputs: dict[str, Any]) -> dict[str, Any]:
        result = await run_workflow(definition, inputs, sandbox=sandbox)
        if result["status"] != "completed":
            raise RuntimeError(f"{definition.name} ended {result['status']}: {result['error']}")
        return result

    async def one() -> None:
        result = await run(e2e, bench_e2e.INPUTS)
        assert result["outputs"] == {"x": 4}, result["outputs"]

    async def answer(command: dict[str, Any]) -> dict[str, Any]:
        if command["op"] == "dag":
            shape = (command["shape"], command["tasks"])
            if shape not in definitions:
                build = bench.wide_workflow if shape[0] == "fanout" else bench.deep_workflow
                definitions[shape] = build(shape[1], f"compare-{shape[0]}").build(sandbox=sandbox)
            if profile is not None:
                profile.enable()
            began = time.perf_counter()
            result = await run(definitions[shape], {})
            seconds = time.perf_counter() - began
            if profile is not None:
                profile.disable()
            assert len(result["path"]) == shape[1], "not every task ran"
            return {"seconds": seconds, "tasks": shape[1]}
        if command["op"] == "throughput":
            return await closed_loop(one, command["window"], command["warmup"], command["seconds"])
        if command["op"] == "latency":
            return await open_loop(one, command["rate"], command["seconds"])
        raise ValueError(f"unknown op {command['op']!r}")

    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True, "system": "weir", "version": "local"}), flush=True)
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            command = json.loads(line) if line.strip() else {"op": "quit"}
            if command["op"] == "quit":
                return
            try:
                reply = await answer(command)
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply), flush=True)
    finally:
        sandbox.close()
        if profile is not None and profile_path:
            profile.dump_stats(profile_path)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1] if len(sys.argv) > 1 else None))
