"""``EngineLink``: the orchestrator's connection to one engine.

A link owns a gRPC channel, the long-lived ``Connect`` stream and a health-check loop. It tells
its ``LinkHandler`` (the orchestrator core) when the engine becomes usable, when it stops being
usable and every message the engine sends. It never decides placement.

Readiness: the stream is up (the engine said hello) and the last ``grpc.health.v1`` check said
SERVING. A check answering NOT_SERVING takes the engine off the ring but keeps the stream (a
draining engine still reports on it). A check that fails or times out, or a stream that breaks,
means the engine is lost: the stream is cancelled and the handler re-places its executions
(the engine keeps them, detached, until an orchestrator attaches or cancels them). The link keeps
reconnecting with backoff and rejoins once healthy again; the engine's hello on each new stream
lists the executions it holds, which the handler attaches or cancels (``link_connected``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engine.proto.v1 import engine_pb2 as pb
from engine.proto.v1 import engine_pb2_grpc as pb_grpc
from engine.server.grpc_server import CHANNEL_OPTIONS
from orchestrator.discovery import EngineEndpoint

log = logging.getLogger(__name__)

_BACKOFF_MIN = 0.2
_BACKOFF_MAX = 5.0
_HELLO_TIMEOUT = 5.0


class LinkState(enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"


class LinkHandler(Protocol):
    def link_connected(self, link: EngineLink, held: list[pb.HeldExecution]) -> None:
        """A new stream is up; ``held`` are executions the engine kept from a closed stream."""

    def link_ready(self, link: EngineLink) -> None:
        """The engine can take work."""

    def link_unready(self, link: EngineLink) -> None:
        """The engine should get no new work, but keeps what it runs (NOT_SERVING, draining)."""

    def link_lost(self, link: EngineLink, reason: str) -> None:
        """The stream is gone: whatever ran there must be re-placed."""

    def link_message(self, link: EngineLink, message: pb.FromEngine) -> None:
        """A message from the engine (after its hello)."""


class EngineLink:
    """One engine, from the orchestrator's side: ``await link.start()`` ... ``stop()``."""

    def __init__(
        self,
        endpoint: EngineEndpoint,
        handler: LinkHandler,
        *,
        orchestrator_id: str,
        health_interval: float,
        health_timeout: float,
    ) -> None:
        self.endpoint = endpoint
        self.id = endpoint.id
        self.address = endpoint.address
        self.state = LinkState.CONNECTING
        self.engine_id = ""
        self.version = ""
        self.capacity = 0
        self.reported_in_flight = 0
        self.draining = False
        self.healthy = False
        self.assigned: set[str] = set()
        """Executions placed here whose end has not been reported (kept by the handler)."""
        self.sent_digests: set[str] = set()
        """Definition snapshots the engine got on the current stream."""
        self.stream_number = 0
        """Counts streams, so an acknowledgement meant for a closed one is not sent on the next."""
        self._handler = handler
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

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        self._channel = grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self._tasks = [
            asyncio.create_task(self._stream_loop(), name=f"link {self.id} stream"),
            asyncio.create_task(self._health_loop(), name=f"link {self.id} health"),
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

    # --- sending -----------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.state is LinkState.READY

    def execute(self, message: pb.Execute) -> None:
        self._outbox.execute.append(message)
        self._outbox_wake.set()

    def cancel(self, execution_id: str, lease: int, reason: str) -> None:
        self._outbox.cancel.add(execution_id=execution_id, lease=lease, reason=reason)
        self._outbox_wake.set()

    def attach(self, execution_id: str, lease: int) -> None:
        self._outbox.attach.add(execution_id=execution_id, lease=lease)
        self._outbox_wake.set()

    def child_finished(self, message: pb.ChildFinished) -> None:
        self._outbox.child_finished.append(message)
        self._outbox_wake.set()

    def ack(self, seq: int, stream: int) -> None:
        """Acknowledge the engine's messages up to ``seq`` of stream number ``stream``."""
        if stream == self.stream_number and seq > self._outbox.ack:
            self._outbox.ack = seq
            self._outbox_wake.set()

    async def _requests(self) -> AsyncIterator[pb.ToEngine]:
        yield pb.ToEngine(hello=pb.OrchestratorHello(orchestrator_id=self._orchestrator_id))
        while True:
            box = self._outbox
            if not (box.execute or box.cancel or box.attach or box.child_finished or box.ack):
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
        self.sent_digests = set()
        self.stream_number += 1
        call = stub.Connect(self._requests())
        self._call = call
        try:
            first = await asyncio.wait_for(call.read(), _HELLO_TIMEOUT)
            if not isinstance(first, pb.FromEngine) or not first.HasField("hello"):
                return "engine closed the stream without a hello"
            self._on_hello(first)
            self._handler.link_connected(self, list(first.hello.held))
            if not self.healthy:
                await self.check_now()
            while True:
                message = await call.read()
                if not isinstance(message, pb.FromEngine):  # grpc.aio.EOF
                    return "engine closed the stream"
                self._on_load(message.load)
                self._handler.link_message(self, message)
        except TimeoutError:
            return "no hello from the engine"
        except grpc.aio.AioRpcError as exc:
            return self._kill_reason or f"stream failed: {exc.code().name} {exc.details()}"
        except asyncio.CancelledError:
            if self._stopping or self._kill_reason is None:
                raise
            return self._kill_reason
        finally:
            self._call = None
            self._kill_reason = None
            call.cancel()

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
            self._handler.link_ready(self)
        elif old is LinkState.READY and self._stream_up:
            self._handler.link_unready(self)

    def _set_lost(self, reason: str) -> None:
        log.warning("engine %s at %s lost: %s", self.id, self.address, reason)
        self.draining = False
        self.reported_in_flight = 0
        self.state = LinkState.UNHEALTHY if not self.healthy else LinkState.CONNECTING
        self._handler.link_lost(self, reason)

    def info(self) -> dict[str, Any]:
        return {
            "id": self.engine_id or self.id,
            "address": self.address,
            "state": self.state.value,
            "healthy": self.healthy and self._stream_up,
            "in_flight": max(len(self.assigned), self.reported_in_flight),
            "capacity": self.capacity,
            "version": self.version,
        }
