"""Fixtures of the SDK's tests: a fake ``Workers`` server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.sdk.fake import FakeServer, FakeWorkers, running_fake


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    async with running_fake(FakeWorkers()) as started:
        yield started


@pytest.fixture
def fake(server: FakeServer) -> FakeWorkers:
    return server.workers
