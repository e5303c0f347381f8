"""Shared by the API tests of long waits (REST and gRPC, docs/waits.md): the workflows they
register and an orchestrator server on 127.0.0.1 with ports the kernel picks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.server.process import EngineServer
from orchestrator.server import OrchestratorServer
from orchestrator.settings import OrchestratorSettings

APPROVAL = """
name: approval
version: 1.0.0
inputs:
  gate: {type: string, default: open}
nodes:
  - id: prepare
    python: "tests.support.tasks:gate"
    args: {name: "${inputs.gate}"}
  - id: D
    depends_on: [prepare]
    wait: {signal: approve, timeout: 1h}
    next: {AGREE: B, REJECT: C}
  - id: B
    lua: return {branch = "B"}
  - id: C
    lua: return {branch = "C"}
"""
CI = """
name: ci
version: 1.0.0
nodes:
  - id: A
    task: {queue: ci, timeout: 1h}
    next: {SUCCESS: B, AGREE: B, REJECT: C}
  - id: B
    lua: return {branch = "B"}
  - id: C
    lua: return {branch = "C"}
"""
NAP = """
name: nap
version: 1.0.0
timeout: 2h
nodes:
  - id: nap
    sleep: 1h
"""


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
