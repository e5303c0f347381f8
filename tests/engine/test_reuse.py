"""What a retry reuses (``engine.state.reuse.plan_reuse``), table-driven.

Each case runs an original execution with ``Sim`` (scripted node results), plans a retry from
its journal, then runs the retry from the planned checkpoint with another script: the nodes the
retry starts are exactly the rerun set's reachable ones, the reused ones carry ``reused_from``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.definition import Definition
from engine.state import ExecutionResult, ExecutionState, NodeStatus
from engine.state.reuse import plan_reuse
from tests.engine.sim import Sim, build
from tests.engine.test_machine_properties import dags
from tests.engine.test_map import MapSim

CHAIN = [{"id": "a"}, {"id": "b", "depends_on": "a"}, {"id": "c", "depends_on": "b"}]
FAN = [
    {"id": "a"},
    {"id": "b", "depends_on": "a"},
    {"id": "c", "depends_on": "a"},
    {"id": "d", "depends_on": ["b", "c"]},
]

# (name, nodes, original's script, from_node, rerun set, retry's script, nodes the retry
#  starts in order, the retry's status)
CASES: list[
    tuple[
        str,
        list[dict[str, Any]],
        dict[str, list[str]],
        str | None,
        set[str],
        dict[str, list[str]],
        list[str],
        str,
    ]
] = [
    ("chain: the last step failed", CHAIN, {"c": ["fatal"]}, None, {"c"}, {}, ["c"], "completed"),
    (
        "chain: the middle step failed, the last never ran",
        CHAIN,
        {"b": ["fatal"]},
        None,
        {"b", "c"},
        {},
        ["b", "c"],
        "completed",
    ),
    (
        "chain: it fails again",
        CHAIN,
        {"c": ["fatal"]},
        None,
        {"c"},
        {"c": ["fatal"]},
        ["c"],
        "failed",
    ),
    (
        "fan-in: one branch failed after the other completed",
        FAN,
        {"c": ["fatal"]},
        None,
        {"c", "d"},
        {},
        ["c", "d"],
        "completed",
    ),
    (
        "fan-in: one branch failed while the other ran (cancelled)",
        FAN,
        {"b": ["fatal"]},
        None,
        {"b", "c", "d"},
        {},
        ["b", "c", "d"],
        "completed",
    ),
    (
        "a FAIL handler that ran runs again only if its node fails again",
        [
            {"id": "a", "next": {"SUCCESS": "b", "FAIL": "h"}},
            {"id": "b"},
            {"id": "h"},
            {"id": "y", "depends_on": "a", "trigger_rule": "all_done"},
            {"id": "z", "depends_on": "y"},
        ],
        {"a": ["fatal"], "z": ["fatal"]},
        None,
        {"a", "b", "h", "y", "z"},
        {},
        ["a", "b", "y", "z"],
        "completed",
    ),
    (
        "all_done and one_failed dependents of a failed node run again",
        [
            {"id": "a"},
            {"id": "b", "depends_on": "a"},
            {"id": "c", "depends_on": "b", "trigger_rule": "all_done"},
            {"id": "h", "depends_on": "b", "trigger_rule": "one_failed"},
            {"id": "d", "depends_on": "c"},
        ],
        {"b": ["fatal"], "d": ["fatal"]},
        None,
        {"b", "c", "h", "d"},
        {},
        ["b", "c", "d"],
        "completed",
    ),
    (
        "a loop that finished is replayed visit by visit",
        [
            {"id": "poll", "next": {"PENDING": "poll", "SUCCESS": "end"}},
            {"id": "use", "depends_on": "poll"},
        ],
        {"poll": ["ok:PENDING", "ok:PENDING", "ok"], "use": ["fatal"]},
        None,
        {"use"},
        {},
        ["use"],
        "completed",
    ),
    (
        "a failure inside a loop runs the whole loop again",
        [
            {"id": "a", "next": {"SUCCESS": "b"}},
            {"id": "b", "next": {"AGAIN": "c", "SUCCESS": "d"}},
            {"id": "c", "next": {"SUCCESS": "b"}},
            {"id": "d"},
        ],
        {"b": ["ok:AGAIN", "fatal"]},
        None,
        {"b", "c", "d"},
        {},
        ["b", "d"],
        "completed",
    ),
    (
        "max_visits: the node the error names runs again with what it reaches",
        [
            {"id": "a", "next": {"SUCCESS": "b"}},
            {"id": "b", "next": {"SUCCESS": "c"}, "max_visits": 2},
            {"id": "c", "next": {"SUCCESS": "b", "DONE": "end"}},
        ],
        {},
        None,
        {"b", "c"},
        {"c": ["ok:DONE"]},
        ["b", "c"],
        "completed",
    ),
    (
        "a node skipped by its when is reused",
        [
            {"id": "a"},
            {"id": "s", "depends_on": "a"},
            {"id": "c", "depends_on": "s", "trigger_rule": "all_done"},
            {"id": "f", "depends_on": "c"},
        ],
        {"s": ["skip"], "f": ["fatal"]},
        None,
        {"f"},
        {},
        ["f"],
        "completed",
    ),
    ("from a node of a completed chain", CHAIN, {}, "b", {"b", "c"}, {}, ["b", "c"], "completed"),
    ("from the first node", CHAIN, {}, "a", {"a", "b", "c"}, {}, ["a", "b", "c"], "completed"),
    (
        "from a node beside the failed one: both run again",
        FAN,
        {"c": ["fatal"]},
        "b",
        {"b", "c", "d"},
        {},
        ["b", "c", "d"],
        "completed",
    ),
]


@pytest.mark.parametrize(
    ("name", "nodes", "script", "from_node", "rerun", "retry_script", "started", "status"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_retry(
    name: str,
    nodes: list[dict[str, Any]],
    script: dict[str, list[str]],
    from_node: str | None,
    rerun: set[str],
    retry_script: dict[str, list[str]],
    started: list[str],
    status: str,
) -> None:
    definition = build(nodes)
    original = Sim(definition, script).run()
    plan = plan_reuse(definition, original.state.journal, "orig", from_node)
    assert set(plan.rerun) == rerun
    assert all(r.node not in rerun and r.reused_from == "orig" for r in plan.records)
    assert [r.node for r in plan.records] == [
        r.node for r in original.state.journal if r.node not in rerun
    ]
    assert plan.reused == tuple(
        n.id for n in definition.nodes if n.id not in rerun and original.calls.get(n.id)
    )

    retry = Sim(definition, retry_script).resume(plan.records).run()
    assert [node for node, _, _ in retry.started] == started
    assert str(retry.state.status) == status
    result = ExecutionResult.of(retry.state, {})
    for node_id in plan.reused:
        assert result.nodes[node_id].reused_from == "orig"
        assert result.nodes[node_id].status == original.state.nodes[node_id].status
    for node_id in started:
        assert result.nodes[node_id].reused_from is None


def test_the_reused_nodes_keep_their_outputs_and_visits() -> None:
    nodes = [
        {"id": "poll", "next": {"PENDING": "poll", "SUCCESS": "end"}},
        {"id": "use", "depends_on": "poll"},
    ]
    definition = build(nodes)
    original = Sim(definition, {"poll": ["ok:PENDING", "ok"], "use": ["fatal"]}).run()
    plan = plan_reuse(definition, original.state.journal, "orig")
    retry = Sim(definition).resume(plan.records).run()
    poll = retry.state.nodes["poll"]
    assert (poll.visits, poll.output) == (2, {"node": "poll", "visit": 2})
    assert retry.state.path == ["poll", "poll", "use"]
    assert retry.event_types()[:2] == ["execution.resumed", "node.started"]


def test_a_retry_of_a_retry_names_where_each_node_really_ran() -> None:
    definition = build(CHAIN)
    first = Sim(definition, {"c": ["fatal"]}).run()
    plan = plan_reuse(definition, first.state.journal, "first")
    second = Sim(definition, {"c": ["fatal"]}).resume(plan.records).run()
    assert str(second.state.status) == "failed"
    again = plan_reuse(definition, second.state.journal, "second")
    assert [(r.node, r.reused_from) for r in again.records] == [("a", "first"), ("b", "first")]
    assert again.rerun == {"c"}
    third = Sim(definition).resume(again.records).run()
    assert str(third.state.status) == "completed"
    assert [node for node, _, _ in third.started] == ["c"]


def test_a_cancelled_execution_runs_what_was_running_and_what_never_ran() -> None:
    definition = build(CHAIN)
    original = Sim(definition, {"b": ["hang"]}).run()
    original.cancel()
    plan = plan_reuse(definition, original.state.journal, "orig")
    assert plan.rerun == {"b", "c"} and plan.reused == ("a",)


def test_an_execution_whose_nodes_all_finished_well_has_an_empty_start_set() -> None:
    definition = build(CHAIN)
    original = Sim(definition).run()
    plan = plan_reuse(definition, original.state.journal, "orig")
    assert plan.start == frozenset() and plan.rerun == frozenset()
    assert [r.node for r in plan.records] == ["a", "b", "c"]


def test_an_unknown_from_node_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown node 'nope'"):
        plan_reuse(build(CHAIN), [], "orig", "nope")


def test_retried_attempts_of_a_reused_node_are_kept_with_it() -> None:
    nodes = [{"id": "a", "retry": {"attempts": 3, "backoff": 1}}, {"id": "b", "depends_on": "a"}]
    definition = build(nodes)
    original = Sim(definition, {"a": ["fail", "ok"], "b": ["fatal"]}).run()
    plan = plan_reuse(definition, original.state.journal, "orig")
    assert [(r.node, r.attempt) for r in plan.records] == [("a", 1), ("a", 2)]
    retry = Sim(definition).resume(plan.records).run()
    assert retry.state.nodes["a"].attempt == 2 and str(retry.state.status) == "completed"


# --- map ---------------------------------------------------------------------------------------


def _mapped(**extra: Any) -> Any:
    return build(
        [
            {"id": "a"},
            {"id": "m", "depends_on": "a", "map": {"items": "${outputs.a}", **extra}},
            {"id": "z", "depends_on": "m"},
        ]
    )


def test_a_failed_mapped_node_runs_only_its_failed_and_unfinished_items_again() -> None:
    definition = _mapped(concurrency=2)
    broken = {3, 5}
    original = MapSim(
        ExecutionState(definition, "orig"),
        {"m": list(range(8))},
        lambda value, attempt: "fatal" if value in broken else "ok",
        seed=1,
    )
    original.start().run()
    assert original.finish is not None and original.finish.status == "failed"
    items = original.state.nodes["m"].items
    assert items is not None
    completed = {i for i, s in enumerate(items.states) if s.status is NodeStatus.COMPLETED}
    assert completed and len(completed) < 8

    plan = plan_reuse(definition, original.state.journal, "orig")
    assert plan.partial == ("m",) and plan.rerun == {"m", "z"} and plan.reused == ("a",)
    kept_items = {r.item for r in plan.records if r.node == "m" and r.item is not None}
    assert kept_items == completed
    assert not any(r.node == "m" and r.item is None and r.attempt > 0 for r in plan.records)

    retry = MapSim(ExecutionState(definition, "retry"), {"m": list(range(8))}, seed=2)
    retry.resume(plan.records).run()
    assert retry.finish is not None and retry.finish.status == "completed"
    assert sorted(retry.item_starts("m")) == sorted(set(range(8)) - completed)
    assert retry.state.nodes["m"].output == [{"v": i} for i in range(8)]
    result = ExecutionResult.of(retry.state, {})
    assert result.nodes["a"].reused_from == "orig"
    assert result.nodes["m"].reused_from is None


def test_a_mapped_node_downstream_of_another_failure_runs_every_item_again() -> None:
    definition = _mapped()
    original = MapSim(
        ExecutionState(definition, "orig"),
        {"m": list(range(4))},
        lambda value, attempt: "fatal" if value == 2 else "ok",
    )
    original.start().run()
    plan = plan_reuse(definition, original.state.journal, "orig", from_node="a")
    assert plan.partial == () and plan.records == []


def test_a_mapped_node_named_by_from_runs_every_item_again() -> None:
    definition = _mapped()
    original = MapSim(ExecutionState(definition, "orig"), {"m": list(range(4))})
    original.start().run()
    plan = plan_reuse(definition, original.state.journal, "orig", from_node="m")
    assert plan.partial == () and [r.node for r in plan.records] == ["a"]


# --- property ----------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(), st.data())
def test_a_retry_runs_only_the_rerun_set_and_keeps_what_it_reuses(
    case: tuple[Definition, dict[str, list[str]], int], data: st.DataObject
) -> None:
    definition, script, seed = case
    original = Sim(definition, script, rng=random.Random(seed)).run()
    from_node = data.draw(st.none() | st.sampled_from([n.id for n in definition.nodes]))
    plan = plan_reuse(definition, original.state.journal, "orig", from_node)
    healed = {node: ["skip" if b == ["skip"] else "ok"] for node, b in script.items()}
    retry = Sim(definition, healed, rng=random.Random(seed)).resume(plan.records).run()
    assert not {node for node, _, _ in retry.started} & set(plan.reused)
    assert not set(plan.reused) & plan.rerun
    assert str(retry.state.status) == "completed"
    for node_id in plan.reused:
        before, after = original.state.nodes[node_id], retry.state.nodes[node_id]
        assert (after.status, after.output, after.visits) == (
            before.status,
            before.output,
            before.visits,
        )
        assert after.reused_from == "orig"


def test_a_record_the_replay_would_ignore_is_not_reused() -> None:
    # c is skipped as "not reached" only once nothing runs; x, which runs again, keeps the
    # replay busy, so d (all_done on c) is not reached in the replay and runs again.
    definition = build(
        [
            {"id": "a", "next": {"SUCCESS": "b", "FAIL": "c"}},
            {"id": "b"},
            {"id": "c"},
            {"id": "d", "depends_on": "c", "trigger_rule": "all_done"},
            {"id": "x"},
            {"id": "y", "depends_on": "d"},
        ]
    )
    original = Sim(definition, {"y": ["fatal"]}).run()
    assert [r.node for r in original.state.journal] == ["a", "x", "b", "d", "y"]
    plan = plan_reuse(definition, original.state.journal, "orig", from_node="x")
    assert plan.rerun == {"x", "y"}
    assert plan.reused == ("a", "b")
    assert [r.node for r in plan.records] == ["a", "b"]
    retry = Sim(definition).resume(plan.records).run()
    assert [node for node, _, _ in retry.started] == ["x", "d", "y"]
    assert str(retry.state.status) == "completed"
