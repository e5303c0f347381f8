"""``/api/v1/triggers`` and ``/api/v1/workflows/{name}/triggers``: cron triggers.

A workflow definition's own ``triggers:`` are listed here too (``source: definition``); they
change with the definition. Triggers added here (``source: api``) are kept in the store.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response

from engine.state.result import iso
from orchestrator.api.convert import trigger_spec
from orchestrator.api.rest.common import ERROR_RESPONSES, services_of
from orchestrator.api.rest.models import NAME, CronTriggerList, CronTriggerOut
from orchestrator.services import Services
from orchestrator.triggers import TriggerInfo

router = APIRouter(tags=["triggers"], responses=ERROR_RESPONSES)

Api = Annotated[Services, Depends(services_of)]
WorkflowName = Annotated[str, Path(pattern=NAME)]
TriggerName = Annotated[str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")]
SPEC_EXAMPLE = {
    "cron": "0 6 * * 1-5",
    "timezone": "Europe/Paris",
    "inputs": {"day": "${trigger.time}"},
    "overlap": "skip",
    "catch_up": "none",
}


def _out(info: TriggerInfo) -> CronTriggerOut:
    return CronTriggerOut(
        workflow=info.workflow,
        name=info.name,
        source=info.source,
        **trigger_spec(info),
        last_fire_at=iso(info.last_fire_at),
        next_fire_at=iso(info.next_fire_at),
        last_execution_id=info.last_execution_id or None,
    )


@router.get("/api/v1/triggers", response_model=CronTriggerList, summary="Every cron trigger")
async def list_all(api: Api) -> CronTriggerList:
    return CronTriggerList(triggers=[_out(t) for t in await api.triggers.list_triggers()])


@router.get(
    "/api/v1/workflows/{name}/triggers",
    response_model=CronTriggerList,
    summary="A workflow's cron triggers",
)
async def list_for(name: WorkflowName, api: Api) -> CronTriggerList:
    api.workflows.versions(name)
    return CronTriggerList(triggers=[_out(t) for t in await api.triggers.list_triggers(name)])


@router.put(
    "/api/v1/workflows/{name}/triggers/{trigger}",
    response_model=CronTriggerOut,
    summary="Add or replace an API cron trigger",
)
async def put(
    name: WorkflowName,
    trigger: TriggerName,
    api: Api,
    spec: Annotated[dict[str, Any], Body(examples=[SPEC_EXAMPLE])],
) -> CronTriggerOut:
    return _out(await api.triggers.put_trigger(name, trigger, spec))


@router.delete(
    "/api/v1/workflows/{name}/triggers/{trigger}",
    status_code=204,
    summary="Delete an API cron trigger",
)
async def delete(name: WorkflowName, trigger: TriggerName, api: Api) -> Response:
    await api.triggers.delete_trigger(name, trigger)
    return Response(status_code=204)
