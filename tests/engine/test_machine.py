"""The state machine's rules, table-driven, with a fake clock and scripted node results."""

from __future__ import annotations

from typing import Any

import pytest

from engine.state import Cancel, NodeFinished, NodeResult, NodeStatus, StartNode
from tests.engine.sim import Sim, build

# (name, nodes, workflow kwargs, script, expected status, expected path, expected node statuses)
CASES: list[
    tuple[
        str,
        list[dict[str, Any]],
        dict[str, Any],
        dict[str, list[str]],
        str,
        list[str],
        dict[str, str],
    ]
] = [
    (
        "chain",
        [{"id": "a"}, {"id": "b", "depends_on": "a"}, {"id": "c", "depends_on": "b"}],
        {},
        {},
        "completed",
        ["a", "b", "c"],
        {"a": "completed", "b": "completed", "c": "completed"},
    ),
    (
        "fan-out fan-in",
        [
            {"id": "a"},
            {"id": "b", "depends_on": "a"},
            {"id": "c", "depends_on": "a"},
            {"id": "d", "depends_on": ["b", "c"]},
        ],
        {},
        {},
        "completed",
        ["a", "b", "c", "d"],
        {"d": "completed"},
    ),
    (
        "all_success skips and the skip propagates",
        [
            {"id": "a"},
            {"id": "b", "depends_on": "a"},
            {"id": "c", "depends_on": "b"},
            {"id": "h", "depends_on": "a", "trigger_rule": "one_failed"},
        ],
        {},
        {"a": ["fatal"]},
        "completed",
        ["a", "h"],
        {"a": "failed", "b": "skipped", "c": "skipped", "h": "completed"},
    ),
    (
        "all_done runs after a failure",
        [{"id": "a"}, {"id": "b", "depends_on": "a", "trigger_rule": "all_done"}],
        {},
        {"a": ["fatal"]},
        "completed",
        ["a", "b"],
        {"a": "failed", "b": "completed"},
    ),
    (
        "all_done runs after a skip",
        [{"id": "a"}, {"id": "b", "depends_on": "a", "trigger_rule": "all_done"}],
        {},
        {"a": ["skip"]},
        "completed",
        ["b"],
        {"a": "skipped", "b": "completed"},
    ),
    (
        "one_failed is skipped when nothing failed",
        [{"id": "a"}, {"id": "comp", "depends_on": "a", "trigger_rule": "one_failed"}],
        {},
        {},
        "completed",
        ["a"],
        {"comp": "skipped"},
    ),
    (
        "one_failed fires before the other dependencies finish",
        [
            {"id": "a"},
            {"id": "slow"},
            {"id": "comp", "depends_on": ["a", "slow"], "trigger_rule": "one_failed"},
        ],
        {},
        {"a": ["fatal"], "slow": ["hang"]},
        "running",
        ["a", "comp"],
        {"comp": "completed", "slow": "running"},
    ),
    (
        "an unhandled failure fails the execution and cancels the rest",
        [
            {"id": "a"},
            {"id": "b", "depends_on": "a"},
            {"id": "x"},
            {"id": "after", "depends_on": "b"},
        ],
        {},
        {"b": ["fatal"], "x": ["hang"]},
        "failed",
        ["a", "b"],
        {"b": "failed", "x": "cancelled", "after": "skipped"},
    ),
    (
        "when false skips the node and its dependents",
        [{"id": "a"}, {"id": "b", "depends_on": "a"}, {"id": "c", "depends_on": "b"}],
        {},
        {"b": ["skip"]},
        "completed",
        ["a"],
        {"b": "skipped", "c": "skipped"},
    ),
    (
        "next by outcome",
        [{"id": "a", "next": {"AGREE": "b", "REJECT": "c"}}, {"id": "b"}, {"id": "c"}],
        {},
        {"a": ["ok:AGREE"]},
        "completed",
        ["a", "b"],
        {"b": "completed", "c": "skipped"},
    ),
    (
        "a FAIL transition loops until success",
        [{"id": "a", "next": {"SUCCESS": "b", "FAIL": "a"}}, {"id": "b"}],
        {},
        {"a": ["fatal", "fatal", "ok"]},
        "completed",
        ["a", "a", "a", "b"],
        {"a": "completed", "b": "completed"},
    ),
    (
        "max_visits stops a loop",
        [{"id": "a", "next": {"FAIL": "a"}, "max_visits": 3}],
        {},
        {"a": ["fatal"]},
        "failed",
        ["a", "a", "a"],
        {"a": "failed"},
    ),
    (
        "an outcome without a transition fails the node",
        [{"id": "a", "next": {"SUCCESS": "b"}}, {"id": "b"}],
        {},
        {"a": ["ok:WEIRD"]},
        "failed",
        ["a"],
        {"a": "failed", "b": "skipped"},
    ),
    (
        "an outcome without a transition takes FAIL when there is one",
        [{"id": "a", "next": {"SUCCESS": "b", "FAIL": "c"}}, {"id": "b"}, {"id": "c"}],
        {},
        {"a": ["ok:WEIRD"]},
        "completed",
        ["a", "c"],
        {"a": "failed", "c": "completed"},
    ),
    (
        "conditional edges: the driver's route is followed",
        [
            {"id": "r", "next": [{"when": "true", "to": "fast", "priority": 1}, {"to": "slow"}]},
            {"id": "fast"},
            {"id": "slow"},
        ],
        {},
        {"r": ["route:slow"]},
        "completed",
        ["r", "slow"],
        {"fast": "skipped", "slow": "completed"},
    ),
    (
        "end ends the branch",
        [{"id": "a", "next": {"SUCCESS": "end"}}, {"id": "b", "depends_on": "a"}],
        {},
        {},
        "completed",
        ["a", "b"],
        {"b": "completed"},
    ),
    (
        "a state machine feeding a DAG node",
        [
            {"id": "a", "next": {"SUCCESS": "b", "FAIL": "a"}},
            {"id": "b"},
            {"id": "c", "depends_on": "b"},
        ],
        {},
        {"a": ["fatal", "ok"]},
        "completed",
        ["a", "a", "b", "c"],
        {"c": "completed"},
    ),
    (
        "retries then succeeds",
        [{"id": "a", "retry": {"attempts": 3, "backoff": 1, "jitter": 0}}],
        {},
        {"a": ["fail", "fail", "ok"]},
        "completed",
        ["a"],
        {"a": "completed"},
    ),
    (
        "retries run out",
        [{"id": "a", "retry": {"attempts": 3, "backoff": 1}}],
        {},
        {"a": ["fail"]},
        "failed",
        ["a"],
        {"a": "failed"},
    ),
    (
        "a non-retryable error is not retried",
        [{"id": "a", "retry": {"attempts": 3}}],
        {},
        {"a": ["fatal"]},
        "failed",
        ["a"],
        {"a": "failed"},
    ),
    (
        "a node timeout fails the attempt and the retry succeeds",
        [{"id": "a", "timeout": 5, "retry": {"attempts": 2, "backoff": 1}}],
        {},
        {"a": ["hang", "ok"]},
        "completed",
        ["a"],
        {"a": "completed"},
    ),
    (
        "the execution timeout cancels running nodes",
        [{"id": "a"}, {"id": "b"}],
        {"timeout": 10},
        {"a": ["hang"]},
        "failed",
        ["b"],
        {"a": "cancelled", "b": "completed"},
    ),
    (
        "transition targets do not start by themselves",
        [{"id": "a", "next": {"SUCCESS": "end"}}, {"id": "b", "next": {"SUCCESS": "a"}}],
        {},
        {},
        "completed",
        ["b", "a"],
        {"a": "completed", "b": "completed"},
    ),
]


