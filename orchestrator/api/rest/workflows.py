"""``/api/v1/workflows``: register, list, read, deprecate, delete and diff versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from engine.errors import InputError, Issue
from orchestrator.api.rest.common import ERROR_RESPONSES, core_of
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
from orchestrator.core import Orchestrator
from orchestrator.registry import WorkflowVersion

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"], responses=ERROR_RESPONSES)

Core = Annotated[Orchestrator, Depends(core_of)]
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


def _out(core: Orchestrator, wf: WorkflowVersion) -> WorkflowOut:
    return WorkflowOut.of(wf, core.registry.used_by(wf))


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
async def register(request: Request, response: Response, core: Core) -> Registered:
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
    version, created = await core.register_workflow(source)
    if not created:
        response.status_code = 200
    return Registered(workflow=_out(core, version), created=created)


@router.get("", response_model=WorkflowList, summary="List workflows")
async def list_workflows(core: Core) -> WorkflowList:
    return WorkflowList(workflows=[WorkflowSummaryOut.of(w) for w in core.workflow_summaries()])


@router.get("/{name}", response_model=WorkflowOut, summary="The latest usable version")
async def get_workflow(name: WorkflowName, core: Core) -> WorkflowOut:
    return _out(core, core.registry.get(name))


@router.get("/{name}/versions", response_model=VersionList, summary="Every version, oldest first")
async def list_versions(name: WorkflowName, core: Core) -> VersionList:
    return VersionList(versions=[_out(core, v) for v in core.workflow_versions(name)])


@router.get("/{name}/versions/{version}", response_model=WorkflowOut, summary="One version")
async def get_version(name: WorkflowName, version: VersionText, core: Core) -> WorkflowOut:
    return _out(core, core.registry.get(name, version))


@router.post(
    "/{name}/versions/{version}/deprecate",
    response_model=WorkflowOut,
    summary="Deprecate a version (or undo with `deprecated: false`)",
)
async def deprecate(
    name: WorkflowName, version: VersionText, body: DeprecateIn, core: Core
) -> WorkflowOut:
    return _out(core, await core.deprecate_workflow(name, version, body.deprecated))


@router.delete(
    "/{name}/versions/{version}",
    status_code=204,
    summary="Delete a version no execution or dependent uses",
)
async def delete_version(name: WorkflowName, version: VersionText, core: Core) -> Response:
    await core.delete_workflow(name, version)
    return Response(status_code=204)


@router.get("/{name}/diff", response_model=DiffOut, summary="What changed between two versions")
async def diff(
    name: WorkflowName,
    core: Core,
    from_version: Annotated[str, Query(alias="from", min_length=1, max_length=256)],
    to_version: Annotated[str, Query(alias="to", min_length=1, max_length=256)],
) -> DiffOut:
    d = core.diff_workflow(name, from_version, to_version)
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
