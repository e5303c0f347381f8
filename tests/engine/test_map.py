"""``map`` in the state machine: expansion, items, concurrency, tolerate, retries, replay.

The machine is driven without I/O: ``MapSim`` answers each command from a script (which items
fail, how), in an order its random generator picks, and counts the items running at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.state import (
    CancelNode,
    CancelTimer,
    Event,
    ExecutionState,
    Finish,
    NodeFinished,
    NodeResult,
    NodeStatus,
    Start,
    StartNode,
    StartTimer,
    TimerFired,
)
from engine.state.events import FinishMap, RetryTimer
from tests.engine.sim import build

Behaviour = Callable[[Any, int], str]  # (item value, attempt) -> "ok" | "fail" | "fatal" | "hang"


class MapSim:
    """Runs one execution to its end; ``items`` are the expansion of each mapped node."""

    def __init__(
        self,
        state: ExecutionState,
        items: dict[str, Any],
        behaviour: Behaviour = lambda value, attempt: "ok",
        *,
        seed: int = 0,
        stop_after: int | None = None,
    ) -> None:
        self.state = state
        self.items = items
        self.behaviour = behaviour
        self.rng = random.Random(seed)
        self.stop_after = stop_after
        self.now = 1000.0
        self.pending: list[Any] = []  # commands waiting for an answer
        self.timers: dict[Any, float] = {}
        self.running: dict[str, set[int]] = {}
        self.peak: dict[str, int] = {}
        self.started: list[tuple[str, int | None, int]] = []  # (node, item, attempt)
        self.events: list[Event] = []
        self.finish: Finish | None = None
        self.answered = 0

    def start(self) -> MapSim:
        self.perform(self.state.handle(Start(self.now)))
        return self

    def resume(self, journal: list[NodeResult]) -> MapSim:
        self.perform(self.state.resume(journal, self.now))
        return self

    def perform(self, commands: list[Any]) -> None:
        for c in commands:
            if isinstance(c, StartNode):
                self.started.append((c.node, c.item, c.attempt))
                if c.item is not None:
                    running = self.running.setdefault(c.node, set())
                    running.add(c.item)
                    self.peak[c.node] = max(self.peak.get(c.node, 0), len(running))
                self.pending.append(c)
            elif isinstance(c, FinishMap):
                self.pending.append(c)
            elif isinstance(c, CancelNode):
                self.pending = [
                    p
                    for p in self.pending
                    if not (
                        isinstance(p, StartNode)
                        and (p.node, p.visit, p.attempt, p.item)
                        == (c.node, c.visit, c.attempt, c.item)
                    )
                ]
                if c.item is not None:
                    self.running.get(c.node, set()).discard(c.item)
            elif isinstance(c, StartTimer):
                self.timers[c.timer] = self.now + c.delay
            elif isinstance(c, CancelTimer):
                self.timers.pop(c.timer, None)
            elif isinstance(c, Event):
                self.events.append(c)
            elif isinstance(c, Finish):
                self.finish = c

    def answer(self, c: Any) -> NodeResult | None:
        self.now += 0.001
        if isinstance(c, FinishMap):
            return NodeResult(
                c.node, c.visit, 1, c.status, c.output,
                "SUCCESS" if c.status is NodeStatus.COMPLETED else "FAIL", c.error,
                False, None, c.started_at, self.now,
            )  # fmt: skip
        if c.item is None:
            if c.node in self.items:
                return NodeResult(
                    c.node, c.visit, 0, NodeStatus.RUNNING, self.items[c.node],
                    started_at=self.now, finished_at=self.now,
                )  # fmt: skip
            return NodeResult(c.node, c.visit, c.attempt, NodeStatus.COMPLETED, c.node, "SUCCESS")
        self.running[c.node].discard(c.item)
        how = self.behaviour(c.value, c.attempt)
        if how == "hang":
            return None
        if how == "ok":
            return NodeResult(
                c.node, c.visit, c.attempt, NodeStatus.COMPLETED, {"v": c.value}, "SUCCESS",
                started_at=self.now, finished_at=self.now, item=c.item,
            )  # fmt: skip
        return NodeResult(
            c.node, c.visit, c.attempt, NodeStatus.FAILED, None, "FAIL",
            f"item {c.value} broke", how == "fail", started_at=self.now, finished_at=self.now,
            item=c.item,
        )  # fmt: skip

    def run(self, limit: int = 100_000) -> MapSim:
        for _ in range(limit):
            if self.finish is not None:
                return self
            if self.stop_after is not None and self.answered >= self.stop_after:
                return self
            if self.pending:
                c = self.pending.pop(self.rng.randrange(len(self.pending)))
                result = self.answer(c)
                if result is None:
                    continue
                self.answered += 1
                self.perform(self.state.handle(NodeFinished(result)))
            elif self.timers:
                timer = min(self.timers, key=lambda t: self.timers[t])
                self.now = max(self.now, self.timers.pop(timer))
                self.perform(self.state.handle(TimerFired(timer, self.now)))
            else:
                return self
        raise AssertionError("did not end")

    def item_starts(self, node: str) -> list[int]:
        return [item for n, item, _ in self.started if n == node and item is not None]


def mapped(concurrency: int | None = None, tolerate: Any = 0, **extra: Any) -> Any:
    spec: dict[str, Any] = {"items": "${outputs.a}", "tolerate": tolerate}
    if concurrency is not None:
        spec["concurrency"] = concurrency
    return build(
        [
            {"id": "a"},
            {"id": "m", "depends_on": "a", "map": spec, **extra},
            {"id": "z", "depends_on": "m"},
        ]
    )


def test_every_item_runs_and_the_output_keeps_item_order() -> None:
    sim = MapSim(ExecutionState(mapped(), "e"), {"m": list(range(10))}, seed=3).start().run()
    assert sim.finish is not None and sim.finish.status == "completed"
    node = sim.state.nodes["m"]
    assert node.output == [{"v": i} for i in range(10)]
    assert sorted(sim.item_starts("m")) == list(range(10))
    assert sim.state.path == ["a", "m", "z"]
    kinds = [e.type for e in sim.events if e.node == "m"]
    assert kinds[:2] == ["node.started", "node.mapped"]
    assert kinds.count("item.started") == kinds.count("item.completed") == 10
    assert kinds[-1] == "node.completed"
    indices = sorted(e.data["item"] for e in sim.events if e.type == "item.completed")
    assert indices == list(range(10))


def test_an_empty_list_completes_at_once_with_an_empty_list() -> None:
    sim = MapSim(ExecutionState(mapped(), "e"), {"m": []}).start().run()
    assert sim.finish is not None and sim.finish.status == "completed"
    assert sim.state.nodes["m"].output == []
    assert sim.item_starts("m") == []


def test_concurrency_bounds_the_items_running_at_once() -> None:
    for seed in range(5):
        sim = MapSim(ExecutionState(mapped(3), "e"), {"m": list(range(40))}, seed=seed)
        sim.start().run()
        assert sim.finish is not None and sim.finish.status == "completed"
        assert sim.peak["m"] == 3


def test_retry_applies_per_item() -> None:
    flaky = {2, 5}

    def behaviour(value: Any, attempt: int) -> str:
        return "fail" if value in flaky and attempt < 3 else "ok"

    definition = mapped(retry={"attempts": 3, "backoff": "1s"})
    sim = MapSim(ExecutionState(definition, "e"), {"m": list(range(8))}, behaviour).start().run()
    assert sim.finish is not None and sim.finish.status == "completed"
    attempts = {i: a for n, i, a in sim.started if n == "m" and i is not None}
    assert {i for i, a in attempts.items() if a == 3} == flaky
    assert sim.state.nodes["m"].attempt == 1
    assert sum(e.type == "item.retrying" for e in sim.events) == 4


def test_too_many_failures_fail_the_node_and_name_the_items() -> None:
    def behaviour(value: Any, attempt: int) -> str:
        return "fatal" if value in (1, 4) else "ok"

    sim = MapSim(ExecutionState(mapped(tolerate=1), "e"), {"m": list(range(6))}, behaviour)
    sim.start().run()
    assert sim.finish is not None and sim.finish.status == "failed"
    node = sim.state.nodes["m"]
    assert node.status is NodeStatus.FAILED
    assert node.error is not None and node.error.startswith("2 of 6 items failed (tolerate 1)")
    assert "[1] item 1 broke" in node.error and "[4] item 4 broke" in node.error
    assert sim.finish.error is not None and sim.finish.error.node == "m"


def test_tolerated_failures_complete_the_node_with_null_outputs() -> None:
    def behaviour(value: Any, attempt: int) -> str:
        return "fatal" if value == 3 else "ok"

    sim = MapSim(ExecutionState(mapped(tolerate="25%"), "e"), {"m": list(range(4))}, behaviour)
    sim.start().run()
    assert sim.finish is not None and sim.finish.status == "completed"
    assert sim.state.nodes["m"].output == [{"v": 0}, {"v": 1}, {"v": 2}, None]
    items = sim.state.nodes["m"].items
    assert items is not None and [s.status for s in items.states][3] is NodeStatus.FAILED


def test_a_failed_node_cancels_its_running_items_and_skips_the_rest() -> None:
    def behaviour(value: Any, attempt: int) -> str:
        return "fatal" if value == 0 else "hang"

    sim = MapSim(ExecutionState(mapped(2), "e"), {"m": list(range(5))}, behaviour, seed=1)
    sim.start().run()
    items = sim.state.nodes["m"].items
    assert items is not None
    statuses = [s.status for s in items.states]
    assert statuses[0] is NodeStatus.FAILED
    assert NodeStatus.CANCELLED in statuses and statuses[-1] is NodeStatus.SKIPPED


def test_an_item_timeout_fails_that_attempt_and_retry_decides() -> None:
    def behaviour(value: Any, attempt: int) -> str:
        return "hang" if value == 1 and attempt == 1 else "ok"

    definition = mapped(timeout="5s", retry={"attempts": 2, "backoff": "1s"})
    sim = MapSim(ExecutionState(definition, "e"), {"m": [0, 1, 2]}, behaviour).start().run()
    assert sim.finish is not None and sim.finish.status == "completed"
    assert ("m", 1, 2) in sim.started
    timed_out = [e for e in sim.events if e.type == "item.retrying"]
    assert timed_out and "timed out after 5s" in timed_out[0].data["error"]


def test_cancelling_the_execution_cancels_running_items() -> None:
    sim = MapSim(ExecutionState(mapped(2), "e"), {"m": [0, 1, 2]}, lambda v, a: "hang").start()
    sim.run()
    from engine.state import Cancel

    commands = sim.state.handle(Cancel(sim.now, "stop"))
    cancelled = {c.item for c in commands if isinstance(c, CancelNode) and c.node == "m"}
    assert cancelled >= {0, 1}


def test_resume_reruns_only_the_items_that_had_not_finished() -> None:
    definition = mapped(4)
    items = {"m": list(range(20))}
    first = MapSim(ExecutionState(definition, "e"), items, seed=7, stop_after=12).start().run()
    journal = list(first.state.journal)
    done = {r.item for r in journal if r.item is not None and r.status is NodeStatus.COMPLETED}
    assert 0 < len(done) < 20

    second = MapSim(ExecutionState(definition, "e"), items, seed=8).resume(journal).run()
    assert second.finish is not None and second.finish.status == "completed"
    rerun = second.item_starts("m")
    assert set(rerun) == set(range(20)) - done
    assert len(rerun) == len(set(rerun))
    assert second.peak["m"] <= 4
    assert second.state.nodes["m"].output == [{"v": i} for i in range(20)]


def test_resume_after_the_verdict_asks_for_the_final_result_again() -> None:
    definition = mapped()
    sim = MapSim(ExecutionState(definition, "e"), {"m": [1, 2]}).start()
    sim.run()
    journal = [
        r
        for r in sim.state.journal
        if not (r.node in ("m", "z") and r.item is None and r.attempt == 1)
    ]
    journal = [r for r in journal if r.node != "z"]
    state = ExecutionState(definition, "e")
    commands = state.resume(journal, 2000.0)
    assert [type(c) for c in commands if isinstance(c, FinishMap | StartNode)] == [FinishMap]


def test_resume_with_an_item_waiting_for_its_retry_retries_it_now() -> None:
    def behaviour(value: Any, attempt: int) -> str:
        return "fail" if value == 0 and attempt == 1 else "ok"

    definition = mapped(retry={"attempts": 2, "backoff": "1h"})
    sim = MapSim(ExecutionState(definition, "e"), {"m": [0, 1]}, behaviour)
    sim.start()
    while not any(isinstance(t, RetryTimer) for t in sim.timers):
        c = sim.pending.pop(0)
        result = sim.answer(c)
        assert result is not None
        sim.perform(sim.state.handle(NodeFinished(result)))
    commands = ExecutionState(definition, "e").resume(list(sim.state.journal), 2000.0)
    starts = [(c.item, c.attempt) for c in commands if isinstance(c, StartNode) and c.node == "m"]
    assert (0, 2) in starts


def test_a_node_revisited_by_a_loop_expands_again() -> None:
    definition = build(
        [
            {"id": "a", "next": {"SUCCESS": "m"}},
            {"id": "m", "map": {"items": [1, 2]}, "next": {"SUCCESS": "b"}},
            {"id": "b", "lua": "return 1", "next": {"SUCCESS": "end", "AGAIN": "m"}},
        ]
    )
    visits = iter(["AGAIN", "SUCCESS"])
    sim = MapSim(ExecutionState(definition, "e"), {"m": [1, 2]})
    original = sim.answer

    def answer(c: Any) -> NodeResult | None:
        result = original(c)
        if result is not None and result.node == "b":
            result.outcome = next(visits)
        return result

    sim.answer = answer  # type: ignore[method-assign]
    sim.start().run()
    assert sim.finish is not None and sim.finish.status == "completed"
    assert sim.state.nodes["m"].visits == 2
    assert [e.visit for e in sim.events if e.type == "node.mapped"] == [1, 2]


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(0, 30),
    failing=st.sets(st.integers(0, 29)),
    concurrency=st.one_of(st.none(), st.integers(1, 8)),
    tolerate=st.one_of(st.integers(0, 5), st.integers(0, 100).map(lambda p: f"{p}%")),
    seed=st.integers(0, 1000),
)
def test_output_order_and_verdict_match_a_model(
    size: int, failing: set[int], concurrency: int | None, tolerate: Any, seed: int
) -> None:
    failing = {i for i in failing if i < size}
    values = [f"v{i}" for i in range(size)]

    def behaviour(value: Any, attempt: int) -> str:
        return "fatal" if int(value[1:]) in failing else "ok"

    definition = mapped(concurrency, tolerate)
    sim = MapSim(ExecutionState(definition, "e"), {"m": values}, behaviour, seed=seed)
    sim.start().run()
    spec = definition.by_id["m"].map
    assert spec is not None
    allowed = spec.allowed_failures(size)
    node = sim.state.nodes["m"]
    assert sim.finish is not None
    if len(failing) > allowed:
        assert node.status is NodeStatus.FAILED and sim.finish.status == "failed"
        assert node.error is not None and f"(tolerate {allowed})" in node.error
    else:
        assert node.status is NodeStatus.COMPLETED and sim.finish.status == "completed"
        assert node.output == [None if i in failing else {"v": v} for i, v in enumerate(values)]
    if concurrency is not None and size:
        assert sim.peak.get("m", 0) <= concurrency
