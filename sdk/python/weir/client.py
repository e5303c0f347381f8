"""``weir.Client``: a typed async client for the orchestrator's gRPC API (what the CLI uses).

Every call has a deadline; a failed call raises ``weir.ApiError`` carrying the status code and
the server's message (which names the workflow, field or id that was wrong). User data (inputs,
outputs) travels as JSON bytes in the ``*_json`` fields of the messages returned.

    async with weir.Client("127.0.0.1:50051") as client:
        execution = await client.start("order-processing", {"amount": 10})
        done = await client.wait(execution.id)
        for task in await client.tasks(queue="send_email"):
            await client.complete_task(task.token, b'{"sent": true}')
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from weir._errors import ApiError
from weir.channel import CHANNEL_OPTIONS
from weir.proto.v1 import orchestrator_pb2 as pb
from weir.proto.v1 import orchestrator_pb2_grpc as pb_grpc
from weir.proto.v1 import worker_pb2 as wpb
from weir.proto.v1 import worker_pb2_grpc as wpb_grpc


class Client:
    """``async with Client("127.0.0.1:50051") as client: await client.start(...)``; ``token``
    is sent as ``authorization: Bearer <token>`` (the orchestrator's ``API_TOKEN``)."""

    def __init__(self, target: str, *, timeout: float = 30.0, token: str = "") -> None:
        self.target = target
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.OrchestratorStub(self._channel)
        self._workers = wpb_grpc.WorkersStub(self._channel)

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None

    def _error(self, exc: grpc.aio.AioRpcError) -> ApiError:
        details = exc.details() or ""
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            details = f"cannot reach the orchestrator at {self.target}: {details}"
        return ApiError(exc.code(), details, target=self.target)

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
            inputs_json=_json(inputs or {}),
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

    async def retry(self, execution_id: str, *, from_node: str = "") -> pb.Execution:
        """A new execution of an ended one's version and inputs that reuses the results of the
        nodes that finished in it and runs the rest: the ones that did not finish, and with
        ``from_node`` that node and what follows it too. The new execution's ``retry_of``
        names the original, and the original's ``retried_by`` the new one.

            retry = await client.retry(failed.id)
            done = await client.wait(retry.id)
        """
        request = pb.RetryExecutionRequest(id=execution_id, from_node=from_node)
        response: pb.Execution = await self._call(self._stub.RetryExecution, request)
        return response

    async def signal(
        self, execution_id: str, name: str, *, outcome: str = "", data: Any = None
    ) -> pb.SignalExecutionResponse:
        """Send the signal ``name`` to an execution. A ``wait: {signal: NAME}`` node waiting
        for it completes with ``data`` as its output and ``outcome`` routing its ``next``
        (empty: the data's ``outcome`` field, or SUCCESS). A signal no node waits for yet is
        kept, and consumed when one does. The answer's ``node`` (and ``visit``) names the node
        that consumed it at once; empty when it was kept.

            receipt = await client.signal(execution.id, "approve", outcome="AGREE",
                                          data={"by": "ada"})
            if not receipt.node:
                print("kept until a node waits for it")

        ``ApiError`` with NOT_FOUND for an unknown execution, FAILED_PRECONDITION for a
        finished one, INVALID_ARGUMENT for a name no ``wait`` node of its workflow waits for.
        """
        request = pb.SignalExecutionRequest(
            execution_id=execution_id, name=name, outcome=outcome, data_json=_json(data)
        )
        response: pb.SignalExecutionResponse = await self._call(self._stub.SignalExecution, request)
        return response

    async def engines(self) -> list[pb.EngineInfo]:
        response = await self._call(self._stub.ListEngines, pb.ListEnginesRequest())
        return list(response.engines)

    async def event_batches(
        self,
        *,
        execution_id: str = "",
        workflow: str = "",
        after: int | None = None,
        follow: bool = True,
        types: list[str] | None = None,
        min_severity: int = 0,
        limit: int = 0,
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        """``WatchEvents`` as the server sends it: batches, the last one possibly ``lagged``."""
        request = pb.WatchEventsRequest(
            execution_id=execution_id,
            workflow=workflow,
            follow=follow,
            types=types or [],
            min_severity=min_severity,  # type: ignore[arg-type]
            limit=limit,
        )
        if after is not None:
            request.after = after
        call = self._stub.WatchEvents(request, metadata=self._metadata)
        try:
            async for batch in call:
                yield batch
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()

    async def events(
        self,
        *,
        execution_id: str = "",
        workflow: str = "",
        after: int | None = None,
        follow: bool = True,
        types: list[str] | None = None,
        min_severity: int = 0,
        limit: int = 0,
        on_lagged: Callable[[int], None] | None = None,
    ) -> AsyncIterator[pb.Event]:
        """Events one by one (see ``WatchEventsRequest``). A follower that falls behind is
        resumed from the server's log where it was cut off, so it misses none; ``on_lagged``
        is told the resume point each time."""
        while True:
            lagged: int | None = None
            async for batch in self.event_batches(
                execution_id=execution_id,
                workflow=workflow,
                after=after,
                follow=follow,
                types=types,
                min_severity=min_severity,
                limit=limit,
            ):
                for event in batch.events:
                    after = event.sequence
                    yield event
                if batch.HasField("lagged_after"):
                    lagged = batch.lagged_after
            if lagged is None:
                return
            if on_lagged is not None:
                on_lagged(lagged)
            after = lagged

    async def triggers(self, workflow: str = "") -> list[pb.Trigger]:
        response = await self._call(
            self._stub.ListTriggers, pb.ListTriggersRequest(workflow=workflow)
        )
        return list(response.triggers)

    async def put_trigger(self, workflow: str, name: str, spec: dict[str, Any]) -> pb.Trigger:
        request = pb.PutTriggerRequest(workflow=workflow, name=name, spec_json=_json(spec))
        response: pb.Trigger = await self._call(self._stub.PutTrigger, request)
        return response

    async def delete_trigger(self, workflow: str, name: str) -> None:
        request = pb.DeleteTriggerRequest(workflow=workflow, name=name)
        await self._call(self._stub.DeleteTrigger, request)

    async def wait(self, execution_id: str) -> pb.Execution:
        """Wait until the execution has finished and return it."""
        async for _ in self.events(execution_id=execution_id):
            pass
        return await self.execution(execution_id)

    # --- tasks and workers -------------------------------------------------------------------

    async def tasks(
        self,
        *,
        queue: str = "",
        status: wpb.TaskStatus.ValueType = wpb.TASK_STATUS_UNSPECIFIED,
        execution_id: str = "",
        limit: int = 100,
    ) -> list[wpb.TaskInfo]:
        request = wpb.ListTasksRequest(
            queue=queue, status=status, execution_id=execution_id, limit=limit
        )
        response = await self._call(self._workers.ListTasks, request)
        return list(response.tasks)

    async def complete_task(
        self, token: str, output_json: bytes = b"null", *, outcome: str = ""
    ) -> wpb.TaskInfo:
        """Complete a task by its token with the node's output (JSON bytes); ``outcome``
        routes the node's ``next`` (empty: the output's ``outcome`` field, or SUCCESS). The
        same answer twice is accepted twice; any other answer for an ended task raises
        ``ApiError`` (FAILED_PRECONDITION).

            for task in await client.tasks(queue="approvals"):
                await client.complete_task(task.token, b'{"by": "ada"}', outcome="AGREE")
        """
        request = wpb.CompleteTaskRequest(token=token, output_json=output_json, outcome=outcome)
        response: wpb.TaskInfo = await self._call(self._workers.CompleteTask, request)
        return response

    async def fail_task(
        self, token: str, message: str, *, retryable: bool = True, kind: str = ""
    ) -> wpb.TaskInfo:
        request = wpb.FailTaskRequest(token=token, message=message, retryable=retryable, type=kind)
        response: wpb.TaskInfo = await self._call(self._workers.FailTask, request)
        return response

    async def workers(self) -> list[wpb.WorkerInfo]:
        response = await self._call(self._workers.ListWorkers, wpb.ListWorkersRequest())
        return list(response.workers)


def _json(value: Any) -> bytes:
    """Compact UTF-8 JSON (empty bytes for None), as the servers write it."""
    if value is None:
        return b""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
