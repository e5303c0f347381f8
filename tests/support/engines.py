"""Real engines for tests: ``async with running_engine(capacity=20) as engine``.

The one place that starts and stops an in-process ``EngineServer``: it listens on 127.0.0.1, on a
port the kernel picks (``engine.port`` once started), and is stopped in ``finally`` whatever the
test did to it (``stop`` and ``drain`` are idempotent, so a test may stop it itself first).
A module's ``engine`` fixture is then::

    @pytest.fixture
    async def engine() -> AsyncIterator[EngineServer]:
        async with running_engine(capacity=20) as server:
            yield server
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from engine.server.process import EngineServer


@contextlib.asynccontextmanager
async def running_engine(engine_id: str = "e1", **options: Any) -> AsyncIterator[EngineServer]:
    """A started engine named ``engine_id``; ``options`` are ``EngineServer``'s (``capacity``,
    ``metrics_port=0`` for a metrics port too, ``shutdown_grace_period``, ``detached_timeout``...).
    """
    server = EngineServer(engine_id, bind_address="127.0.0.1", port=0, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
