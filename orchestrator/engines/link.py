"""``EngineLink``: the orchestrator's connection to one engine.

A link owns a gRPC channel, the long-lived ``Connect`` stream and a health-check loop (both run
under the ``Supervisor``). It turns what the engine sends into domain messages
(``adapter.report_from_pb``) for its ``LinkHandler``, and the handler's orders into ``ToEngine``
messages: protobuf of the engine protocol goes no further. It never decides placement.

Readiness: the stream is up (the engine said hello) and the last ``grpc.health.v1`` check said
SERVING. A check answering NOT_SERVING takes the engine off the ring but keeps the stream (a
draining engine still reports on it). A check that fails or times out, or a stream that breaks,
means the engine is lost: the stream is cancelled and the handler re-places its executions
(the engine keeps them, detached, until an orchestrator attaches or cancels them). The link keeps
reconnecting with backoff and rejoins once healthy again; the engine's hello on each new stream
lists the executions it holds, which the handler attaches or cancels (``connected``).

A message the link or its handler cannot use (a part that does not decode, or a handler that
raises on it) is logged and counted in ``bad_messages``; the stream stays up for the rest.

The link remembers which definition snapshots it sent on the current stream, so each goes once
per stream (``execute``), and what the engine last said of its load.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from weir.channel import CHANNEL_OPTIONS
from weir.proto.v1 import engine_pb2 as pb
from weir.proto.v1 import engine_pb2_grpc as pb_grpc

from orchestrator.discovery import EngineEndpoint
from orchestrator.engines import adapter
from orchestrator.engines.messages import (
    ChildAnswer,
    ExecuteOrder,
    LinkHandler,
    TaskAnswer,
    TaskTicket,
)
from orchestrator.supervise import Supervisor

log = logging.getLogger(__name__)

_BACKOFF_MIN = 0.2
_BACKOFF_MAX = 5.0
_HELLO_TIMEOUT = 5.0


class LinkState(enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """A snapshot of one link, for the engines API and the metrics."""

    id: str
    engine_id: str
    address: str
    state: LinkState
    healthy: bool
    """The stream is up and the last health check said SERVING."""
    capacity: int
    reported_in_flight: int
    version: str
    bad_messages: int

    @property
    def ready(self) -> bool:
        return self.state is LinkState.READY


class EngineLink:
    """One engine, from the orchestrator's side: ``await link.start()`` ... ``stop()``."""

    def __init__(
        self,
        endpoint: EngineEndpoint,
        handler: LinkHandler,
        supervisor: Supervisor,
        *,
        orchestrator_id: str,
        health_interval: float,
        health_timeout: float,
    ) -> None:
        self.endpoint = endpoint
        self.state = LinkState.CONNECTING
        self.engine_id = ""
        self.version = ""
        self.capacity = 0
        self.reported_in_flight = 0
        self.draining = False
        self.healthy = False
        self.stream_number = 0
        """Counts streams, so an acknowledgement meant for a closed one is not sent on the next."""
        self.bad_messages = 0
        """Messages (or parts of one) that could not be used; each was logged."""
        self._sent_digests: set[str] = set()
        """Definition snapshots the engine got on the current stream."""
        self._handler = handler
        self._supervisor = supervisor
        self._orchestrator_id = orchestrator_id
        self._health_interval = health_interval
        self._health_timeout = health_timeout
        self._channel: grpc.aio.Channel | None = None
        self._outbox = pb.ToEngine()
        self._outbox_wake = asyncio.Event()
        self._stream_up = False
        self._call: Any = None
        self._kill_reason: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def id(self) -> str:
        return self.endpoint.id

    @property
    def address(self) -> str:
        return self.endpoint.address

    @property
    def name(self) -> str:
        return self.engine_id or self.endpoint.id

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        self._channel = grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self._tasks = [
            self._supervisor.loop("engine link stream", self._stream_loop()),
            self._supervisor.loop("engine link health", self._health_loop()),
        ]

    async def stop(self) -> None:
        """Close the stream and channel; idempotent. The handler is not told."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None

    # --- sending (EnginePort) ----------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.state is LinkState.READY

    def execute(self, order: ExecuteOrder) -> None:
        with_definition = order.digest not in self._sent_digests
        if with_definition:
            self._sent_digests.add(order.digest)
        self._outbox.execute.append(adapter.execute_to_pb(order, with_definition=with_definition))
        self._outbox_wake.set()

    def cancel(self, execution_id: str, lease: int, reason: str) -> None:
        self._outbox.cancel.add(execution_id=execution_id, lease=lease, reason=reason)
        self._outbox_wake.set()

    def attach(self, execution_id: str, lease: int) -> None:
        self._outbox.attach.add(execution_id=execution_id, lease=lease)
        self._outbox_wake.set()

    def child_finished(self, answer: ChildAnswer) -> None:
        self._outbox.child_finished.append(adapter.answer_to_pb(answer))
        self._outbox_wake.set()

    def task_finished(self, answer: TaskAnswer) -> None:
        self._outbox.task_finished.append(adapter.task_answer_to_pb(answer))
        self._outbox_wake.set()

    def task_scheduled(self, ticket: TaskTicket) -> None:
        self._outbox.task_scheduled.append(adapter.ticket_to_pb(ticket))
        self._outbox_wake.set()

    def ack(self, seq: int, stream: int) -> None:
        """Acknowledge the engine's messages up to ``seq`` of stream number ``stream``."""
        if stream == self.stream_number and seq > self._outbox.ack:
            self._outbox.ack = seq
            self._outbox_wake.set()

    def forget_definition(self, digest: str) -> None:
        self._sent_digests.discard(digest)

    def assume_full(self) -> None:
        self.reported_in_flight = max(self.reported_in_flight, self.capacity)

    async def _requests(self) -> AsyncIterator[pb.ToEngine]:
        yield pb.ToEngine(hello=pb.OrchestratorHello(orchestrator_id=self._orchestrator_id))
        while True:
            box = self._outbox
            if not (
                box.execute
                or box.cancel
                or box.attach
                or box.child_finished
                or box.task_finished
                or box.task_scheduled
                or box.ack
            ):
                self._outbox_wake.clear()
                await self._outbox_wake.wait()
                continue
            message, self._outbox = self._outbox, pb.ToEngine()
            yield message

    # --- the stream --------------------------------------------------------------------------

    async def _stream_loop(self) -> None:
        backoff = _BACKOFF_MIN
        while not self._stopping:
            reason = await self._one_stream()
            if self._stream_up:
                self._stream_up = False
                self._set_lost(reason)
                backoff = _BACKOFF_MIN
            else:
                log.debug("engine %s at %s: %s", self.id, self.address, reason)
            if self._stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _one_stream(self) -> str:
        """Run one stream until it ends; return why it ended."""
        assert self._channel is not None
        stub = pb_grpc.EngineStub(self._channel)
        self._outbox = pb.ToEngine()  # nothing queued for an older stream applies to this one
        self._sent_digests = set()
        self.stream_number += 1
        call = stub.Connect(self._requests())
        self._call = call
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the read ends, and the loop would outlive stop()
            async with asyncio.timeout(_HELLO_TIMEOUT):
                first = await call.read()
            if not isinstance(first, pb.FromEngine) or not first.HasField("hello"):
                return "engine closed the stream without a hello"
            self._on_hello(first)
            self._handle("its hello", self._connected, first)
            if not self.healthy:
                await self.check_now()
            while True:
                message = await call.read()
                if not isinstance(message, pb.FromEngine):  # grpc.aio.EOF
                    return "engine closed the stream"
                self._on_load(message.load)
                self._handle(f"message {message.seq}", self._report, message)
        except TimeoutError:
            return "no hello from the engine"
        except grpc.aio.AioRpcError as exc:
            return self._kill_reason or f"stream failed: {exc.code().name} {exc.details()}"
        except asyncio.CancelledError:
            # The health loop cancels the call (not this task) to end a stream it gave up on;
            # a cancellation of this task itself (stop) always goes through.
            task = asyncio.current_task()
            if self._stopping or self._kill_reason is None or (task and task.cancelling()):
                raise
            return self._kill_reason
        finally:
            self._call = None
            self._kill_reason = None
            call.cancel()

    def _connected(self, message: pb.FromEngine) -> None:
        self._handler.connected(self, adapter.held_from_pb(list(message.hello.held)))

    def _report(self, message: pb.FromEngine) -> None:
        report, problems = adapter.report_from_pb(message, self.stream_number)
        for problem in problems:
            self.bad_messages += 1
            log.warning("engine %s sent %s; skipped", self.id, problem)
        self._handler.report(self, report)

    def _handle(self, what: str, apply: Any, message: pb.FromEngine) -> None:
        """Apply one message; a failure is logged and counted, and the stream goes on."""
        try:
            apply(message)
        except Exception:
            self.bad_messages += 1
            log.exception("engine %s: %s could not be applied; the stream goes on", self.id, what)

    def _on_hello(self, message: pb.FromEngine) -> None:
        hello = message.hello
        self.engine_id = hello.engine_id
        self.version = hello.version
        self.capacity = hello.capacity
        self._stream_up = True
        self._on_load(message.load)
        log.info(
            "engine %s (%s, capacity %d) connected at %s",
            self.id,
            self.engine_id,
            self.capacity,
            self.address,
        )
        self._update()

    def _on_load(self, load: pb.Load) -> None:
        self.reported_in_flight = load.in_flight
        if load.capacity:
            self.capacity = load.capacity
        if load.draining and not self.draining:
            self.draining = True
            log.info("engine %s is draining", self.id)
            self._update()

    # --- health ------------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        while not self._stopping:
            serving = await self._check()
            if serving is None:  # no answer: the engine is gone or hung
                if self.healthy or self._stream_up:
                    log.warning("engine %s failed its health check", self.id)
                self.healthy = False
                if self._call is not None and self._stream_up:
                    self._kill_reason = "health check failed"
                    self._call.cancel()  # the stream loop reports it lost
                self._update()
            else:
                self.healthy = serving
                self._update()
            await asyncio.sleep(self._health_interval)

    async def _check(self) -> bool | None:
        assert self._channel is not None
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=self._health_timeout
            )
        except grpc.aio.AioRpcError:
            return None
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def check_now(self) -> None:
        """Run one health check at once (used when a stream comes up)."""
        self.healthy = bool(await self._check())
        self._update()

    # --- state -------------------------------------------------------------------------------

    def _update(self) -> None:
        if not self._stream_up:
            new = LinkState.CONNECTING if self.healthy else LinkState.UNHEALTHY
        elif self.draining:
            new = LinkState.DRAINING
        elif self.healthy:
            new = LinkState.READY
        else:
            new = LinkState.UNHEALTHY
        old, self.state = self.state, new
        if old is new:
            return
        if new is LinkState.READY:
            self._handler.ready(self)
        elif old is LinkState.READY and self._stream_up:
            self._handler.unready(self)

    def _set_lost(self, reason: str) -> None:
        log.warning("engine %s at %s lost: %s", self.id, self.address, reason)
        self.draining = False
        self.reported_in_flight = 0
        self.state = LinkState.UNHEALTHY if not self.healthy else LinkState.CONNECTING
        self._handler.lost(self, reason)

    def info(self) -> LinkInfo:
        return LinkInfo(
            id=self.id,
            engine_id=self.engine_id,
            address=self.address,
            state=self.state,
            healthy=self.healthy and self._stream_up,
            capacity=self.capacity,
            reported_in_flight=self.reported_in_flight,
            version=self.version,
            bad_messages=self.bad_messages,
        )
