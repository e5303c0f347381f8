"""Every example in examples/ runs in-process and gives the result its comments promise; those
with task nodes need workers, and say so (tests/integration/test_tasks.py runs them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.definition import load_file
from engine.local import LocalWorkflows, run_workflow
from engine.testing import scripted_server

EXAMPLES = Path(__file__).parents[2] / "examples"


async def run(name: str, **inputs: Any) -> dict[str, Any]:
    return (await run_workflow(load_file(EXAMPLES / name), inputs)).to_json()


async def test_etl_passes_data_along() -> None:
    result = await run("etl.yaml", rows=3)
    assert result["status"] == "completed"
    assert result["path"] == ["extract", "transform", "load"]
    assert result["outputs"] == {
        "loaded": 3,
        "total": pytest.approx(72.0),
        "summary": "loaded 3 rows from api",
    }
    assert result["nodes"]["transform"]["output"]["rows"][2] == {
        "id": 3,
        "amount": pytest.approx(36.0),
    }


async def test_arithmetic() -> None:
    result = await run("arithmetic.yaml", a=12, b=4)
    assert result["status"] == "completed"
    assert result["outputs"] == {
        "sum": 16,
        "difference": 8,
        "product": 48,
        "quotient": 3.0,
        "error": None,
    }
    assert result["nodes"]["DIV_BY_ZERO"]["status"] == "skipped"


async def test_arithmetic_division_by_zero_takes_the_error_path() -> None:
    result = await run("arithmetic.yaml", a=12, b=0)
    assert result["status"] == "completed"
    assert result["outputs"]["quotient"] is None
    assert result["outputs"]["error"] == "cannot divide 12 by zero"
    div = result["nodes"]["DIV"]
    assert (div["status"], div["outcome"]) == ("failed", "FAIL")
    assert div["error"].startswith("DIV:1: division by zero")
    assert result["path"][-2:] == ["DIV_BY_ZERO", "REPORT"] or "DIV_BY_ZERO" in result["path"]


async def test_order_confirmed() -> None:
    result = await run("order.yaml")
    assert result["status"] == "completed"
    assert result["outputs"] == {"status": "confirmed", "total": 120.0, "refunded": None}
    assert result["nodes"]["compensate"]["status"] == "skipped"
    assert result["nodes"]["notify_warehouse"]["output"] == {"order": "A-1001", "notified": True}


async def test_order_out_of_stock_is_compensated_after_retries() -> None:
    result = await run("order.yaml", in_stock=False)
    assert result["outputs"] == {"status": "compensated", "total": 120.0, "refunded": 120.0}
    reserve = result["nodes"]["reserve_inventory"]
    assert (reserve["status"], reserve["attempts"]) == ("failed", 3)
    assert "out of stock" in reserve["error"]
    assert result["nodes"]["confirmation"]["status"] == "skipped"
    assert result["nodes"]["compensate"]["status"] == "completed"


def ack(state: str) -> tuple[int, dict[str, Any]]:
    return 200, {"flowId": "f", "stepName": "s", "ackState": state, "uuid": "u", "done": True}


async def test_approval_flow_follows_outcomes_and_fail_loops() -> None:
    script = {
        "/ci": [ack("FAIL"), ack("SUCCESS")],  # A fails once, loops to itself
        "/approval": [ack("NEXT")],  # D asks for a second approval
        "/approval2": [ack("FAIL"), ack("FAIL"), ack("AGREE")],  # E loops twice, then agrees
        "/deploy": [ack("SUCCESS")],
        "/notify": [ack("SUCCESS")],
    }
    with scripted_server(script) as server:
        result = await run("approval-flow.yaml", actions_url=server.url)
    assert result["status"] == "completed", result["error"]
    assert result["path"] == ["A", "A", "D", "E", "E", "E", "B", "C"]
    assert result["nodes"]["E"]["visits"] == 3 and result["nodes"]["E"]["outcome"] == "AGREE"
    assert result["outputs"] == {"deployed": True, "notified": True}
    first = server.requests[0]
    assert first["path"] == "/ci" and first["body"]["stepName"] == "A"
    assert first["body"]["flowId"] == result["id"] and first["body"]["retry_count"] == 10
    assert server.requests[2]["body"] == {
        "flowId": result["id"],
        "stepName": "D",
        "work_order": "nz00001",
        "version": 12343,
    }


async def test_approval_flow_reject_goes_to_notify() -> None:
    script = {
        "/ci": [ack("SUCCESS")],
        "/approval": [ack("REJECT")],
        "/notify": [ack("FAIL"), ack("SUCCESS")],
    }
    with scripted_server(script) as server:
        result = await run("approval-flow.yaml", actions_url=server.url)
    assert result["path"] == ["A", "D", "C", "C"]
    assert result["nodes"]["B"]["status"] == "skipped" and result["outputs"]["deployed"] is False


async def test_approval_flow_endless_failure_hits_max_visits() -> None:
    with scripted_server({"/ci": [ack("FAIL")]}) as server:
        result = await run("approval-flow.yaml", actions_url=server.url)
    assert result["status"] == "failed"
    assert result["error"] == {"node": "A", "message": "entered more than max_visits (10) times"}
    assert server.paths().count("/ci") == 10


async def test_order_batch_runs_two_orders_as_sub_workflows() -> None:
    workflows = LocalWorkflows.from_directory(EXAMPLES)
    definition = load_file(EXAMPLES / "order-batch.yaml")
    result = (await run_workflow(definition, {}, workflows=workflows)).to_json()
    assert result["outputs"] == {"confirmed": 2, "total": 156.0}
    children = result["children"]
    assert [c["workflow"] for c in children] == ["order-processing"] * 2
    assert {c["parent"]["node"] for c in children} == {"first", "second"}
    result = (
        await run_workflow(definition, {"second_in_stock": False}, workflows=workflows)
    ).to_json()
    assert result["status"] == "completed"
    assert result["outputs"] == {"confirmed": 1, "total": 156.0}


async def test_orders_map_runs_a_sub_workflow_per_order_and_tolerates_one_failure() -> None:
    workflows = LocalWorkflows.from_directory(EXAMPLES)
    definition = load_file(EXAMPLES / "orders-map.yaml")
    result = (await run_workflow(definition, {}, workflows=workflows)).to_json()
    assert result["status"] == "completed", result["error"]
    assert result["outputs"] == {"orders": 4, "confirmed": 2, "total": 84.0}
    process = result["nodes"]["process"]
    assert [i["status"] for i in process["items"]] == [
        "completed",
        "completed",
        "failed",
        "completed",
    ]
    assert "amount must be positive" in process["items"][2]["error"]
    assert [o and o["status"] for o in process["output"]] == [
        "confirmed",
        "compensated",
        None,
        "confirmed",
    ]
    assert len(result["children"]) == 4
    two_failures = {"orders": [{"id": "X", "amount": -1}, {"id": "Y", "amount": 0}]}
    result = (await run_workflow(definition, two_failures, workflows=workflows)).to_json()
    assert result["status"] == "failed"
    assert result["error"]["message"].startswith("2 of 2 items failed (tolerate 1)")


async def test_task_nodes_in_process_fail_saying_they_need_workers() -> None:
    result = await run("user-onboarding.yaml", user_email="ada@example.com")
    assert result["status"] == "failed"
    assert result["error"]["node"] == "welcome_email"
    assert result["error"]["message"] == (
        "task on queue 'send_email' needs an orchestrator and its workers (weir run has none)"
    )
    assert result["nodes"]["welcome_email"]["attempts"] == 1  # not retried: it cannot succeed
