"""``POST /step``: reports of actions speaking the FSL seed's protocol (see
``orchestrator.tasks.step``).

At the root, not under ``/api/v1``, so that an action service written for the seed's system
works against weir unchanged. The report's ``uuid`` (the task token, 128 random bits) is what
authorises it: the route is open without ``API_TOKEN`` like the health probes, since an
action service holds a task's token, not the API's (``middleware.OPEN_PATHS``).

The body is read as JSON whatever its ``Content-Type``, and checked by ``step_report`` so that
every problem is a 400 naming its field, as the protocol's callers expect.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from engine.errors import Issue
from orchestrator.api.rest.common import ERROR_RESPONSES, services_of
from orchestrator.api.rest.models import ErrorBody
from orchestrator.errors import InvalidReport
from orchestrator.services import Services
from orchestrator.tasks.step import parse_report, step_report

router = APIRouter(tags=["tasks"], responses=ERROR_RESPONSES)

Api = Annotated[Services, Depends(services_of)]


class StepIn(BaseModel):
    """What the action reports (other fields are allowed and kept in the node's output); the
    field names are the protocol's."""

    model_config = ConfigDict(extra="allow")

    flowId: str = Field(description="The execution id weir sent.")
    stepName: str = Field(description="The step (node) weir sent.")
    ackState: str = Field(
        default="", description="The outcome (one of the ackStates sent); required when done."
    )
    uuid: str = Field(description="The task token weir sent.")
    done: bool = Field(default=True, description="False: a progress report; the task stays open.")


class StepOut(BaseModel):
    """The report as taken (``done`` true when it was left out)."""

    flowId: str
    stepName: str
    ackState: str
    uuid: str
    done: bool


@router.post(
    "/step",
    response_model=StepOut,
    summary="An action's report (FSL protocol): complete or update a task by its token",
    description="`{flowId, stepName, ackState, uuid, done}`: `uuid` is the task token the "
    "action received. `done` (default true) completes the task with `ackState` as its outcome "
    "and the report as the node's output; `done: false` is a progress report (a heartbeat "
    "with the report as details). Authorised by the token itself: open with API_TOKEN set. "
    "400 `invalid_report` names the field at fault (also a flowId or stepName that is not the "
    "task's), 404 for an unknown uuid, 409 `task_ended` for a task that ended otherwise.",
    responses={400: {"model": ErrorBody, "description": "A malformed or mismatched report."}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": StepIn.model_json_schema()}},
        }
    },
)
async def step(request: Request, api: Api) -> StepOut:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidReport([Issue("body", "is not JSON")]) from None
    report = parse_report(body)
    await step_report(api.tasks, body)
    if report.done:
        await api.tasks.durable()  # answered once the completion is durable, as /complete is
    return StepOut(
        flowId=report.flow_id,
        stepName=report.step_name,
        ackState=report.ack_state,
        uuid=report.uuid,
        done=report.done,
    )
