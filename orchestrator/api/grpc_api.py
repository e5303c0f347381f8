"""The ``weir.orchestrator.v1.Orchestrator`` servicer.

Handlers convert messages and call ``orchestrator.core.Orchestrator``; errors become gRPC
statuses through one table (``STATUS``), with the error's own message as the details, so a client
sees which field, workflow or id was wrong and never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc

from engine.errors import DefinitionError, InputError, Issue, WeirError
from engine.server import codec
from orchestrator.api import convert
from orchestrator.core import Orchestrator
from orchestrator.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    QueueFull,
    VersionConflict,
)
from orchestrator.monitor import Lagged
from orchestrator.proto.v1 import orchestrator_pb2 as pb
from orchestrator.proto.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator.registry import WorkflowVersion
from orchestrator.store import StoreError

log = logging.getLogger(__name__)

STATUS: list[tuple[type[Exception], grpc.StatusCode]] = [
    (DefinitionError, grpc.StatusCode.INVALID_ARGUMENT),
    (InputError, grpc.StatusCode.INVALID_ARGUMENT),
    (codec.CodecError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (VersionConflict, grpc.StatusCode.FAILED_PRECONDITION),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (QueueFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Lagged, grpc.StatusCode.ABORTED),
    (StoreError, grpc.StatusCode.UNAVAILABLE),
    (WeirError, grpc.StatusCode.FAILED_PRECONDITION),
]

Context = grpc.aio.ServicerContext[Any, Any]


async def _abort(context: Context, exc: Exception) -> NoReturn:
    for kind, code in STATUS:
        if isinstance(exc, kind):
            await context.abort(code, str(exc))
    log.exception("internal error", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")


def _require(**fields: str) -> None:
    """``InputError`` naming every field that is empty."""
    issues = [Issue(name, "is required") for name, value in fields.items() if not value]
    if issues:
        raise InputError(issues)


class OrchestratorApi(pb_grpc.OrchestratorServicer):
    def __init__(self, core: Orchestrator) -> None:
        self.core = core

    async def RegisterWorkflow(
        self, request: pb.RegisterWorkflowRequest, context: Context
    ) -> pb.RegisterWorkflowResponse:
        try:
            if not request.source.strip():
                raise InputError([Issue("source", "is empty: send the definition's YAML or JSON")])
            version, created = await self.core.register_workflow(request.source)
        except Exception as exc:
            await _abort(context, exc)
        return pb.RegisterWorkflowResponse(
            workflow=convert.workflow_to_pb(version), created=created
        )

    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: Context
    ) -> pb.ListWorkflowsResponse:
        out = pb.ListWorkflowsResponse()
        registry = self.core.registry
        for name in registry.names():
            versions = registry.versions(name)
            out.workflows.add(
                name=name,
                latest_version=versions[-1].version,
                versions=[v.version for v in versions],
                description=versions[-1].definition.description or "",
            )
        return out

    async def GetWorkflow(self, request: pb.GetWorkflowRequest, context: Context) -> pb.Workflow:
        try:
            return self._workflow(self.core.registry.get(request.name, request.version))
        except Exception as exc:
            await _abort(context, exc)

    def _workflow(self, wf: WorkflowVersion) -> pb.Workflow:
        return convert.workflow_to_pb(wf, self.core.registry.used_by(wf))

    async def ListWorkflowVersions(
        self, request: pb.ListWorkflowVersionsRequest, context: Context
    ) -> pb.ListWorkflowVersionsResponse:
        try:
            versions = self.core.registry.versions(request.name)
            if not versions:
                raise NotFound(f"workflow {request.name!r} is not registered")
            return pb.ListWorkflowVersionsResponse(versions=[self._workflow(v) for v in versions])
        except Exception as exc:
            await _abort(context, exc)

    async def DeprecateWorkflowVersion(
        self, request: pb.DeprecateWorkflowVersionRequest, context: Context
    ) -> pb.Workflow:
        try:
            _require(name=request.name, version=request.version)
            wf = await self.core.deprecate_workflow(
                request.name, request.version, request.deprecated
            )
            return self._workflow(wf)
        except Exception as exc:
            await _abort(context, exc)

    async def DeleteWorkflowVersion(
        self, request: pb.DeleteWorkflowVersionRequest, context: Context
    ) -> pb.DeleteWorkflowVersionResponse:
        try:
            _require(name=request.name, version=request.version)
            await self.core.delete_workflow(request.name, request.version)
            return pb.DeleteWorkflowVersionResponse()
        except Exception as exc:
            await _abort(context, exc)

    async def DiffWorkflowVersions(
        self, request: pb.DiffWorkflowVersionsRequest, context: Context
    ) -> pb.WorkflowDiff:
        try:
            _require(
                name=request.name,
                from_version=request.from_version,
                to_version=request.to_version,
            )
            d = self.core.diff_workflow(request.name, request.from_version, request.to_version)
            return convert.diff_to_pb(request.name, request.from_version, request.to_version, d)
        except Exception as exc:
            await _abort(context, exc)

    async def StartExecution(
        self, request: pb.StartExecutionRequest, context: Context
    ) -> pb.Execution:
        try:
            inputs = codec.from_json(request.inputs_json, "inputs_json")
            if inputs is None:
                inputs = {}
            if not isinstance(inputs, dict):
                raise InputError([Issue("inputs_json", "expected a JSON object")])
            record = await self.core.start_execution(
                request.workflow,
                request.version,
                inputs,
                routing_key=request.routing_key,
                idempotency_key=request.idempotency_key,
            )
            return convert.execution_to_pb(record, self.core.result_of(record))
        except Exception as exc:
            await _abort(context, exc)

    async def GetExecution(self, request: pb.GetExecutionRequest, context: Context) -> pb.Execution:
        try:
            record = await self.core.get(request.id)
            return convert.execution_to_pb(record, self.core.result_of(record))
        except Exception as exc:
            await _abort(context, exc)

    async def ListExecutions(
        self, request: pb.ListExecutionsRequest, context: Context
    ) -> pb.ListExecutionsResponse:
        try:
            status = codec.EXECUTION_STATUS_FROM_PB.get(request.status) if request.status else None
            rows = await self.core.list_executions(
                workflow=request.workflow,
                status=status,
                parent_id=request.parent_execution_id,
                limit=min(request.limit or 100, 10_000),
            )
            return pb.ListExecutionsResponse(executions=[convert.summary_to_pb(r) for r in rows])
        except Exception as exc:
            await _abort(context, exc)

    async def CancelExecution(
        self, request: pb.CancelExecutionRequest, context: Context
    ) -> pb.Execution:
        try:
            record = await self.core.cancel(request.id, request.reason)
            return convert.execution_to_pb(record, self.core.result_of(record))
        except Exception as exc:
            await _abort(context, exc)

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: Context
    ) -> AsyncIterator[pb.Event]:
        try:
            if request.execution_id:
                async for event in self.core.execution_events(request.execution_id):
                    yield convert.event_to_pb(event)
                return
            workflow = request.workflow
            accepts = (lambda e: e.workflow == workflow) if workflow else None
            with self.core.monitor.subscribe(accepts) as sub:
                async for event in sub:
                    yield convert.event_to_pb(event)
        except Exception as exc:
            await _abort(context, exc)

    async def ListEngines(
        self, request: pb.ListEnginesRequest, context: Context
    ) -> pb.ListEnginesResponse:
        out = pb.ListEnginesResponse()
        for info in self.core.engines():
            out.engines.add(
                id=info["id"],
                address=info["address"],
                state=pb.EngineInfo.State.Value(f"STATE_{info['state'].upper()}"),
                healthy=info["healthy"],
                in_flight=info["in_flight"],
                capacity=info["capacity"],
                version=info["version"],
            )
        return out
