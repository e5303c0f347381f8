"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster

# Playwright and Debian's Chromium for the web UI's browser tests (chromium, page, page_errors).
from tests.support.browser import chromium, page, page_errors  # noqa: F401


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.stop()
