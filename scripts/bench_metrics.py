"""What the orchestrator's metrics cost on the hot path (not a test): events per second through
``Monitor.publish`` with and without ``OrchestratorMetrics``' observer, and node results through
``DispatchObserver.node_result`` against the no-op observer.

Run: ``.venv/bin/python scripts/bench_metrics.py [--events 300000] [--rounds 5]``.
The monitor is the orchestrator's own (its sink writes to a memory store, as in production
minus SQL), so the ratio is the share the metrics add to publishing an event.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

from engine.state.events import NodeResult, NodeStatus
from orchestrator.core import Orchestrator
from orchestrator.discovery.static import StaticDiscovery
from orchestrator.dispatch import DispatchObserver
from orchestrator.monitor import Monitor
from orchestrator.records import ExecutionRecord
from orchestrator.ring import make_balancer
from orchestrator.store import MemoryStore

WORKFLOW = '{"name": "w", "version": "1.0.0", "nodes": [{"id": "a", "lua": "return 1"}]}'
TYPES = ("node.started", "node.completed", "execution.started", "execution.completed")


def rates(
    run: Callable[[int], None], toggle: Callable[[bool], None], n: int, rounds: int
) -> tuple[float, float]:
    """Median events/s (with, without) the observer, rounds interleaved to share the noise."""
    with_, without = [], []
    for _ in range(rounds):
        for on, out in ((True, with_), (False, without)):
            toggle(on)
            gc.collect()
            start = time.perf_counter()
            run(n)
            out.append(n / (time.perf_counter() - start))
    toggle(True)
    return statistics.median(with_), statistics.median(without)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    core = Orchestrator(
        orchestrator_id="bench",
        discovery=StaticDiscovery([]),
        balancer=make_balancer("round-robin"),
    )
    metrics = core.metrics
    bare = Monitor()  # no sink, no subscribers: the worst case for the ratio
    bare.observers.append(metrics.observe)
    for label, monitor in (("bare Monitor", bare), ("orchestrator's", core.monitor)):

        def publish(n: int, p: Callable[..., object] = monitor.publish) -> None:
            core.store = MemoryStore()  # the sink's log, emptied for each run
            for i in range(n):
                p(TYPES[i & 3], workflow="w", version="1.0.0", execution_id="x", node="a")

        def toggle(on: bool, observers: list[Callable[..., None]] = monitor.observers) -> None:
            if metrics.observe in observers:
                observers.remove(metrics.observe)
            if on:
                observers.append(metrics.observe)

        with_, without = rates(publish, toggle, args.events, args.rounds)
        print(
            f"{label:>16} publish: {without:>10,.0f} events/s without the metrics observer, "
            f"{with_:>10,.0f} with it: ratio {with_ / without:.3f}"
        )

    version = core.registry.prepare(WORKFLOW).version
    core.registry.add(version)
    record = ExecutionRecord(  # what node results arrive for
        id="x",
        name="w",
        version="1.0.0",
        wf=version,
        inputs={},
        inputs_json=b"{}",
        routing_key="",
        created_at=0.0,
    )
    result = NodeResult("a", 1, 1, NodeStatus.COMPLETED, started_at=1.0, finished_at=1.001)

    observer: list[DispatchObserver] = [metrics]

    def node_results(n: int) -> None:
        observe = observer[0].node_result
        for _ in range(n):
            observe(record, result)

    def use_metrics(on: bool) -> None:
        observer[0] = metrics if on else DispatchObserver()

    timed, noop = rates(node_results, use_metrics, args.events, args.rounds)
    print(
        f"    node results: {1e6 / timed:.2f} us each through the metrics, "
        f"{1e6 / noop:.2f} us through the no-op observer"
    )


if __name__ == "__main__":
    main()
