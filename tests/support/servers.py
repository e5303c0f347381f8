"""A real orchestrator server in the test process: ``await start_server(engine, tmp_path)``
starts ``OrchestratorServer`` on 127.0.0.1 with ports the kernel picks, static discovery of
``engine`` and a SQLite store in ``tmp_path``; ``settings`` override (the caller stops it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.server.process import EngineServer
from orchestrator.server import OrchestratorServer
from orchestrator.settings import OrchestratorSettings


async def start_server(engine: EngineServer, tmp_path: Path, **settings: Any) -> OrchestratorServer:
    server = OrchestratorServer(
        OrchestratorSettings(
            orchestrator_id="test",
            bind_address="127.0.0.1",
            grpc_port=0,
            http_port=0,
            engines=f"127.0.0.1:{engine.port}",
            store_url=f"sqlite:///{tmp_path / 'weir.db'}",
            engine_health_check_interval=0.2,
            **settings,
        )
    )
    await server.start()
    return server
