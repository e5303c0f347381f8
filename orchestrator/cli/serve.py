"""``weir engine`` and ``weir orchestrator``: the two server processes.

Settings come from the environment (``engine/settings.py``, ``orchestrator/settings.py``);
options given on the command line win. SIGTERM or Ctrl-C stops gracefully (an engine drains);
a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

import click

from engine.settings import EngineSettings
from orchestrator.settings import OrchestratorSettings


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _freeze_startup_heap() -> None:
    """Exempt what start-up allocated (modules, settings, the server) from garbage collection:
    a full collection then scans only what serving allocates since. That was about 100,000
    objects, a third to a half of each full collection's pause."""
    gc.collect()
    gc.freeze()


def _on_signals(loop: asyncio.AbstractEventLoop, graceful: Callable[[], Awaitable[None]]) -> None:
    """First SIGTERM/SIGINT: start ``graceful``; the second: exit at once."""
    stopping: list[asyncio.Task[None]] = []

    async def run() -> None:
        await graceful()

    def handler(signum: int) -> None:
        if stopping:
            logging.getLogger("weir").warning("second signal: exiting now")
            os._exit(1)
        logging.getLogger("weir").info("%s: stopping", signal.Signals(signum).name)
        stopping.append(loop.create_task(run()))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handler, signum)


@click.command("engine")
@click.option("--engine-id", help="Overrides ENGINE_ID (default: the host name).")
@click.option("--bind", "bind_address", help="Overrides BIND_ADDRESS (default 0.0.0.0).")
@click.option("--port", type=int, help="Overrides PORT (default 50051).")
@click.option("--capacity", type=int, help="Overrides CAPACITY (default 10).")
@click.option("--metrics-port", type=int, help="Overrides METRICS_PORT (default 9090; 0 = off).")
def engine(
    engine_id: str | None,
    bind_address: str | None,
    port: int | None,
    capacity: int | None,
    metrics_port: int | None,
) -> None:
    """Run an engine: executes the workflows orchestrators place on it."""
    settings = EngineSettings.from_env(
        engine_id=engine_id,
        bind_address=bind_address,
        port=port,
        capacity=capacity,
        metrics_port=metrics_port,
    )
    _logging(settings.log_level)
    asyncio.run(_engine(settings))


async def _engine(settings: EngineSettings) -> None:
    from engine.server.process import EngineServer  # here: client commands start faster

    server = EngineServer(
        settings.engine_id,
        bind_address=settings.bind_address,
        port=settings.port,
        capacity=settings.capacity,
        metrics_port=settings.metrics_port or None,
        shutdown_grace_period=settings.shutdown_grace_period,
        detached_timeout=settings.detached_timeout,
        park_after=settings.park_after,
        lua_workers=settings.lua_workers,
    )
    try:
        await server.start()
    except OSError as exc:
        raise click.ClickException(str(exc)) from None
    _on_signals(asyncio.get_running_loop(), server.drain)
    _freeze_startup_heap()
    click.echo(f"engine {settings.engine_id} listening on port {server.port}", err=True)
    await server.wait_stopped()


@click.command("orchestrator")
@click.option("--bind", "bind_address", help="Overrides BIND_ADDRESS (default 0.0.0.0).")
@click.option("--port", "grpc_port", type=int, help="Overrides GRPC_PORT (default 50051).")
@click.option("--engines", help="Overrides ENGINES (static discovery: host:port,...).")
@click.option("--store", "store_url", help="Overrides STORE_URL (default sqlite:///weir.db).")
@click.option("--http-port", "http_port", type=int, help="Overrides HTTP_PORT (default 8080).")
def orchestrator(
    bind_address: str | None,
    grpc_port: int | None,
    engines: str | None,
    store_url: str | None,
    http_port: int | None,
) -> None:
    """Run the orchestrator: the public API, discovery, placement, failover and the store."""
    settings = OrchestratorSettings.from_env(
        bind_address=bind_address,
        grpc_port=grpc_port,
        engines=engines,
        store_url=store_url,
        http_port=http_port,
    )
    _logging(settings.log_level)
    asyncio.run(_orchestrator(settings))


async def _orchestrator(settings: OrchestratorSettings) -> None:
    from orchestrator.server import OrchestratorServer  # here: client commands start faster
    from orchestrator.store import StoreError

    try:
        server = OrchestratorServer(settings)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        await server.start()
    except (OSError, StoreError) as exc:
        await server.core.stop()
        raise click.ClickException(str(exc)) from None
    stopped = asyncio.Event()

    async def stop() -> None:
        try:
            await server.stop()
        finally:
            stopped.set()

    _on_signals(asyncio.get_running_loop(), stop)
    _freeze_startup_heap()
    click.echo(
        f"orchestrator listening on port {server.port} (gRPC), {server.http_port} (HTTP)", err=True
    )
    failed = asyncio.create_task(server.core.journal.failed.wait())
    ended = asyncio.create_task(stopped.wait())
    await asyncio.wait([failed, ended], return_when=asyncio.FIRST_COMPLETED)
    if failed.done() and not stopped.is_set():
        ended.cancel()
        with contextlib.suppress(Exception):
            await server.stop(grace=1.0)
        raise click.ClickException(str(server.core.journal.failure))
    failed.cancel()
