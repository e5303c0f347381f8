"""``POST /step``: the FSL seed's action protocol, answered by task token.

An FSL action (an asynchronous HTTP action speaking the seed's protocol) receives
``{flowId, stepName, ackStates, uuid, ...args}`` and reports back later with
``{flowId, stepName, ackState, uuid, done}``. ``uuid`` is the task's token, ``flowId`` its
execution and ``stepName`` its node; any task with a token can be reported this way (a ``task``
node's too).

- ``done`` true (or absent): the task completes with ``ackState`` as its outcome (it routes
  ``next``) and the whole report as the node's output.
- ``done`` false: a progress report; the task stays open and the report becomes its details
  (a heartbeat).

The report is checked before anything is looked up: a malformed one is ``InvalidReport``
naming every field at fault; so is one whose ``flowId`` or ``stepName`` is not its task's. An
unknown ``uuid`` is ``NotFound``, a report for a task that already ended otherwise
``TaskEnded`` (both from ``TaskService``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import Issue
from engine.server import codec
from orchestrator.errors import InvalidReport
from orchestrator.store import TaskRow
from orchestrator.tasks.service import TaskService


@dataclass(frozen=True, slots=True)
class StepReport:
    """A report as the action sent it (``done`` True when it left it out)."""

    flow_id: str
    step_name: str
    ack_state: str
    uuid: str
    done: bool


def parse_report(body: Any) -> StepReport:
    """``body`` (decoded JSON) as a report; ``InvalidReport`` names every field at fault.
    Fields other than the protocol's are allowed (they travel in the node's output)."""
    if not isinstance(body, dict):
        raise InvalidReport(
            [Issue("body", "expected a JSON object {flowId, stepName, ackState, uuid, done}")]
        )
    issues: list[Issue] = []

    def text(name: str, what: str, *, required: bool = True) -> str:
        value = body.get(name)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value):
            issues.append(Issue(name, f"is required: a non-empty string, {what}"))
            return ""
        return value

    done = body.get("done", True)
    if not isinstance(done, bool):
        issues.append(Issue("done", "must be true (finished) or false (a progress report)"))
        done = True
    report = StepReport(
        flow_id=text("flowId", "the execution id weir sent"),
        step_name=text("stepName", "the step (node) name weir sent"),
        ack_state=text("ackState", "the outcome, one of the ackStates weir sent", required=done),
        uuid=text("uuid", "the task token weir sent"),
        done=done,
    )
    if issues:
        raise InvalidReport(issues)
    return report


def check_task(report: StepReport, row: TaskRow) -> None:
    """``InvalidReport`` when the report names another execution or step than its task's."""
    issues = []
    if report.flow_id != row.execution_id:
        issues.append(
            Issue(
                "flowId",
                f"is {report.flow_id!r}, but the task belongs to execution {row.execution_id!r}",
            )
        )
    if report.step_name != row.node:
        issues.append(
            Issue("stepName", f"is {report.step_name!r}, but the task is step {row.node!r}")
        )
    if issues:
        raise InvalidReport(issues)


async def step_report(tasks: TaskService, body: Any) -> TaskRow:
    """Apply an action's report (see the module docstring); the task as it stands after."""
    report = parse_report(body)
    row = await tasks.get(report.uuid)
    check_task(report, row)
    data = codec.to_json(body)
    if report.done:
        return await tasks.complete(report.uuid, data, outcome=report.ack_state)
    return await tasks.heartbeat(report.uuid, details_json=data)
