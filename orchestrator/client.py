"""``WeirClient``: a typed async client for the orchestrator's gRPC API (what the CLI uses).

Every call has a deadline; a failed call raises ``RpcError`` carrying the status code and the
server's message (which names the workflow, field or id that was wrong).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from engine.server import codec
from engine.server.grpc_server import CHANNEL_OPTIONS
from orchestrator.errors import RpcError
from orchestrator.proto.v1 import orchestrator_pb2 as pb
from orchestrator.proto.v1 import orchestrator_pb2_grpc as pb_grpc


class WeirClient:
    """``async with WeirClient("127.0.0.1:50051") as client: await client.start(...)``."""

    def __init__(self, target: str, *, timeout: float = 30.0) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.OrchestratorStub(self._channel)

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def __aenter__(self) -> WeirClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None

    def _error(self, exc: grpc.aio.AioRpcError) -> RpcError:
        details = exc.details() or ""
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            details = f"cannot reach the orchestrator at {self.target}: {details}"
        return RpcError(exc.code(), details, target=self.target)

    async def register(self, source: str) -> pb.RegisterWorkflowResponse:
        request = pb.RegisterWorkflowRequest(source=source)
        response: pb.RegisterWorkflowResponse = await self._call(
            self._stub.RegisterWorkflow, request
        )
        return response

    async def workflows(self) -> list[pb.WorkflowSummary]:
        response = await self._call(self._stub.ListWorkflows, pb.ListWorkflowsRequest())
        return list(response.workflows)

    async def workflow(self, name: str, version: str = "") -> pb.Workflow:
        response: pb.Workflow = await self._call(
            self._stub.GetWorkflow, pb.GetWorkflowRequest(name=name, version=version)
        )
        return response

    async def start(
        self,
        workflow: str,
        inputs: dict[str, Any] | None = None,
        *,
        version: str = "",
        routing_key: str = "",
        idempotency_key: str = "",
    ) -> pb.Execution:
        request = pb.StartExecutionRequest(
            workflow=workflow,
            version=version,
            inputs_json=codec.to_json(inputs or {}),
            routing_key=routing_key,
            idempotency_key=idempotency_key,
        )
        response: pb.Execution = await self._call(self._stub.StartExecution, request)
        return response

    async def execution(self, execution_id: str) -> pb.Execution:
        response: pb.Execution = await self._call(
            self._stub.GetExecution, pb.GetExecutionRequest(id=execution_id)
        )
        return response

    async def versions(self, name: str) -> list[pb.Workflow]:
        response = await self._call(
            self._stub.ListWorkflowVersions, pb.ListWorkflowVersionsRequest(name=name)
        )
        return list(response.versions)

    async def deprecate(self, name: str, version: str, deprecated: bool = True) -> pb.Workflow:
        request = pb.DeprecateWorkflowVersionRequest(
            name=name, version=version, deprecated=deprecated
        )
        response: pb.Workflow = await self._call(self._stub.DeprecateWorkflowVersion, request)
        return response

    async def delete(self, name: str, version: str) -> None:
        request = pb.DeleteWorkflowVersionRequest(name=name, version=version)
        await self._call(self._stub.DeleteWorkflowVersion, request)

    async def diff(self, name: str, old: str, new: str) -> pb.WorkflowDiff:
        request = pb.DiffWorkflowVersionsRequest(name=name, from_version=old, to_version=new)
        response: pb.WorkflowDiff = await self._call(self._stub.DiffWorkflowVersions, request)
        return response

    async def executions(
        self, *, workflow: str = "", status: int = 0, limit: int = 100, parent: str = ""
    ) -> list[pb.ExecutionSummary]:
        request = pb.ListExecutionsRequest(
            workflow=workflow,
            status=status,  # type: ignore[arg-type]
            limit=limit,
            parent_execution_id=parent,
        )
        response = await self._call(self._stub.ListExecutions, request)
        return list(response.executions)

    async def cancel(self, execution_id: str, reason: str = "") -> pb.Execution:
        response: pb.Execution = await self._call(
            self._stub.CancelExecution, pb.CancelExecutionRequest(id=execution_id, reason=reason)
        )
        return response

    async def engines(self) -> list[pb.EngineInfo]:
        response = await self._call(self._stub.ListEngines, pb.ListEnginesRequest())
        return list(response.engines)

    async def events(
        self, *, execution_id: str = "", workflow: str = ""
    ) -> AsyncIterator[pb.Event]:
        """Events as they happen; for one execution, its history first, ending when it ends."""
        call = self._stub.WatchEvents(
            pb.WatchEventsRequest(execution_id=execution_id, workflow=workflow)
        )
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()

    async def wait(self, execution_id: str) -> pb.Execution:
        """Wait until the execution has finished and return it."""
        async for _ in self.events(execution_id=execution_id):
            pass
        return await self.execution(execution_id)
