"""``EngineServer``: the engine process's parts, started and stopped in order.

Start: Lua sandbox and node runner, gRPC server (Engine, health, reflection), metrics server.
Stop (``drain``): health NOT_SERVING, refuse new executions, let running ones finish within the
grace period, hand back the rest, cancel held (detached) ones, stop the gRPC server, close the
runner and sandbox. ``stop`` cancels everything at once.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any
from wsgiref.simple_server import WSGIServer

import prometheus_client
from weir.proto.v1 import engine_pb2, engine_pb2_grpc

from engine.executors.node import NodeRunner
from engine.lua import LuaSandbox
from engine.server import grpc_server
from engine.server.metrics import EngineMetrics
from engine.server.service import EngineService

log = logging.getLogger(__name__)

SERVICE_NAME = engine_pb2.DESCRIPTOR.services_by_name["Engine"].full_name


def weir_version() -> str:
    try:
        return package_version("weir")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


class EngineServer:
    """One engine: ``async with EngineServer(...) as server: await server.wait_stopped()``."""

    def __init__(
        self,
        engine_id: str,
        *,
        bind_address: str = "127.0.0.1",
        port: int = 0,
        capacity: int = 10,
        metrics_port: int | None = None,
        shutdown_grace_period: float = 30.0,
        detached_timeout: float = 60.0,
        park_after: float = 10.0,
        lua_workers: int = 2,
    ) -> None:
        self.engine_id = engine_id
        self.port = port
        self.metrics_port = metrics_port
        self._bind_address = bind_address
        self._capacity = capacity
        self._grace = shutdown_grace_period
        self._detached_timeout = detached_timeout
        self._park_after = park_after
        self._lua_workers = lua_workers
        self._sandbox: LuaSandbox | None = None
        self._runner: NodeRunner | None = None
        self._server: Any = None
        self._health: Any = None
        self._metrics_server: WSGIServer | None = None
        self.service: EngineService | None = None
        self._stopped = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        """Listen and serve; idempotent. Raises ``OSError`` when a port is taken."""
        if self._server is not None:
            return
        metrics = EngineMetrics(self.engine_id, self._capacity)
        self._sandbox = LuaSandbox(workers=self._lua_workers)
        self._runner = NodeRunner(sandbox=self._sandbox)
        self.service = EngineService(
            self.engine_id,
            self._capacity,
            self._runner,
            metrics,
            version=weir_version(),
            detached_timeout=self._detached_timeout,
            park_after=self._park_after,
        )
        self._runner.launcher = self.service.children  # `workflow` nodes ask the orchestrator
        self._runner.tasks = self.service.tasks  # and so do `task` nodes
        server = grpc_server.new_server()
        engine_pb2_grpc.add_EngineServicer_to_server(self.service, server)
        self._health = grpc_server.add_health_and_reflection(server, [SERVICE_NAME])
        try:
            self.port = grpc_server.bind(server, self._bind_address, self.port)
            if self.metrics_port is not None:
                self._metrics_server, _ = prometheus_client.start_http_server(
                    self.metrics_port, addr=self._bind_address, registry=metrics.registry
                )
                self.metrics_port = self._metrics_server.server_port
        except OSError:
            await self._close_parts()
            raise
        self._server = server
        await server.start()
        await grpc_server.set_serving(self._health, [SERVICE_NAME])
        log.info(
            "engine %s serving on %s:%d (capacity %d, metrics %s)",
            self.engine_id,
            self._bind_address,
            self.port,
            self._capacity,
            self.metrics_port if self.metrics_port is not None else "off",
        )

    async def drain(self) -> None:
        """Graceful stop: NOT_SERVING, finish or hand back executions, stop; idempotent."""
        if self._stopping or self._server is None:
            return
        self._stopping = True
        try:
            await self._health.enter_graceful_shutdown()
            assert self.service is not None
            await self.service.drain(self._grace)
        finally:
            await self._server.stop(1.0)
            await self._close_parts()
            self._stopped.set()
            log.info("engine %s stopped", self.engine_id)

    async def stop(self) -> None:
        """Hard stop: cancel running and held executions without handing them back."""
        if self._stopping or self._server is None:
            return
        self._stopping = True
        try:
            await self._server.stop(0)
        finally:
            await self._close_parts()  # cancels what still runs, then closes runner and sandbox
            self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def _close_parts(self) -> None:
        if self.service is not None:
            await self.service.close()
        if self._metrics_server is not None:
            await asyncio.to_thread(self._metrics_server.shutdown)
            self._metrics_server.server_close()
            self._metrics_server = None
        if self._runner is not None:
            await self._runner.close()
        if self._sandbox is not None:
            self._sandbox.close()

    async def __aenter__(self) -> EngineServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
