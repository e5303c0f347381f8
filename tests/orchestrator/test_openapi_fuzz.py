"""schemathesis against the REST API's own OpenAPI document: generated requests (valid and
invalid) over real HTTP never get a 500, and every answer is what the document declares.

The orchestrator runs in a thread with its own event loop (SQLite store in tmp, no engines:
executions queue), with one workflow registered so that generated names sometimes hit it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import hypothesis.internal.conjecture.optimiser  # noqa: F401 - compiled here, at a shallow stack
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from orchestrator.server import OrchestratorServer
from orchestrator.settings import OrchestratorSettings

ADD = """
name: add
version: 1.0.0
inputs:
  a: {type: integer, default: 1}
nodes:
  - id: sum
    lua: return {n = inputs.a}
triggers:
  - name: nightly
    cron: "0 3 * * *"
"""


EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class ServerThread:
    """An ``OrchestratorServer`` on its own event loop in a daemon thread."""

    def __init__(self, tmp: Path) -> None:
        self.settings = OrchestratorSettings(
            orchestrator_id="fuzz",
            bind_address="127.0.0.1",
            grpc_port=0,
            http_port=0,
            store_url=f"sqlite:///{tmp / 'weir.db'}",
            max_queued_executions=100_000,
        )
        self.loop = asyncio.new_event_loop()
        self.server = OrchestratorServer(self.settings)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(grace=0.5), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with ServerThread(tmp_path_factory.mktemp("fuzz")) as server:
        registered = httpx.post(f"{server.url}/api/v1/workflows", content=ADD, timeout=10)
        assert registered.status_code == 201, registered.text
        yield server


def test_no_request_gets_a_server_error_and_every_answer_is_as_documented(
    api: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """Every operation of the document, ``EXAMPLES`` generated cases each (valid and invalid
    ones: schemathesis mixes both), replayed the same way every run (``derandomize``)."""
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    statuses: Counter[int] = Counter()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(checks=CHECKS, timeout=10)
            statuses[response.status_code] += 1

        check()
    # Both kinds were sent: requests the API accepted and requests it refused with a 4xx.
    assert sum(n for s, n in statuses.items() if s < 300) >= 20, statuses
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) >= 20, statuses
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not logged, logged  # no error was logged as a bug (a traceback in the server's log)
