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
from orchestrator.errors import AlreadyExists, NotFound, QueueFull, VersionConflict
from orchestrator.monitor import Lagged
from orchestrator.proto.v1 import orchestrator_pb2 as pb
from orchestrator.proto.v1 import orchestrator_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

STATUS: list[tuple[type[Exception], grpc.StatusCode]] = [
    (DefinitionError, grpc.StatusCode.INVALID_ARGUMENT),
    (InputError, grpc.StatusCode.INVALID_ARGUMENT),
    (codec.CodecError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (VersionConflict, grpc.StatusCode.FAILED_PRECONDITION),
    (QueueFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Lagged, grpc.StatusCode.ABORTED),
    (WeirError, grpc.StatusCode.FAILED_PRECONDITION),
]

Context = grpc.aio.ServicerContext[Any, Any]


async def _abort(context: Context, exc: Exception) -> NoReturn:
    for kind, code in STATUS:
        if isinstance(exc, kind):
            await context.abort(code, str(exc))
    log.exception("internal error", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")


class OrchestratorApi(pb_grpc.OrchestratorServicer):
    def __init__(self, core: Orchestrator) -> None:
        self.core = core

    async def RegisterWorkflow(
        self, request: pb.RegisterWorkflowRequest, context: Context
    ) -> pb.RegisterWorkflowResponse:
        try:
            if not request.source.strip():
                raise InputError([Issue("source", "is empty: send the definition's YAML or JSON")])
            version, created = self.core.register_workflow(request.source)
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
            return convert.workflow_to_pb(self.core.registry.get(request.name, request.version))
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
            record = self.core.start_execution(
                request.workflow, request.version, inputs, routing_key=request.routing_key
            )
            return convert.execution_to_pb(record, self.core.result_of(record))
        except Exception as exc:
            await _abort(context, exc)

    async def GetExecution(self, request: pb.GetExecutionRequest, context: Context) -> pb.Execution:
        try:
            record = self.core.get(request.id)
            return convert.execution_to_pb(record, self.core.result_of(record))
        except Exception as exc:
            await _abort(context, exc)

    async def ListExecutions(
        self, request: pb.ListExecutionsRequest, context: Context
    ) -> pb.ListExecutionsResponse:
        status = codec.EXECUTION_STATUS_FROM_PB.get(request.status) if request.status else None
        records = self.core.list_executions(
            workflow=request.workflow, status=status, limit=request.limit or 100
        )
        return pb.ListExecutionsResponse(executions=[convert.summary_to_pb(r) for r in records])

    async def CancelExecution(
        self, request: pb.CancelExecutionRequest, context: Context
    ) -> pb.Execution:
        try:
            record = self.core.cancel(request.id, request.reason)
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
