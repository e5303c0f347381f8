"""A deterministic driver for the state machine: scripted node results, a fake clock, no I/O.

A script maps node id -> list of behaviours, one per attempt in order (the last repeats):
``ok``, ``ok:OUTCOME``, ``route:TARGET`` (conditional edges), ``fail`` (retryable), ``fatal``
(not retryable), ``skip`` (``when`` was false), ``hang`` (never answers).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from engine.definition import Definition, Workflow
from engine.state import (
    Cancel,
    CancelNode,
    CancelTimer,
    EvaluateOutputs,
    Event,
    ExecutionState,
    Finish,
    NodeFinished,
    NodeResult,
    NodeStatus,
    OutputsEvaluated,
    Start,
    StartNode,
    StartTimer,
    Stimulus,
    Timer,
    TimerFired,
)


def build(nodes: Sequence[dict[str, Any]], **workflow: Any) -> Definition:
    wf = Workflow("t", "1.0.0", **workflow)
    for spec in nodes:
        spec = dict(spec)
        node_id = spec.pop("id")
        if not any(k in spec for k in ("lua", "http", "python", "workflow", "sleep")):
            spec.setdefault("noop", True)
        wf.node(node_id, **spec)
    return wf.build()


class Sim:
    def __init__(
        self,
        definition: Definition,
        script: dict[str, list[str]] | None = None,
        *,
        rng: random.Random | None = None,
        order: list[str] | None = None,
        outputs: Callable[[ExecutionState], dict[str, Any]] | None = None,
    ) -> None:
        self.definition = definition
        self.state = ExecutionState(definition, "exec-1", random=lambda: 0.5)
        self.script = script or {}
        self.rng = rng
        self.outputs = outputs
        self.now = 0.0
        self.running: list[StartNode] = []
        self.timers: dict[Timer, float] = {}
        self.events: list[Event] = []
        self.started: list[tuple[str, int, int]] = []
        self.finish: Finish | None = None
        self.max_running = 0
        self.calls: dict[str, int] = {}
        self.assigned: dict[tuple[str, int, int], str] = {}
        # finish running nodes in this order (node ids), to replay another run's choices
        self.order = {n: i for i, n in enumerate(order)} if order is not None else None

    # --- driving ---------------------------------------------------------------------------------

    def start(self) -> Sim:
        self.feed(Start(self.now))
        return self

    def resume(self, journal: Sequence[NodeResult]) -> Sim:
        self.apply(self.state.resume(journal, self.now))
        return self

    def feed(self, *stimuli: Stimulus) -> None:
        self.apply(self.state.handle(*stimuli))

    def apply(self, commands: list[Any]) -> None:
        for c in commands:
            if isinstance(c, StartNode):
                self.assigned[(c.node, c.visit, c.attempt)] = self.behaviour(c.node)
                self.running.append(c)
                self.started.append((c.node, c.visit, c.attempt))
                self.max_running = max(self.max_running, len(self.running))
            elif isinstance(c, CancelNode):
                self.running = [
                    r
                    for r in self.running
                    if (r.node, r.visit, r.attempt) != (c.node, c.visit, c.attempt)
                ]
            elif isinstance(c, StartTimer):
                self.timers[c.timer] = self.now + c.delay
            elif isinstance(c, CancelTimer):
                self.timers.pop(c.timer, None)
            elif isinstance(c, Event):
                self.events.append(c)
            elif isinstance(c, EvaluateOutputs):
                values = self.outputs(self.state) if self.outputs else {}
                self.feed(OutputsEvaluated(self.now, values))
            elif isinstance(c, Finish):
                self.finish = c

    def behaviour(self, node: str) -> str:
        n = self.calls.get(node, 0)
        self.calls[node] = n + 1
        script = self.script.get(node, ["ok"])
        return script[min(n, len(script) - 1)]

    def result_for(self, cmd: StartNode, behaviour: str) -> NodeResult | None:
        kind, _, arg = behaviour.partition(":")
        common = {"started_at": self.now, "finished_at": self.now}
        if kind == "hang":
            return None
        if kind == "ok":
            return NodeResult(
                cmd.node,
                cmd.visit,
                cmd.attempt,
                NodeStatus.COMPLETED,
                output={"node": cmd.node, "visit": cmd.visit},
                outcome=arg or None,
                **common,
            )
        if kind == "route":
            return NodeResult(
                cmd.node,
                cmd.visit,
                cmd.attempt,
                NodeStatus.COMPLETED,
                output={"node": cmd.node},
                route=arg or None,
                **common,
            )
        if kind == "skip":
            return NodeResult(cmd.node, cmd.visit, cmd.attempt, NodeStatus.SKIPPED, **common)
        retryable = kind == "fail"
        return NodeResult(
            cmd.node,
            cmd.visit,
            cmd.attempt,
            NodeStatus.FAILED,
            outcome="FAIL",
            error=f"{cmd.node} broke",
            retryable=retryable,
            route=arg or None,
            **common,
        )

    def step(self) -> bool:
        """Finish one running node (or fire the next timer); False when nothing can happen."""
        answering = [c for c in self.running if self._behaviour_of(c) != "hang"]
        if answering:
            if self.order is not None:
                order = self.order
                cmd = min(answering, key=lambda c: order.get(c.node, len(order)))
            elif self.rng:
                cmd = answering[self.rng.randrange(len(answering))]
            else:
                cmd = answering[0]
            self.running.remove(cmd)
            result = self.result_for(cmd, self._behaviour_of(cmd))
            assert result is not None
            self.now += 1.0
            self.feed(NodeFinished(result))
            return True
        if self.timers:
            timer, at = min(self.timers.items(), key=lambda kv: kv[1])
            del self.timers[timer]
            self.now = max(self.now, at)
            self.feed(TimerFired(timer, self.now))
            return True
        return False

    def _behaviour_of(self, cmd: StartNode) -> str:
        return self.assigned[(cmd.node, cmd.visit, cmd.attempt)]

    def run(self, limit: int = 10_000) -> Sim:
        if self.state.status == "pending":
            self.start()
        for _ in range(limit):
            if self.finish is not None or not self.step():
                break
        return self

    def cancel(self) -> None:
        self.feed(Cancel(self.now, "stop"))

    # --- reading ---------------------------------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        return {n.id: str(n.status) for n in self.state.nodes.values()}

    def event_types(self, node: str | None = None) -> list[str]:
        return [e.type for e in self.events if node is None or e.node == node]
