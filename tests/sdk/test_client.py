"""``weir.Client``'s signal and task-completion calls against a scripted gRPC server on
127.0.0.1: what each sends (the data as compact JSON, the outcome, the bearer token), what it
returns, and a refusal raised as ``weir.ApiError`` with the server's status and message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import weir
from weir.proto.v1 import orchestrator_pb2 as pb
from weir.proto.v1 import orchestrator_pb2_grpc as pb_grpc
from weir.proto.v1 import worker_pb2 as wpb
from weir.proto.v1 import worker_pb2_grpc as wpb_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class Orchestrator(pb_grpc.OrchestratorServicer):
    def __init__(self) -> None:
        self.signals: list[tuple[pb.SignalExecutionRequest, dict[str, str]]] = []

    async def SignalExecution(
        self, request: pb.SignalExecutionRequest, context: Context
    ) -> pb.SignalExecutionResponse:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.signals.append((request, metadata))
        if request.name == "nope":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "workflow w 1.0.0 has no wait for signal 'nope' (it waits for: approve)",
            )
        answer = pb.SignalExecutionResponse(
            id="sig-1", execution_id=request.execution_id, name=request.name
        )
        if request.outcome == "AGREE":
            answer.node, answer.visit = "D", 1
        answer.sent_at.FromSeconds(1_700_000_000)
        return answer


class Workers(wpb_grpc.WorkersServicer):
    def __init__(self) -> None:
        self.completions: list[wpb.CompleteTaskRequest] = []

    async def CompleteTask(
        self, request: wpb.CompleteTaskRequest, context: Context
    ) -> wpb.TaskInfo:
        self.completions.append(request)
        return wpb.TaskInfo(
            token=request.token,
            status=wpb.TASK_STATUS_COMPLETED,
            output_json=request.output_json,
            outcome=request.outcome,
        )


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, Orchestrator, Workers]]:
    server = grpc.aio.server()
    orchestrator, workers = Orchestrator(), Workers()
    pb_grpc.add_OrchestratorServicer_to_server(orchestrator, server)
    wpb_grpc.add_WorkersServicer_to_server(workers, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", orchestrator, workers
    finally:
        await server.stop(None)


async def test_signal_sends_the_outcome_and_data_and_returns_the_receipt(
    served: tuple[str, Orchestrator, Workers],
) -> None:
    target, orchestrator, _ = served
    async with weir.Client(target, timeout=5, token="t0k") as client:
        consumed = await client.signal("exec-1", "approve", outcome="AGREE", data={"by": "adå"})
        kept = await client.signal("exec-1", "approve")
    assert (consumed.node, consumed.visit, consumed.sent_at.seconds) == ("D", 1, 1_700_000_000)
    assert (kept.node, kept.HasField("visit")) == ("", False)
    (first, metadata), (second, _) = orchestrator.signals
    assert (first.execution_id, first.name, first.outcome) == ("exec-1", "approve", "AGREE")
    assert first.data_json == '{"by":"adå"}'.encode()
    assert json.loads(first.data_json) == {"by": "adå"}
    assert metadata["authorization"] == "Bearer t0k"
    assert (second.outcome, second.data_json) == ("", b"")  # the server reads no data as null


async def test_a_refused_signal_raises_api_error_with_the_server_s_message(
    served: tuple[str, Orchestrator, Workers],
) -> None:
    target, _, _ = served
    async with weir.Client(target, timeout=5) as client:
        with pytest.raises(weir.ApiError) as refused:
            await client.signal("exec-1", "nope")
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "(it waits for: approve)" in refused.value.details
    assert refused.value.target == target


async def test_complete_task_sends_its_outcome(served: tuple[str, Orchestrator, Workers]) -> None:
    target, _, workers = served
    async with weir.Client(target, timeout=5) as client:
        done = await client.complete_task("tok", b'{"by": "ada"}', outcome="REJECT")
        plain = await client.complete_task("tok2")
    assert (done.outcome, done.status) == ("REJECT", wpb.TASK_STATUS_COMPLETED)
    assert [(r.token, r.output_json, r.outcome) for r in workers.completions] == [
        ("tok", b'{"by": "ada"}', "REJECT"),
        ("tok2", b"null", ""),
    ]
    assert plain.outcome == ""
