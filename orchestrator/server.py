"""``OrchestratorServer``: the orchestrator process's parts, started and stopped in order.

The orchestrator's own parts are assembled by ``orchestrator.wiring.Orchestrator``; this module
puts them behind the public APIs, both of which call its service layer (``Services``).

Start: bind the gRPC and HTTP ports (a taken port fails before anything starts), start the
orchestrator (store, recovery, discovery, engine links, triggers), then serve the public gRPC
API with health and reflection, and the HTTP server (REST, ``/trigger``, events, metrics).
While serving, a background loop that fails turns gRPC health NOT_SERVING (``/readyz`` says
503 by itself). Stop: health NOT_SERVING, end event streams, stop the HTTP server and the gRPC
server (with a grace period for calls in flight), then the orchestrator.
"""

from __future__ import annotations

import logging
from typing import Any

from weir.proto.v1 import orchestrator_pb2, orchestrator_pb2_grpc, worker_pb2, worker_pb2_grpc

from engine.server import grpc_server
from orchestrator.api.auth import TokenInterceptor
from orchestrator.api.grpc_api import OrchestratorApi
from orchestrator.api.rest.app import HttpServer, create_app
from orchestrator.api.workers import WorkersApi
from orchestrator.discovery.factory import make_discovery
from orchestrator.monitor import Monitor
from orchestrator.ring import make_balancer
from orchestrator.settings import OrchestratorSettings
from orchestrator.store import open_store
from orchestrator.supervise import Health
from orchestrator.wiring import Orchestrator

log = logging.getLogger(__name__)

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name
WORKERS_SERVICE = worker_pb2.DESCRIPTOR.services_by_name["Workers"].full_name
SERVICES = [SERVICE_NAME, WORKERS_SERVICE]


class OrchestratorServer:
    """``async with OrchestratorServer(settings) as server: ...``; ``server.port`` (gRPC) and
    ``server.http_port`` are the bound ports."""

    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        self.port = settings.grpc_port
        self.http_port = settings.http_port
        self.core = Orchestrator(
            orchestrator_id=settings.orchestrator_id,
            discovery=make_discovery(settings),
            balancer=make_balancer(settings.load_balancer_type),
            health_interval=settings.engine_health_check_interval,
            health_timeout=settings.engine_health_check_timeout,
            max_queued=settings.max_queued_executions,
            store=open_store(settings.store_url),
            max_depth=settings.max_subworkflow_depth,
            retention=settings.execution_retention,
            reattach_timeout=settings.reattach_timeout,
            monitor=Monitor(subscriber_buffer=settings.subscriber_buffer),
            triggers_enabled=settings.triggers_enabled,
            trigger_interval=settings.trigger_interval,
        )
        self._http: HttpServer | None = None
        self._server: Any = None
        self._health: Any = None

    async def start(self) -> None:
        """Raises ``OSError`` when the port is taken, ``StoreError`` when the store is unusable."""
        if self._server is not None:
            return
        token = self.settings.api_token
        server = grpc_server.new_server([TokenInterceptor(token)] if token else [])
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(
            OrchestratorApi(self.core.services), server
        )
        worker_pb2_grpc.add_WorkersServicer_to_server(
            WorkersApi(self.core.tasks, orchestrator_id=self.settings.orchestrator_id), server
        )
        self._health = grpc_server.add_health_and_reflection(server, SERVICES)
        self.port = grpc_server.bind(server, self.settings.bind_address, self.port)
        app = create_app(
            self.core.services,
            api_token=token,
            max_request_bytes=self.settings.max_request_bytes,
            ui=self.settings.ui_enabled,
        )
        self._http = HttpServer(app, self.settings.bind_address, self.settings.http_port)
        self.http_port = self._http.bind()
        self.core.board.base_url = self.settings.callback_base(self.http_port)
        try:
            await self.core.start()
        except BaseException:
            await self._http.stop()
            self._http = None
            raise
        self._server = server
        await server.start()
        await grpc_server.set_serving(self._health, SERVICES)
        self.core.supervisor.changed.connect(self._unhealthy)
        await self._http.start()
        self.http_port = self._http.port
        log.info(
            "orchestrator %s serving gRPC on %s:%d, HTTP on port %d (discovery %s, balancer %s)",
            self.settings.orchestrator_id,
            self.settings.bind_address,
            self.port,
            self.http_port,
            self.settings.discovery,
            self.settings.load_balancer_type,
        )

    def _unhealthy(self, health: Health) -> None:
        """A background loop failed: health checks say NOT_SERVING from now on."""
        if not health.ok and self._server is not None:
            log.error("orchestrator unhealthy: %s", "; ".join(health.problems))
            self.core.supervisor.spawn(
                "grpc health", grpc_server.set_not_serving(self._health, SERVICES)
            )

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        try:
            await self._health.enter_graceful_shutdown()
            self.core.monitor.close()  # ends watch streams so the grace period is not spent
        finally:
            if self._http is not None:
                await self._http.stop()
                self._http = None
            await server.stop(grace)
            await self.core.stop()
        log.info("orchestrator stopped")

    async def __aenter__(self) -> OrchestratorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
