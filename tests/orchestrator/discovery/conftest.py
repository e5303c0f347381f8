"""Fixtures shared by the discovery tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.orchestrator.discovery.fake_k8s import FakeKubernetes


@pytest.fixture
def api() -> Iterator[FakeKubernetes]:
    server = FakeKubernetes()
    server.start()
    try:
        yield server
    finally:
        server.stop()
