"""Helpers shared by the Lua sandbox tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.lua import LuaCode, LuaLimits, Scope

MiB = 1024 * 1024

# Small limits keep the suite fast: every abuse case is stopped within ~100 ms.
SMALL = LuaLimits(instructions=1_000_000, memory=8 * MiB, timeout=1.0)
BIG = LuaLimits(instructions=1_000_000_000, memory=64 * MiB, timeout=10.0)


def make_scope(
    inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    args: Mapping[str, Any] | None = None,
) -> Scope:
    """A scope with the usual execution fields."""
    return Scope(
        inputs=inputs if inputs is not None else {"a": 1},
        outputs=outputs if outputs is not None else {},
        execution={"id": "exec-1", "workflow": "orders", "version": "1.2.0"},
        args=args,
    )


def code(source: str, chunkname: str = "node", *, expression: bool = False) -> LuaCode:
    """Shorthand for ``LuaCode``."""
    return LuaCode(source, chunkname, expression=expression)
