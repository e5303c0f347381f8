"""The worker's stream to the server (``Workers.Work``), kept open across outages.

One stream at a time: the worker says hello, waits for the welcome (at most
``WELCOME_TIMEOUT`` seconds), then reads ``ToWorker`` messages and writes what its ``Outbox``
gathers, or an empty ``FromWorker`` every heartbeat interval when it had nothing to say. A broken
stream or an unreachable server is retried with exponential backoff and jitter, logged once per
outage at warning. A status that retrying cannot fix ends the link with ``RPCError``.

``closing`` set: the link writes what is pending, half-closes the stream and waits (at most
``CLOSE_WAIT`` seconds) for the server to end it; without a stream it just stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

import grpc

from weir._backoff import Backoff
from weir._errors import RPCError
from weir._outbox import Outbox
from weir.proto.v1 import worker_pb2 as pb
from weir.proto.v1 import worker_pb2_grpc as rpc

logger = logging.getLogger("weir.worker")

WELCOME_TIMEOUT = 10.0
"""Seconds to wait for the server's welcome after hello before trying again."""
CLOSE_WAIT = 5.0
"""Seconds to wait for the server to end the stream after the worker half-closed it."""
DEFAULT_HEARTBEAT_INTERVAL = 10.0
"""Used when neither the worker nor the server's welcome names an interval."""
FATAL = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)
"""Statuses that end the worker instead of a retry: the same hello would get the same answer."""

CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
)
"""The channel's own reconnection backoff, kept within the link's (grpc's default grows to two
minutes: a worker would come back that long after its server did)."""

Metadata = Sequence[tuple[str, str]]
_Call = grpc.aio.StreamStreamCall[pb.FromWorker, pb.ToWorker]


class Peer(Protocol):
    """What the link needs from the worker."""

    outbox: Outbox

    def hello(self) -> pb.WorkerHello: ...

    def on_message(self, message: pb.ToWorker) -> None: ...


class _Broken(Exception):
    """The stream ended in a way a new one may fix."""


async def _first_of(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines until one ends; cancel and await the others; raise what it raised."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    for task in tasks:
        if task in done and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


class Link:
    """The stream to ``server`` for one worker: ``run`` until ``close``. Setting ``wake`` says
    the peer's outbox has something to write now."""

    def __init__(
        self,
        peer: Peer,
        server: str,
        metadata: Metadata,
        *,
        wake: asyncio.Event,
        heartbeat_interval: float | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._peer = peer
        self._server = server
        self._metadata = tuple(metadata)
        self._interval = heartbeat_interval
        self._backoff = backoff or Backoff()
        self._wake = wake
        self._closing = asyncio.Event()
        self._outage: float | None = None
        self.connected = False
        self.streams = 0
        """Streams welcomed so far."""

    def close(self) -> None:
        """Write what is pending, half-close the stream, stop."""
        self._closing.set()
        self._wake.set()

    async def run(self) -> None:
        """Keep a stream open until ``close``; ``RPCError`` when the server refuses for good."""
        async with grpc.aio.insecure_channel(self._server, options=CHANNEL_OPTIONS) as channel:
            stub = rpc.WorkersStub(channel)
            while not self._closing.is_set():
                welcomed = self.streams
                try:
                    await self._stream(stub)
                    return
                except grpc.aio.AioRpcError as exc:
                    if exc.code() in FATAL:
                        raise RPCError(self._server, exc.code(), exc.details() or "") from None
                    problem = f"{exc.code().name}: {exc.details()}"
                except (_Broken, TimeoutError) as exc:
                    problem = str(exc) or f"no welcome within {WELCOME_TIMEOUT:g}s"
                if self._outage is None:
                    lost = "lost the stream to" if self.streams > welcomed else "cannot reach"
                    logger.warning("%s %s (%s); retrying", lost, self._server, problem)
                    self._outage = time.monotonic()
                else:
                    logger.debug("still cannot reach %s (%s)", self._server, problem)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._backoff.next()):
                        await self._closing.wait()

    async def _stream(self, stub: rpc.WorkersAsyncStub) -> None:
        call = stub.Work(metadata=self._metadata)
        try:
            await call.write(pb.FromWorker(hello=self._peer.hello()))
            async with asyncio.timeout(WELCOME_TIMEOUT):
                first = await call.read()
            if not isinstance(first, pb.ToWorker):  # grpc.aio.EOF
                raise _Broken("the server ended the stream before its welcome")
            if not first.HasField("welcome"):
                raise _Broken("the server's first message carried no welcome")
            welcome = first.welcome
            interval = self._interval or welcome.heartbeat_interval_s or DEFAULT_HEARTBEAT_INTERVAL
            self.connected = True
            self.streams += 1
            if self._outage is not None:
                logger.info(
                    "reconnected to %s (%s) after %.1fs",
                    self._server,
                    welcome.orchestrator_id,
                    time.monotonic() - self._outage,
                )
                self._outage = None
            else:
                logger.info("connected to %s (%s)", self._server, welcome.orchestrator_id)
            self._backoff.reset()
            self._peer.outbox.reconnected()
            self._wake.set()
            self._peer.on_message(first)
            await _first_of(self._send(call, interval), self._receive(call))
        except asyncio.InvalidStateError:  # written to after the server ended the stream
            raise _Broken("the server ended the stream") from None
        finally:
            self.connected = False
            call.cancel()

    async def _send(self, call: _Call, interval: float) -> None:
        outbox = self._peer.outbox
        while True:
            idle = False
            if not self._closing.is_set():
                try:
                    async with asyncio.timeout(interval):
                        await self._wake.wait()
                except TimeoutError:
                    idle = True
            self._wake.clear()
            message = outbox.take()
            if message is None and idle:
                message = pb.FromWorker()  # the keep-alive
            if message is not None:
                await call.write(message)
            elif self._closing.is_set():
                await call.done_writing()
                await asyncio.sleep(CLOSE_WAIT)  # bounds the wait for the server's end
                return

    async def _receive(self, call: _Call) -> None:
        while True:
            message = await call.read()
            if not isinstance(message, pb.ToWorker):  # grpc.aio.EOF
                if self._closing.is_set():
                    return
                raise _Broken("the server ended the stream")
            self._peer.on_message(message)
