"""The orchestrator's HTTP side: the REST API (FastAPI), ``POST /trigger/{workflow}``,
``POST /step`` (FSL action reports), Server-Sent Events, health probes and Prometheus
``/metrics``, on ``HTTP_PORT``.

Routes call the same service layer (``orchestrator.services.Services``) as the gRPC API, and
errors go through the same table (``orchestrator.api.errors``), answered as
``{"error": {"code", "message", "issues"}}``. The OpenAPI document is at ``/openapi.json``
(interactive at ``/docs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from orchestrator.api.errors import ERRORS
from orchestrator.api.rest import events, executions, step, tasks, triggers, workflows
from orchestrator.api.rest.common import on_error, on_http_error, on_validation_error
from orchestrator.api.rest.middleware import BearerToken, BodyLimit
from orchestrator.api.rest.models import Health
from orchestrator.services import Services
from orchestrator.ui.app import mount as mount_ui

API_VERSION = "1.0.0"


def create_app(
    services: Services,
    *,
    api_token: str = "",
    max_request_bytes: int = 1 << 20,
    keepalive: float = events.KEEPALIVE,
    ui: bool = True,
) -> FastAPI:
    """The ASGI app for ``services``; ``api_token`` turns the bearer-token check on, and
    ``ui`` serves the web UI at ``/ui`` (``orchestrator.ui``)."""
    app = FastAPI(
        title="weir orchestrator",
        version=API_VERSION,
        description="Workflows, executions, triggers, engines and events. Errors are "
        '`{"error": {"code", "message", "issues"}}`.',
    )
    app.state.services = services
    app.state.keepalive = keepalive
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    for kind, _ in ERRORS:  # handled here, not re-raised to the server's log like Exception
        app.add_exception_handler(kind, on_error)
    app.add_exception_handler(Exception, on_error)
    for module in (workflows, executions, triggers, events, tasks, step):
        app.include_router(module.router)

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Liveness")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Health,
        tags=["health"],
        summary="Readiness: the store answers and every background loop runs",
        responses={503: {"model": Health}},
    )
    async def readyz(response: Response) -> Health:
        readiness = await services.readiness()
        if not readiness.ok:
            response.status_code = 503
            return Health(status="; ".join(readiness.problems))
        return Health(status="ok")

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        payload, content_type = services.metrics()
        return Response(payload, media_type=content_type)

    if ui:
        mount_ui(app, services, api_token=api_token)
    app.add_middleware(BodyLimit, limit=max_request_bytes)
    if api_token:
        app.add_middleware(BearerToken, token=api_token)
    return app


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the process's own handlers stay in charge of SIGTERM and SIGINT


class HttpServer:
    """Serves an ASGI app on the running event loop: ``await start()``, ``await stop()``."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    def bind(self) -> int:
        """Take the port (``OSError`` when it is taken) and return it; ``start`` serves."""
        if self._socket is not None:
            return self.port
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections of a socket that
        # says it is TCP. Without it every answer on a kept-alive connection but the first
        # waited 40 ms for the client's delayed ACK (uvicorn writes head and body apart).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {self.host}:{self.port} (HTTP): {exc}") from exc
        self._socket = sock
        self.port = sock.getsockname()[1]
        return self.port

    async def start(self) -> None:
        """Serve on the bound port (binding first if ``bind`` was not called)."""
        self.bind()
        assert self._socket is not None
        sock = self._socket
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        self._server = None
        self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
