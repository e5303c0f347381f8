"""What the orchestrator's metrics cost on the hot path (not a test): events per second through
``Monitor.publish`` with and without ``OrchestratorMetrics.count_event`` listening, and node
results through ``OrchestratorMetrics.node_recorded`` against a listener that does nothing.

Run: ``.venv/bin/python scripts/bench_metrics.py [--events 300000] [--rounds 5]``.
The "orchestrator's" monitor is wired as in production (the journal writes every event to a
memory store: production minus SQL), so the ratio is the share the metrics add to publishing an
event; each run gets a fresh orchestrator, so the store's log starts empty.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

from engine.state.events import NodeResult, NodeStatus
from orchestrator.discovery.static import StaticDiscovery
from orchestrator.executions.record import ExecutionRecord
from orchestrator.monitor import Monitor
from orchestrator.ring import make_balancer
from orchestrator.wiring import Orchestrator

WORKFLOW = '{"name": "w", "version": "1.0.0", "nodes": [{"id": "a", "lua": "return 1"}]}'
TYPES = ("node.started", "node.completed", "execution.started", "execution.completed")


def rates(
    run: Callable[[int], None], toggle: Callable[[bool], None], n: int, rounds: int
) -> tuple[float, float]:
    """Median events/s (with, without) the listener, rounds interleaved to share the noise."""
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


def orchestrator() -> Orchestrator:
    return Orchestrator(
        orchestrator_id="bench",
        discovery=StaticDiscovery([]),
        balancer=make_balancer("round-robin"),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    core = orchestrator()
    metrics = core.metrics
    bare = Monitor()  # no journal, no subscribers: the worst case for the ratio
    bare.published.connect(metrics.count_event)
    current = {"monitor": bare}

    def publish(n: int) -> None:
        p = current["monitor"].publish
        for i in range(n):
            p(TYPES[i & 3], workflow="w", version="1.0.0", execution_id="x", node="a")

    for label, fresh in (("bare Monitor", lambda: bare), ("orchestrator's", None)):

        def toggle(on: bool, fresh: Callable[[], Monitor] | None = fresh) -> None:
            if fresh is None:  # a new orchestrator: its store's log starts empty
                built = orchestrator()
                monitor, listener = built.monitor, built.metrics.count_event
            else:
                monitor, listener = fresh(), metrics.count_event
            monitor.published.disconnect(listener)
            if on:
                monitor.published.connect(listener)
            current["monitor"] = monitor

        with_, without = rates(publish, toggle, args.events, args.rounds)
        print(
            f"{label:>16} publish: {without:>10,.0f} events/s without the metrics listener, "
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

    def nothing(record: ExecutionRecord, result: NodeResult) -> None:
        pass

    listener: list[Callable[[ExecutionRecord, NodeResult], None]] = [metrics.node_recorded]

    def node_results(n: int) -> None:
        observe = listener[0]
        for _ in range(n):
            observe(record, result)

    def use_metrics(on: bool) -> None:
        listener[0] = metrics.node_recorded if on else nothing

    timed, noop = rates(node_results, use_metrics, args.events, args.rounds)
    print(
        f"    node results: {1e6 / timed:.2f} us each through the metrics, "
        f"{1e6 / noop:.2f} us through a listener that does nothing"
    )


if __name__ == "__main__":
    main()
