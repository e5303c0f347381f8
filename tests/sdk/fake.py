"""A scripted ``Workers`` server for the SDK's tests: a real ``grpc.aio`` server on 127.0.0.1.

``FakeWorkers`` is the servicer: it welcomes each stream, records what the worker sends (hellos,
results, heartbeats, released tokens, draining, keep-alives, metadata) and sends what the test
scripts (``push``, ``cancel``, ``ack``, ``send``) on the current stream. Results are acknowledged
at once (``ACCEPTED``, or ``DUPLICATE`` for one answered before) unless ``auto_ack`` is off.
Its records survive a restart of the ``FakeServer`` holding it, so a test can stop the server,
start it again on the same port and see what the worker sends again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from weir.proto.v1 import worker_pb2 as pb
from weir.proto.v1 import worker_pb2_grpc as rpc


def task(token: str, queue: str, /, **args: Any) -> pb.Task:
    """A task of ``queue`` with ``args``; the other fields name the token."""
    return pb.Task(
        token=token,
        execution_id=f"exec-{token}",
        workflow="wf",
        node=f"node-{token}",
        visit=1,
        attempt=1,
        queue=queue,
        args_json=json.dumps(args).encode(),
        idempotency_key=f"key-{token}",
    )


@dataclass
class Received:
    """One result as the fake saw it: on which stream (1 = the first)."""

    stream: int
    result: pb.TaskResult

    @property
    def output(self) -> Any:
        assert self.result.WhichOneof("result") == "output_json", self.result
        return json.loads(self.result.output_json)

    @property
    def failure(self) -> pb.TaskFailure:
        assert self.result.WhichOneof("result") == "failure", self.result
        return self.result.failure


@dataclass
class FakeWorkers(rpc.WorkersServicer):
    heartbeat_interval: float = 0.2
    auto_ack: bool = True
    refuse_with: grpc.StatusCode | None = None
    """Abort every stream with this status (after reading the hello)."""
    hellos: list[pb.WorkerHello] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    messages: list[pb.FromWorker] = field(default_factory=list)
    """Everything after the hellos, all streams, in order."""
    results: list[Received] = field(default_factory=list)
    heartbeats: list[pb.TaskHeartbeat] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    draining: bool = False
    keepalives: int = 0
    ended: int = 0
    """Streams the worker ended itself (half-closed)."""
    _answered: dict[str, bytes] = field(default_factory=dict)
    _outgoing: asyncio.Queue[pb.ToWorker] | None = None

    # -- what tests look at

    @property
    def connected(self) -> bool:
        return self._outgoing is not None

    @property
    def streams(self) -> int:
        return len(self.hellos)

    def result(self, token: str) -> Received | None:
        """The last result received for ``token``."""
        found = [r for r in self.results if r.result.token == token]
        return found[-1] if found else None

    def results_of(self, token: str) -> list[Received]:
        return [r for r in self.results if r.result.token == token]

    # -- what tests script

    def send(self, message: pb.ToWorker) -> None:
        assert self._outgoing is not None, "no worker is connected"
        self._outgoing.put_nowait(message)

    def push(self, *tasks: pb.Task) -> None:
        self.send(pb.ToWorker(tasks=tasks))

    def cancel(self, token: str, reason: str = "execution cancelled") -> None:
        self.send(pb.ToWorker(cancelled=[pb.TaskCancelled(token=token, reason=reason)]))

    def ack(self, token: str, verdict: pb.Verdict.ValueType, message: str = "") -> None:
        self.send(pb.ToWorker(acks=[pb.TaskAck(token=token, verdict=verdict, message=message)]))

    # -- the servicer

    async def Work(
        self, request_iterator: AsyncIterator[pb.FromWorker], context: grpc.aio.ServicerContext
    ) -> None:
        first = await context.read()
        assert isinstance(first, pb.FromWorker) and first.HasField("hello"), first
        self.hellos.append(first.hello)
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        if self.refuse_with is not None:
            await context.abort(self.refuse_with, "refused by the fake")
        outgoing: asyncio.Queue[pb.ToWorker] = asyncio.Queue()
        await context.write(
            pb.ToWorker(
                welcome=pb.WorkerWelcome(
                    orchestrator_id="fake", heartbeat_interval_s=self.heartbeat_interval
                )
            )
        )
        self._outgoing = outgoing
        stream = self.streams
        writer = asyncio.ensure_future(self._write(context, outgoing))
        try:
            while isinstance(message := await context.read(), pb.FromWorker):
                self._record(stream, message, outgoing)
            self.ended += 1
        finally:
            if self._outgoing is outgoing:
                self._outgoing = None
            writer.cancel()
            await asyncio.wait([writer])

    async def _write(
        self, context: grpc.aio.ServicerContext, outgoing: asyncio.Queue[pb.ToWorker]
    ) -> None:
        while True:
            await context.write(await outgoing.get())

    def _record(
        self, stream: int, message: pb.FromWorker, outgoing: asyncio.Queue[pb.ToWorker]
    ) -> None:
        assert not message.HasField("hello"), "hello is only for the first message"
        self.messages.append(message)
        if message == pb.FromWorker():
            self.keepalives += 1
        for result in message.results:
            self.results.append(Received(stream, result))
            if self.auto_ack:
                data = result.SerializeToString()
                first = self._answered.setdefault(result.token, data)
                if len(self.results_of(result.token)) == 1:
                    verdict = pb.VERDICT_ACCEPTED
                elif first == data:
                    verdict = pb.VERDICT_DUPLICATE
                else:
                    verdict = pb.VERDICT_REFUSED
                ack = pb.TaskAck(token=result.token, verdict=verdict)
                outgoing.put_nowait(pb.ToWorker(acks=[ack]))
        self.heartbeats.extend(message.heartbeats)
        self.released.extend(message.released)
        self.draining = self.draining or message.draining

    # -- the rest of the service: not the worker's

    async def _unimplemented(self, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the fake")

    async def ListTasks(self, request: Any, context: Any) -> Any:
        return await self._unimplemented(context)

    async def GetTask(self, request: Any, context: Any) -> Any:
        return await self._unimplemented(context)

    async def CompleteTask(self, request: Any, context: Any) -> Any:
        return await self._unimplemented(context)

    async def FailTask(self, request: Any, context: Any) -> Any:
        return await self._unimplemented(context)

    async def HeartbeatTask(self, request: Any, context: Any) -> Any:
        return await self._unimplemented(context)

    async def ListWorkers(self, request: Any, context: Any) -> Any:
        return await self._unimplemented(context)


class FakeServer:
    """A grpc.aio server on 127.0.0.1 serving ``workers``; ``start`` again on the same port."""

    def __init__(self, workers: FakeWorkers) -> None:
        self.workers = workers
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        server = grpc.aio.server()
        rpc.add_WorkersServicer_to_server(self.workers, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=None)


@contextlib.asynccontextmanager
async def running_fake(workers: FakeWorkers | None = None) -> AsyncIterator[FakeServer]:
    """A started ``FakeServer``, stopped in ``finally``."""
    server = FakeServer(workers or FakeWorkers())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
