"""Fixtures for the Lua sandbox tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.lua import LuaSandbox


@pytest.fixture
def sandbox() -> Iterator[LuaSandbox]:
    """A fresh sandbox with one pool worker, closed after the test."""
    with LuaSandbox(workers=1) as box:
        yield box


@pytest.fixture(scope="module")
def box() -> Iterator[LuaSandbox]:
    """One sandbox shared by a whole test module (one pool worker)."""
    with LuaSandbox(workers=1) as shared:
        yield shared
