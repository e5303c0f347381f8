"""The ``weir.orchestrator.v1.Orchestrator`` servicer.

Handlers convert messages and call the service layer (``orchestrator.services.Services``);
errors become gRPC statuses through one table (``orchestrator.api.errors``), with the error's
own message as the details, so a client sees which field, workflow or id was wrong and never a
traceback.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import grpc
from weir.proto.v1 import orchestrator_pb2 as pb
from weir.proto.v1 import orchestrator_pb2_grpc as pb_grpc

from engine.errors import InputError, Issue
from engine.server import codec
from orchestrator.api import convert
from orchestrator.api.errors import abort
from orchestrator.registry import WorkflowVersion
from orchestrator.services import Services
from orchestrator.watch import MAX_LIMIT, EventQuery, LaggedNotice

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


def _require(**fields: str) -> None:
    """``InputError`` naming every field that is empty."""
    issues = [Issue(name, "is required") for name, value in fields.items() if not value]
    if issues:
        raise InputError(issues)


class OrchestratorApi(pb_grpc.OrchestratorServicer):
    def __init__(self, services: Services) -> None:
        self.api = services

    async def RegisterWorkflow(
        self, request: pb.RegisterWorkflowRequest, context: Context
    ) -> pb.RegisterWorkflowResponse:
        try:
            if not request.source.strip():
                raise InputError([Issue("source", "is empty: send the definition's YAML or JSON")])
            version, created = await self.api.workflows.register(request.source)
        except Exception as exc:
            await abort(context, exc)
        return pb.RegisterWorkflowResponse(
            workflow=convert.workflow_to_pb(version), created=created
        )

    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: Context
    ) -> pb.ListWorkflowsResponse:
        return pb.ListWorkflowsResponse(
            workflows=[
                pb.WorkflowSummary(
                    name=w.name,
                    latest_version=w.latest_version,
                    versions=w.versions,
                    description=w.description,
                )
                for w in self.api.workflows.summaries()
            ]
        )

    async def GetWorkflow(self, request: pb.GetWorkflowRequest, context: Context) -> pb.Workflow:
        try:
            return self._workflow(self.api.workflows.get(request.name, request.version))
        except Exception as exc:
            await abort(context, exc)

    def _workflow(self, wf: WorkflowVersion) -> pb.Workflow:
        return convert.workflow_to_pb(wf, self.api.workflows.used_by(wf))

    async def ListWorkflowVersions(
        self, request: pb.ListWorkflowVersionsRequest, context: Context
    ) -> pb.ListWorkflowVersionsResponse:
        try:
            versions = self.api.workflows.versions(request.name)
            return pb.ListWorkflowVersionsResponse(versions=[self._workflow(v) for v in versions])
        except Exception as exc:
            await abort(context, exc)

    async def DeprecateWorkflowVersion(
        self, request: pb.DeprecateWorkflowVersionRequest, context: Context
    ) -> pb.Workflow:
        try:
            _require(name=request.name, version=request.version)
            wf = await self.api.workflows.deprecate(
                request.name, request.version, request.deprecated
            )
            return self._workflow(wf)
        except Exception as exc:
            await abort(context, exc)

    async def DeleteWorkflowVersion(
        self, request: pb.DeleteWorkflowVersionRequest, context: Context
    ) -> pb.DeleteWorkflowVersionResponse:
        try:
            _require(name=request.name, version=request.version)
            await self.api.workflows.delete(request.name, request.version)
            return pb.DeleteWorkflowVersionResponse()
        except Exception as exc:
            await abort(context, exc)

    async def DiffWorkflowVersions(
        self, request: pb.DiffWorkflowVersionsRequest, context: Context
    ) -> pb.WorkflowDiff:
        try:
            _require(
                name=request.name,
                from_version=request.from_version,
                to_version=request.to_version,
            )
            d = self.api.workflows.diff(request.name, request.from_version, request.to_version)
            return convert.diff_to_pb(request.name, request.from_version, request.to_version, d)
        except Exception as exc:
            await abort(context, exc)

    async def StartExecution(
        self, request: pb.StartExecutionRequest, context: Context
    ) -> pb.Execution:
        try:
            inputs = codec.from_json(request.inputs_json, "inputs_json")
            if inputs is None:
                inputs = {}
            if not isinstance(inputs, dict):
                raise InputError([Issue("inputs_json", "expected a JSON object")])
            record = await self.api.executions.start(
                request.workflow,
                request.version,
                inputs,
                routing_key=request.routing_key,
                idempotency_key=request.idempotency_key,
            )
            return convert.execution_to_pb(record, self.api.executions.result(record))
        except Exception as exc:
            await abort(context, exc)

    async def GetExecution(self, request: pb.GetExecutionRequest, context: Context) -> pb.Execution:
        try:
            record = await self.api.executions.get(request.id)
            return convert.execution_to_pb(record, self.api.executions.result(record))
        except Exception as exc:
            await abort(context, exc)

    async def ListExecutions(
        self, request: pb.ListExecutionsRequest, context: Context
    ) -> pb.ListExecutionsResponse:
        try:
            status = codec.EXECUTION_STATUS_FROM_PB.get(request.status) if request.status else None
            rows = await self.api.executions.list_executions(
                workflow=request.workflow,
                status=status,
                parent_id=request.parent_execution_id,
                limit=request.limit or 100,
                summary=True,  # summary_to_pb reads neither inputs nor the result
            )
            return pb.ListExecutionsResponse(executions=[convert.summary_to_pb(r) for r in rows])
        except Exception as exc:
            await abort(context, exc)

    async def CancelExecution(
        self, request: pb.CancelExecutionRequest, context: Context
    ) -> pb.Execution:
        try:
            record = await self.api.executions.cancel(request.id, request.reason)
            return convert.execution_to_pb(record, self.api.executions.result(record))
        except Exception as exc:
            await abort(context, exc)

    async def RetryExecution(
        self, request: pb.RetryExecutionRequest, context: Context
    ) -> pb.Execution:
        try:
            _require(id=request.id)
            record = await self.api.executions.retry(request.id, request.from_node or None)
            return convert.execution_to_pb(record, self.api.executions.result(record))
        except Exception as exc:
            await abort(context, exc)

    async def SignalExecution(
        self, request: pb.SignalExecutionRequest, context: Context
    ) -> pb.SignalExecutionResponse:
        try:
            _require(execution_id=request.execution_id, name=request.name)
            receipt = await self.api.executions.signal(
                request.execution_id,
                request.name,
                outcome=request.outcome,
                data_json=request.data_json or b"null",
            )
            return convert.signal_to_pb(receipt)
        except Exception as exc:
            await abort(context, exc)

    async def WatchEvents(  # type: ignore[override]  # the generated stubs know only generators
        self, request: pb.WatchEventsRequest, context: Context
    ) -> None:
        # Writes with context.write, not yield: a cancelled watch must close its subscription
        # at once, not when the garbage collector finalises a suspended generator.
        try:
            query = EventQuery.of(
                execution_id=request.execution_id,
                workflow=request.workflow,
                types=request.types,
                min_severity=request.min_severity,
            )
            stream = self.api.events.read(
                query,
                after=request.after if request.HasField("after") else None,
                follow=request.follow,
                limit=min(request.limit or 100, MAX_LIMIT),
            )
            async with contextlib.aclosing(stream):
                async for item in stream:
                    if isinstance(item, LaggedNotice):
                        notice = pb.WatchEventsResponse(lagged_after=item.resume_after)
                        await context.write(notice)
                        return
                    await context.write(
                        pb.WatchEventsResponse(events=[convert.event_to_pb(e) for e in item])
                    )
        except Exception as exc:
            await abort(context, exc)

    async def ListTriggers(
        self, request: pb.ListTriggersRequest, context: Context
    ) -> pb.ListTriggersResponse:
        try:
            triggers = await self.api.triggers.list_triggers(request.workflow)
            return pb.ListTriggersResponse(triggers=[convert.trigger_to_pb(t) for t in triggers])
        except Exception as exc:
            await abort(context, exc)

    async def PutTrigger(self, request: pb.PutTriggerRequest, context: Context) -> pb.Trigger:
        try:
            _require(workflow=request.workflow, name=request.name)
            spec = codec.from_json(request.spec_json, "spec_json")
            if not isinstance(spec, dict):
                raise InputError([Issue("spec_json", "expected a JSON object")])
            info = await self.api.triggers.put_trigger(request.workflow, request.name, spec)
            return convert.trigger_to_pb(info)
        except Exception as exc:
            await abort(context, exc)

    async def DeleteTrigger(
        self, request: pb.DeleteTriggerRequest, context: Context
    ) -> pb.DeleteTriggerResponse:
        try:
            _require(workflow=request.workflow, name=request.name)
            await self.api.triggers.delete_trigger(request.workflow, request.name)
            return pb.DeleteTriggerResponse()
        except Exception as exc:
            await abort(context, exc)

    async def ListEngines(
        self, request: pb.ListEnginesRequest, context: Context
    ) -> pb.ListEnginesResponse:
        out = pb.ListEnginesResponse()
        for engine in self.api.engines():
            out.engines.add(
                id=engine.id,
                address=engine.address,
                state=pb.EngineInfo.State.Value(f"STATE_{engine.state.upper()}"),
                healthy=engine.healthy,
                in_flight=engine.in_flight,
                capacity=engine.capacity,
                version=engine.version,
            )
        return out
