"""``weir run`` behind the protocol of ``scripts/bench_peers.py`` (for ``scripts/bench compare``).

``python scripts/bench_weir_worker.py [PROFILE]`` serves weir as a "peer": each workflow runs
through ``engine.local.run_workflow`` in this process (what ``weir run FILE`` does) with one
long-lived Lua sandbox, and ``bench_peers.run`` answers the commands, timing weir with the very
loops that time Dask and Prefect. With ``PROFILE``, the DAG runs (only) are profiled with
cProfile and the stats written there on exit.
"""

from __future__ import annotations

import cProfile
import sys
from typing import Any

import bench
import bench_e2e
import bench_peers

from engine.definition import Definition
from engine.definition.parser import loads
from engine.local import run_workflow
from engine.lua import LuaSandbox
from engine.state.result import ExecutionResult


class WeirPeer:
    """weir's engine in this process, as ``bench_peers.Peer``."""

    version = "local"

    def __init__(self, profile_path: str | None) -> None:
        self._sandbox = LuaSandbox()
        self._e2e = loads(bench_e2e.WORKFLOW.format(name="compare-e2e"), sandbox=self._sandbox)
        self._definitions: dict[tuple[str, int], Definition] = {}
        self._profile_path = profile_path
        self._profile = cProfile.Profile() if profile_path else None

    async def _run(self, definition: Definition, inputs: dict[str, Any]) -> ExecutionResult:
        result = await run_workflow(definition, inputs, sandbox=self._sandbox)
        if result.status != "completed":
            raise RuntimeError(f"{definition.name} ended {result.status}: {result.error}")
        return result

    async def dag(self, shape: str, tasks: int) -> int:
        """Run the shape once; answer what the peers' sink or chain end would (checked there)."""
        key = (shape, tasks)
        if key not in self._definitions:
            build = bench.wide_workflow if shape == "fanout" else bench.deep_workflow
            self._definitions[key] = build(tasks, f"compare-{shape}").build(sandbox=self._sandbox)
        if self._profile is not None:
            self._profile.enable()
        try:
            result = await self._run(self._definitions[key], {})
        finally:
            if self._profile is not None:
                self._profile.disable()
        ran = len(result.path)
        if ran != tasks:
            raise RuntimeError(f"{shape} of {tasks}: {ran} nodes ran")
        return tasks - 2 if shape == "fanout" else tasks

    async def execute(self) -> int:
        """One execution of the three-node Lua chain from x = 1."""
        result = await self._run(self._e2e, bench_e2e.INPUTS)
        return int(result.outputs["x"])

    async def aclose(self) -> None:
        self._sandbox.close()
        if self._profile is not None and self._profile_path:
            self._profile.dump_stats(self._profile_path)


if __name__ == "__main__":
    profile = sys.argv[1] if len(sys.argv) > 1 else None

    async def start() -> WeirPeer:
        return WeirPeer(profile)

    sys.exit(bench_peers.run("weir", start))
