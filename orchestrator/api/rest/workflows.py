"""``/api/v1/workflows``: register, list, read, deprecate, delete and diff versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from engine.errors import InputError, Issue
from orchestrator.api.rest.common import ERROR_RESPONSES, services_of
from orchestrator.api.rest.models import (
    NAME,
    DeprecateIn,
    DiffOut,
    NodeChangeOut,
    Registered,
    VersionList,
    WorkflowList,
    WorkflowOut,
    WorkflowSummaryOut,
)
from orchestrator.registry import WorkflowVersion
from orchestrator.services import Services

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"], responses=ERROR_RESPONSES)

Api = Annotated[Services, Depends(services_of)]
WorkflowName = Annotated[str, Path(pattern=NAME, description="The workflow's name.")]
VersionText = Annotated[str, Path(max_length=256, description="A semantic version.")]

SOURCE_TYPES = (
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "application/json",
    "text/plain",
)


def _out(api: Services, wf: WorkflowVersion) -> WorkflowOut:
    return WorkflowOut.of(wf, api.workflows.used_by(wf))


@router.post(
    "",
    status_code=201,
    response_model=Registered,
    summary="Register a workflow version",
    description="The body is the definition, YAML or JSON. Registering the identical version "
    "again answers 200 with `created: false`.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def register(request: Request, response: Response, api: Api) -> Registered:
    kind = request.headers.get("content-type", "application/yaml").split(";")[0].strip().lower()
    if kind not in SOURCE_TYPES:
        raise HTTPException(415, f"Content-Type {kind!r}: send the definition as YAML or JSON")
    body = await request.body()
    try:
        source = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError([Issue("body", "is not UTF-8 text")]) from None
    if not source.strip():
        raise InputError([Issue("body", "is empty: send the definition's YAML or JSON")])
    version, created = await api.workflows.register(source)
    if not created:
        response.status_code = 200
    return Registered(workflow=_out(api, version), created=created)


@router.get("", response_model=WorkflowList, summary="List workflows")
async def list_workflows(api: Api) -> WorkflowList:
    return WorkflowList(workflows=[WorkflowSummaryOut.of(w) for w in api.workflows.summaries()])


@router.get("/{name}", response_model=WorkflowOut, summary="The latest usable version")
async def get_workflow(name: WorkflowName, api: Api) -> WorkflowOut:
    return _out(api, api.workflows.get(name))


@router.get("/{name}/versions", response_model=VersionList, summary="Every version, oldest first")
async def list_versions(name: WorkflowName, api: Api) -> VersionList:
    return VersionList(versions=[_out(api, v) for v in api.workflows.versions(name)])


@router.get("/{name}/versions/{version}", response_model=WorkflowOut, summary="One version")
async def get_version(name: WorkflowName, version: VersionText, api: Api) -> WorkflowOut:
    return _out(api, api.workflows.get(name, version))


@router.post(
    "/{name}/versions/{version}/deprecate",
    response_model=WorkflowOut,
    summary="Deprecate a version (or undo with `deprecated: false`)",
)
async def deprecate(
    name: WorkflowName, version: VersionText, body: DeprecateIn, api: Api
) -> WorkflowOut:
    return _out(api, await api.workflows.deprecate(name, version, body.deprecated))


@router.delete(
    "/{name}/versions/{version}",
    status_code=204,
    summary="Delete a version no execution or dependent uses",
)
async def delete_version(name: WorkflowName, version: VersionText, api: Api) -> Response:
    await api.workflows.delete(name, version)
    return Response(status_code=204)


@router.get("/{name}/diff", response_model=DiffOut, summary="What changed between two versions")
async def diff(
    name: WorkflowName,
    api: Api,
    from_version: Annotated[str, Query(alias="from", min_length=1, max_length=256)],
    to_version: Annotated[str, Query(alias="to", min_length=1, max_length=256)],
) -> DiffOut:
    d = api.workflows.diff(name, from_version, to_version)
    return DiffOut(
        name=name,
        from_version=from_version,
        to_version=to_version,
        added=list(d.added),
        removed=list(d.removed),
        changed=[NodeChangeOut(node=c.node, fields=list(c.fields)) for c in d.changed],
        other=list(d.other),
        can_continue=d.can_continue,
        reasons=list(d.reasons),
        notes=list(d.notes),
    )
