"""``OrchestratorServer``: the orchestrator process's parts, started and stopped in order.

Start: the service layer (discovery, engine links), then the public gRPC API with health and
reflection. Stop: health NOT_SERVING, stop the API server (with a grace period for calls in
flight), then the links and discovery.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.server import grpc_server
from orchestrator.api.grpc_api import OrchestratorApi
from orchestrator.core import Orchestrator
from orchestrator.discovery.factory import make_discovery
from orchestrator.proto.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from orchestrator.ring import make_balancer
from orchestrator.settings import OrchestratorSettings
from orchestrator.store import open_store

log = logging.getLogger(__name__)

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name


class OrchestratorServer:
    """``async with OrchestratorServer(settings) as server: ...``; ``server.port`` is bound."""

    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        self.port = settings.grpc_port
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
        )
        self._server: Any = None
        self._health: Any = None

    async def start(self) -> None:
        """Raises ``OSError`` when the port is taken, ``StoreError`` when the store is unusable."""
        if self._server is not None:
            return
        server = grpc_server.new_server()
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(OrchestratorApi(self.core), server)
        self._health = grpc_server.add_health_and_reflection(server, [SERVICE_NAME])
        self.port = grpc_server.bind(server, self.settings.bind_address, self.port)
        await self.core.start()
        self._server = server
        await server.start()
        await grpc_server.set_serving(self._health, [SERVICE_NAME])
        log.info(
            "orchestrator %s serving on %s:%d (discovery %s, balancer %s)",
            self.settings.orchestrator_id,
            self.settings.bind_address,
            self.port,
            self.settings.discovery,
            self.settings.load_balancer_type,
        )

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        try:
            await self._health.enter_graceful_shutdown()
            self.core.monitor.close()  # ends watch streams so the grace period is not spent
        finally:
            await server.stop(grace)
            await self.core.stop()
        log.info("orchestrator stopped")

    async def __aenter__(self) -> OrchestratorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