@pytest.mark.parametrize(
    ("name", "nodes", "workflow", "script", "status", "path", "node_status"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_rules(
    name: str,
    nodes: list[dict[str, Any]],
    workflow: dict[str, Any],
    script: dict[str, list[str]],
    status: str,
    path: list[str],
    node_status: dict[str, str],
) -> None:
    sim = Sim(build(nodes, **workflow), script).run()
    assert str(sim.state.status) == status
    assert sim.state.path == path
    assert {k: sim.statuses()[k] for k in node_status} == node_status


def test_retries_back_off_exponentially_and_emit_retrying() -> None:
    sim = Sim(
        build([{"id": "a", "retry": {"attempts": 4, "backoff": 2, "factor": 3, "jitter": 0}}]),
        {"a": ["fail", "fail", "fail", "ok"]},
    ).run()
    delays = [e.data["delay"] for e in sim.events if e.type == "node.retrying" and e.data]
    assert delays == [2.0, 6.0, 18.0]
    assert sim.state.nodes["a"].attempt == 4
    assert sim.started == [("a", 1, 1), ("a", 1, 2), ("a", 1, 3), ("a", 1, 4)]


def test_jitter_spreads_the_delay() -> None:
    from engine.definition.model import RetryPolicy

    policy = RetryPolicy(attempts=5, backoff=10, factor=2, max_backoff=15, jitter=0.2)
    assert policy.delay(1, 0.5) == 10
    assert policy.delay(1, 0.0) == pytest.approx(8)
    assert policy.delay(1, 0.999999) == pytest.approx(12, rel=1e-3)
    assert policy.delay(3, 0.5) == 15  # capped by max_backoff


def test_failure_error_names_the_node() -> None:
    sim = Sim(build([{"id": "a"}, {"id": "b", "depends_on": "a"}]), {"b": ["fatal"]}).run()
    assert sim.finish is not None and sim.finish.error is not None
    assert (sim.finish.error.node, sim.finish.error.message) == ("b", "b broke")


def test_max_visits_error() -> None:
    sim = Sim(build([{"id": "a", "next": {"FAIL": "a"}, "max_visits": 2}]), {"a": ["fatal"]}).run()
    assert sim.state.error is not None
    assert sim.state.error.node == "a" and "max_visits (2)" in sim.state.error.message


def test_execution_timeout_message() -> None:
    sim = Sim(build([{"id": "a"}], timeout="10m"), {"a": ["hang"]}).run()
    assert (
        sim.state.error is not None and sim.state.error.message == "execution timed out after 10m"
    )


def test_cancel_running_execution() -> None:
    sim = Sim(build([{"id": "a"}, {"id": "b", "depends_on": "a"}]), {"a": ["hang"]}).start()
    sim.cancel()
    assert str(sim.state.status) == "cancelled"
    assert sim.statuses() == {"a": "cancelled", "b": "skipped"}
    assert sim.running == []
    assert "execution.cancelled" in sim.event_types()


def test_concurrency_limit() -> None:
    sim = Sim(build([{"id": f"n{i}"} for i in range(6)], concurrency=2)).run()
    assert sim.max_running == 2
    assert str(sim.state.status) == "completed"


def test_late_and_duplicate_results_are_ignored() -> None:
    sim = Sim(build([{"id": "a"}, {"id": "b", "depends_on": "a"}]), {"a": ["hang"]}).start()
    ok = NodeResult("a", 1, 1, NodeStatus.COMPLETED, output=1)
    sim.feed(NodeFinished(NodeResult("a", 1, 2, NodeStatus.COMPLETED, output=0)))  # wrong attempt
    sim.feed(NodeFinished(NodeResult("zzz", 1, 1, NodeStatus.COMPLETED)))  # unknown node
    assert sim.statuses()["a"] == "running"
    sim.running.clear()
    sim.feed(NodeFinished(ok))
    sim.feed(NodeFinished(ok))  # duplicate
    assert sim.state.path == ["a"] and sim.started.count(("b", 1, 1)) == 1


def test_entering_a_running_node_joins_it() -> None:
    nodes = [
        {"id": "x", "next": {"SUCCESS": "j"}},
        {"id": "y", "next": {"SUCCESS": "j"}},
        {"id": "j"},
    ]
    sim = Sim(build(nodes), {"j": ["hang"]}).start()
    sim.step()
    sim.step()
    assert sim.started.count(("j", 1, 1)) == 1 and sim.state.nodes["j"].visits == 1


def test_every_state_change_emits_an_event() -> None:
    sim = Sim(
        build(
            [
                {"id": "a", "retry": {"attempts": 2, "backoff": 1}},
                {"id": "b", "depends_on": "a"},
                {"id": "c", "depends_on": "a", "trigger_rule": "one_failed"},
            ]
        ),
        {"a": ["fail", "ok"]},
    ).run()
    assert sim.event_types() == [
        "execution.started",
        "node.started",
        "node.retrying",
        "node.started",
        "node.completed",
        "node.skipped",
        "node.started",
        "node.completed",
        "execution.completed",
    ]
    assert all(e.execution_id == "exec-1" for e in sim.events)


def test_outputs_are_evaluated_before_completing() -> None:
    sim = Sim(
        build([{"id": "a"}], outputs={"x": "${outputs.a.node}"}),
        outputs=lambda state: {"x": state.outputs["a"]["node"]},
    ).run()
    assert sim.finish is not None and dict(sim.finish.outputs) == {"x": "a"}


def test_resume_runs_only_what_did_not_finish() -> None:
    nodes = [
        {"id": "a"},
        {"id": "b", "depends_on": "a"},
        {"id": "c", "depends_on": "a"},
        {"id": "d", "depends_on": ["b", "c"]},
    ]
    first = Sim(build(nodes), {"c": ["hang"]}).run()
    journal = list(first.state.journal)
    assert [r.node for r in journal] == ["a", "b"]
    second = Sim(build(nodes)).resume(journal).run()
    assert [s[0] for s in second.started] == ["c", "d"]
    assert str(second.state.status) == "completed"
    assert second.state.path == ["a", "b", "c", "d"]
    assert second.event_types()[:2] == ["execution.resumed", "node.started"]


def test_resume_keeps_visit_counts_and_retry_attempts() -> None:
    nodes = [
        {"id": "a", "next": {"SUCCESS": "b", "FAIL": "a"}, "retry": {"attempts": 2, "backoff": 1}},
        {"id": "b"},
    ]
    first = Sim(build(nodes), {"a": ["fatal", "fail", "hang"]}).run()
    assert first.state.nodes["a"].visits == 2 and first.state.nodes["a"].attempt == 2
    second = Sim(build(nodes)).resume(first.state.journal).run()
    assert second.started[0] == ("a", 2, 2)
    assert second.state.nodes["a"].visits == 2 and str(second.state.status) == "completed"


def test_resume_of_a_finished_journal_only_finishes() -> None:
    nodes = [{"id": "a"}, {"id": "b", "depends_on": "a"}]
    first = Sim(build(nodes)).run()
    second = Sim(build(nodes)).resume(first.state.journal)
    assert (
        second.started == []
        and second.finish is not None
        and str(second.finish.status) == "completed"
    )


def test_cancel_after_finish_is_ignored() -> None:
    sim = Sim(build([{"id": "a"}])).run()
    assert sim.state.handle(Cancel(1.0)) == []


def test_start_node_commands_carry_visit_and_attempt() -> None:
    sim = Sim(
        build([{"id": "a", "next": {"FAIL": "a", "SUCCESS": "end"}}]), {"a": ["fatal", "ok"]}
    ).run()
    assert [c for c in sim.started] == [("a", 1, 1), ("a", 2, 1)]
    assert StartNode("a", 2, 1) == StartNode("a", 2, 1)
