"""The keys of a node with ``map`` in the orchestrator's own records: the checkpoint's dedup, the
parent link of a child started by one item, the journal's rows, and the engine protocol's
conversions (``adapter.py``) — pure functions and dataclasses, no servers.
"""

from __future__ import annotations

import pytest
from weir.proto.v1 import engine_pb2 as pb

from engine.server import codec
from engine.state.events import ExecutionStatus, NodeResult, NodeStatus
from orchestrator.engines.adapter import (
    answer_to_pb,
    execute_to_pb,
    report_from_pb,
    task_answer_to_pb,
)
from orchestrator.engines.messages import ChildAnswer, ExecuteOrder, TaskAnswer
from orchestrator.executions.record import Checkpoint, ParentLink
from orchestrator.rows import node_result, node_run_row

COMPLETED = NodeStatus.COMPLETED
EXPANSION = NodeResult("m", 1, 0, NodeStatus.RUNNING, output=["x", "y"])
ITEM_0 = NodeResult("m", 1, 1, COMPLETED, output="X", item=0)
ITEM_1 = NodeResult("m", 1, 1, COMPLETED, output="Y", item=1)
ITEM_1_RETRIED = NodeResult("m", 1, 2, COMPLETED, output="Y", item=1)
FINAL = NodeResult("m", 1, 1, COMPLETED, output=["X", "Y"])
JOURNAL = [EXPANSION, ITEM_0, ITEM_1, ITEM_1_RETRIED, FINAL]


def test_the_checkpoint_keeps_every_record_of_a_mapped_node_once() -> None:
    checkpoint = Checkpoint()
    assert [checkpoint.add(r) for r in JOURNAL] == [True] * 5
    # re-sent after a reconnect: each is recognised, however alike (node, visit, attempt) are
    again = [NodeResult("m", 1, 1, NodeStatus.FAILED, item=i) for i in (0, 1, None)]
    assert [checkpoint.add(r) for r in again] == [False] * 3
    assert not checkpoint.add(NodeResult("m", 1, 0, NodeStatus.RUNNING))
    assert checkpoint.add(NodeResult("m", 1, 1, COMPLETED, item=2))  # another item: new
    assert checkpoint.runs[:5] == JOURNAL and len(checkpoint) == 6


@pytest.mark.parametrize(
    ("link", "key"),
    [
        (ParentLink("p-1", "call", 2, 3), "p-1/call/2/3"),  # what earlier versions stored
        (ParentLink("p-1", "call", 2, 3, item=0), "p-1/call/2/0/3"),
        (ParentLink("p-1", "call_2", 1, 1, item=17), "p-1/call_2/1/17/1"),
        (ParentLink("a/b", "call", 1, 1), "a/b/call/1/1"),  # ids are parsed from the right
        (ParentLink("a/b", "call", 1, 2, item=5), "a/b/call/1/5/2"),
    ],
)
def test_a_parent_link_key_round_trips_with_and_without_an_item(link: ParentLink, key: str) -> None:
    assert link.key == key
    assert ParentLink.from_key(key) == link


def test_the_children_of_two_items_of_one_attempt_have_different_keys() -> None:
    keys = {ParentLink("p", "call", 1, 1, item).key for item in (None, 0, 1)}
    assert len(keys) == 3


@pytest.mark.parametrize("result", [*JOURNAL, NodeResult("n", 1, 1, COMPLETED, reused_from="e0")])
def test_a_node_run_row_round_trips(result: NodeResult) -> None:
    row = node_run_row("e1", 4, result)
    assert (row.item, row.reused_from, row.position) == (result.item, result.reused_from, 4)
    assert node_result(row) == result


def test_engine_requests_and_node_results_keep_their_item() -> None:
    message = pb.FromEngine(seq=7)
    for result in (ITEM_0, FINAL, EXPANSION):
        codec.fill_result(message.node_results.add(), "e1", 2, result)
    message.start_child.add(execution_id="e1", lease=2, node="m", visit=1, attempt=1, item=0)
    message.start_child.add(execution_id="e1", lease=2, node="k", visit=1, attempt=1)
    message.schedule_task.add(execution_id="e1", lease=2, node="m", visit=1, attempt=2, item=3)
    message.schedule_task.add(execution_id="e1", lease=2, node="t", visit=1, attempt=1)
    wire = pb.FromEngine.FromString(message.SerializeToString())
    report, problems = report_from_pb(wire, stream=1)
    assert problems == []
    assert [n.result for n in report.nodes] == [ITEM_0, FINAL, EXPANSION]
    assert [(c.node, c.item) for c in report.children] == [("m", 0), ("k", None)]
    assert [(t.node, t.item, t.attempt) for t in report.tasks] == [("m", 3, 2), ("t", None, 1)]


def test_answers_and_checkpoints_to_an_engine_keep_their_item() -> None:
    done = ExecutionStatus.COMPLETED
    child = answer_to_pb(ChildAnswer("e1", 2, "m", 1, 1, "c1", done, b"{}", "", item=0))
    assert child.HasField("item") and child.item == 0
    plain = answer_to_pb(ChildAnswer("e1", 2, "k", 1, 1, "c2", done, b"{}", ""))
    assert not plain.HasField("item")
    task = task_answer_to_pb(TaskAnswer("e1", 2, "m", 1, 2, True, b"1", "", False, item=3))
    assert (task.item, task.attempt) == (3, 2)
    assert not task_answer_to_pb(TaskAnswer("e1", 2, "t", 1, 1, True, b"1", "", False)).HasField(
        "item"
    )
    order = ExecuteOrder("e1", 2, "d", b"{}", b"{}", 0, JOURNAL, None)
    execute = pb.Execute.FromString(execute_to_pb(order, with_definition=True).SerializeToString())
    assert [codec.result_from_pb(r) for r in execute.checkpoint] == JOURNAL
