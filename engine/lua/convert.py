"""Values between Python and Lua.

Python -> Lua (:func:`to_lua`): mappings become tables with string keys (integer keys are
stringified, as JSON does), lists and tuples become 1-based sequences, ``None`` becomes nil (so a
``None`` value in a mapping leaves the key out), recursively, at most :data:`MAX_DEPTH` levels deep.
Anything else is rejected with a ``LuaError`` naming its path (``inputs.order.items[2]``).

Lua -> Python: ``prelude.lua`` encodes a result table as JSON text, checking it on the way
(functions, coroutines, cycles, depth, NaN/inf, invalid UTF-8 and unusable keys are rejected with
the path inside the result) and :func:`from_json` decodes it. A table whose keys are exactly
``1..n`` becomes a list, any other table a dict with string keys (integer keys stringified), and the
empty table ``{}``.
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from engine.errors import LuaError

__all__ = ["MAX_DEPTH", "from_json", "render_path", "to_lua"]

MAX_DEPTH: Final = 64
LUA_MIN_INTEGER: Final = -(2**63)
LUA_MAX_INTEGER: Final = 2**63 - 1

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    cast(Any, json.JSONDecoder())  # typeshed types the argument oddly
)

Trail = tuple[str | int, ...]  # a root name, then keys (str) and 1-based indexes (int)


def render_path(trail: Trail) -> str:
    """``("inputs", "order", 2)`` -> ``inputs.order[2]``."""
    parts = [str(trail[0])]
    for key in trail[1:]:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif _IDENTIFIER.match(key):
            parts.append(f".{key}")
        else:
            parts.append(f"[{json.dumps(key, ensure_ascii=False)}]")
    return "".join(parts)


def _error(trail: Trail, message: str) -> LuaError:
    return LuaError(f"{render_path(trail)}: {message}", retryable=False)


def _integer(value: int, trail: Trail, key: str | int | None = None) -> int:
    if LUA_MIN_INTEGER <= value <= LUA_MAX_INTEGER:
        return value
    where = trail if key is None else (*trail, key)
    raise _error(where, f"the integer {value} does not fit in 64 bits")


def to_lua(runtime: Any, value: Any, trail: Trail) -> Any:
    """Convert a JSON-like Python value into a Lua value of ``runtime`` (a ``LuaRuntime``).

    ``trail`` names the value for error messages. Raises ``LuaError`` (not retryable) for anything
    that is not JSON-like.
    """
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return value
    if kind is int:
        return _integer(value, trail)
    return _convert(runtime, value, trail, 0)


def _convert(runtime: Any, value: Any, trail: Trail, depth: int) -> Any:
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return value
    if kind is int:
        return _integer(value, trail)
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            raise _error(trail, f"nested deeper than {MAX_DEPTH} levels")
        items: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
                    key = str(key)
                else:
                    raise _error(trail, f"the key {key!r} is not a string")
            item_kind = type(item)
            if item_kind is str or item_kind is float or item_kind is bool:
                items[key] = item
            elif item_kind is int:
                items[key] = _integer(item, trail, key)
            elif item is not None:
                items[key] = _convert(runtime, item, (*trail, key), depth + 1)
        return runtime.table_from(items)
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            raise _error(trail, f"nested deeper than {MAX_DEPTH} levels")
        sequence: list[Any] = []
        for index, item in enumerate(value, 1):
            item_kind = type(item)
            if item_kind is str or item_kind is float or item_kind is bool or item is None:
                sequence.append(item)
            elif item_kind is int:
                sequence.append(_integer(item, trail, index))
            else:
                sequence.append(_convert(runtime, item, (*trail, index), depth + 1))
        return runtime.table_from(sequence)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return _integer(int(value), trail)
    if isinstance(value, float):
        return float(value)
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    raise _error(trail, f"{article} {name} is not a JSON value")


def from_json(text: str) -> Any:
    """Decode the JSON text the prelude made of a result table."""
    return _scan(text, 0)[0]
