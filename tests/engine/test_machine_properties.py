"""Properties of the state machine over random DAGs (hypothesis)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.definition import Definition
from engine.state import StartNode
from tests.engine.sim import Sim, build

RULES = ["all_success", "all_done", "one_failed"]


@st.composite
def dags(draw: st.DrawFn, *, failures: bool = True) -> tuple[Definition, dict[str, list[str]], int]:
    size = draw(st.integers(min_value=1, max_value=18))
    nodes: list[dict[str, Any]] = []
    script: dict[str, list[str]] = {}
    for i in range(size):
        deps = (
            draw(
                st.lists(st.integers(min_value=0, max_value=max(i - 1, 0)), max_size=3, unique=True)
            )
            if i
            else []
        )
        node: dict[str, Any] = {"id": f"n{i}"}
        if deps:
            node["depends_on"] = [f"n{d}" for d in deps]
            node["trigger_rule"] = draw(st.sampled_from(RULES)) if failures else "all_success"
        behaviour = ["ok"]
        if failures:
            behaviour = [draw(st.sampled_from(["ok", "ok", "ok", "fatal", "skip"]))]
        script[node["id"]] = behaviour
        nodes.append(node)
    concurrency = draw(st.integers(min_value=1, max_value=4))
    # Failures are handled by all_done dependents so the run goes on; an unhandled one ends it.
    return (
        build(nodes, concurrency=concurrency),
        script,
        draw(st.integers(min_value=0, max_value=2**32)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(failures=False))
def test_every_node_runs_once_after_its_dependencies(
    case: tuple[Definition, dict[str, list[str]], int],
) -> None:
    definition, script, seed = case
    sim = Sim(definition, script, rng=random.Random(seed))
    terminal = {"completed", "failed", "skipped"}
    apply = sim.apply

    def checked(commands: list[Any]) -> None:
        for command in commands:
            if isinstance(command, StartNode):
                for dep in definition.by_id[command.node].depends_on:
                    assert str(sim.state.nodes[dep].status) in terminal, (command.node, dep)
        apply(commands)

    sim.apply = checked  # type: ignore[method-assign]
    sim.run()
    assert str(sim.state.status) == "completed"
    assert sorted(n for n, _, _ in sim.started) == sorted(n.id for n in definition.nodes)
    assert sim.max_running <= (definition.concurrency or len(definition.nodes))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.data())
def test_resume_from_any_prefix_gives_the_same_result(
    case: tuple[Definition, dict[str, list[str]], int], data: st.DataObject
) -> None:
    definition, script, seed = case
    full = Sim(definition, script, rng=random.Random(seed)).run()
    assert full.state.finished
    journal = full.state.journal
    cut = data.draw(st.integers(min_value=0, max_value=len(journal)))
    prefix = journal[:cut]
    # The resumed run finishes nodes in the order the full run did: with fail-fast failures the
    # result depends on that order, and a checkpoint must not change it.
    order = [r.node for r in journal]
    resumed = Sim(definition, script, order=order).resume(prefix).run()
    assert resumed.state.finished
    assert resumed.statuses() == full.statuses()
    assert str(resumed.state.status) == str(full.state.status)
    assert sorted(resumed.state.path) == sorted(full.state.path)
    # nothing that finished in the prefix runs again
    done = {(r.node, r.visit, r.attempt) for r in prefix}
    assert not done & set(resumed.started)
    assert {k: v for k, v in resumed.state.outputs.items()} == dict(full.state.outputs)
