"""``orchestrator.tasks.step``, the FSL action protocol's reports, without servers: what a report
parses to, which fields a bad one names, the task check, and which ``TaskService`` call each
report makes (a fake over ``MagicMock`` of the service)."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import AsyncMock, create_autospec

import pytest

from orchestrator.errors import InvalidReport, NotFound
from orchestrator.store import TaskRow
from orchestrator.tasks.service import TaskService
from orchestrator.tasks.step import StepReport, check_task, parse_report, step_report

REPORT = {"flowId": "exec-1", "stepName": "A", "ackState": "SUCCESS", "uuid": "tok"}


def _row() -> TaskRow:
    return TaskRow("tok", "exec-1", "wf", "A", 1, 1, "", b"{}", "running", 0.0, kind="callback")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (REPORT, StepReport("exec-1", "A", "SUCCESS", "tok", True)),
        ({**REPORT, "done": True}, StepReport("exec-1", "A", "SUCCESS", "tok", True)),
        ({**REPORT, "done": False}, StepReport("exec-1", "A", "SUCCESS", "tok", False)),
        (
            {**REPORT, "ackState": "", "done": False},
            StepReport("exec-1", "A", "", "tok", False),
        ),
        (
            {k: v for k, v in REPORT.items() if k != "ackState"} | {"done": False},
            StepReport("exec-1", "A", "", "tok", False),
        ),
        (
            {**REPORT, "build": 17, "ackStates": ["x"]},
            StepReport("exec-1", "A", "SUCCESS", "tok", True),
        ),
    ],
)
def test_reports_parse(body: dict[str, Any], expected: StepReport) -> None:
    assert parse_report(body) == expected


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        (None, ["body"]),
        ([REPORT], ["body"]),
        ({}, ["flowId", "stepName", "ackState", "uuid"]),
        ({**REPORT, "uuid": None}, ["uuid"]),
        ({**REPORT, "flowId": 1, "stepName": ""}, ["flowId", "stepName"]),
        ({**REPORT, "ackState": ""}, ["ackState"]),
        ({**REPORT, "done": 1}, ["done"]),
        ({**REPORT, "done": None}, ["done"]),
        ({**REPORT, "ackState": ["SUCCESS"], "done": False}, ["ackState"]),
    ],
)
def test_bad_reports_name_every_field_at_fault(body: Any, paths: list[str]) -> None:
    with pytest.raises(InvalidReport) as bad:
        parse_report(body)
    assert [i.path for i in bad.value.issues] == paths


def test_a_report_must_name_its_task_s_execution_and_step() -> None:
    check_task(parse_report(REPORT), _row())
    with pytest.raises(InvalidReport) as other:
        check_task(parse_report({**REPORT, "flowId": "exec-2", "stepName": "B"}), _row())
    assert [str(i) for i in other.value.issues] == [
        "flowId: is 'exec-2', but the task belongs to execution 'exec-1'",
        "stepName: is 'B', but the task is step 'A'",
    ]


def _tasks() -> Any:
    tasks = create_autospec(TaskService, instance=True)
    tasks.get = AsyncMock(return_value=_row())
    return tasks


async def test_done_completes_with_the_ack_state_and_the_report_as_output() -> None:
    tasks = _tasks()
    body = {**REPORT, "build": 17}
    await step_report(tasks, body)
    tasks.complete.assert_awaited_once()
    token, output = tasks.complete.await_args.args
    assert token == "tok" and json.loads(output) == body
    assert tasks.complete.await_args.kwargs == {"outcome": "SUCCESS"}
    tasks.heartbeat.assert_not_awaited()


async def test_not_done_is_a_heartbeat_with_the_report_as_details() -> None:
    tasks = _tasks()
    body = {**REPORT, "done": False, "percent": 40}
    await step_report(tasks, body)
    tasks.heartbeat.assert_awaited_once()
    assert tasks.heartbeat.await_args.args == ("tok",)
    assert json.loads(tasks.heartbeat.await_args.kwargs["details_json"]) == body
    tasks.complete.assert_not_awaited()


async def test_nothing_is_looked_up_for_a_bad_report_nor_answered_for_a_mismatch() -> None:
    tasks = _tasks()
    with pytest.raises(InvalidReport):
        await step_report(tasks, {"uuid": "tok"})
    tasks.get.assert_not_awaited()
    with pytest.raises(InvalidReport):
        await step_report(tasks, {**REPORT, "stepName": "B"})
    tasks.complete.assert_not_awaited()
    tasks.get = AsyncMock(side_effect=NotFound("no task with token 'x'"))
    with pytest.raises(NotFound):
        await step_report(tasks, {**REPORT, "uuid": "x"})
