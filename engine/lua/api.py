"""The value types of the Lua sandbox: limits, scope, code, and the ``ESCALATE`` sentinel."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["ESCALATE", "LuaCode", "LuaLimits", "Scope"]


@dataclass(frozen=True, slots=True)
class LuaLimits:
    """What one call may consume before the sandbox stops it with ``LuaLimitError``.

    ``instructions`` is the Lua VM instruction budget, ``memory`` the number of bytes the call may
    allocate on top of what the runtime used when the call started, ``timeout`` the wall-clock
    seconds the call may take.
    """

    instructions: int = 100_000_000
    memory: int = 64 * 1024 * 1024
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class Scope:
    """The values a chunk sees as ``inputs``, ``outputs``, ``execution`` and ``args``.

    ``outputs`` maps node ids to the outputs of finished nodes. It is converted lazily: only the
    entries the code touches are read, so it may hold thousands of entries at no cost.
    ``execution`` holds ``id``, ``workflow`` and ``version``. ``args`` is an empty table when None.
    """

    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    execution: Mapping[str, Any]
    args: Mapping[str, Any] | None = None
    each: Mapping[str, Any] | None = None
    """For an item of a node with ``map``: ``{"item": value, "index": i}``, which Lua sees as
    the globals ``item`` and ``index`` (None: both are nil)."""


@dataclass(frozen=True, slots=True)
class LuaCode:
    """A Lua chunk (or, with ``expression=True``, a single Lua expression) and its name.

    ``chunkname`` appears in error messages: ``validate:3: amount must be positive``.
    """

    source: str
    chunkname: str
    expression: bool = False


class _Escalate:
    """The type of ``ESCALATE``; compare with ``is``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ESCALATE"

    def __reduce__(self) -> str:
        return "ESCALATE"


ESCALATE: Final = _Escalate()
"""Returned by ``LuaSandbox.run_inline`` when the code needs more than the inline slice allows."""
