"""One sandboxed Lua 5.4 state (``lupa.lua54``), its compile cache and the per-call protocol.

A :class:`Runtime` is NOT thread-safe: each thread that runs Lua owns its own. The sandbox itself
(environment, wrapped functions, instruction hook, result encoding) lives in ``prelude.lua``; this
module sets the memory cap around each call, converts the scope, and turns what the prelude
reports into a Python value, a ``LuaError``, or a :class:`Stopped` reason for the caller to map.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import lupa.lua54 as lua

from engine.errors import LuaError
from engine.lua.api import LuaCode, Scope
from engine.lua.convert import LUA_MAX_INTEGER, LUA_MIN_INTEGER, from_json, to_lua

__all__ = ["Cancellable", "Runtime", "Stopped"]

log = logging.getLogger(__name__)

PRELUDE: Final = Path(__file__).with_name("prelude.lua").read_text(encoding="utf-8")
LIBS: Final = Path(__file__).with_name("libs.lua").read_text(encoding="utf-8")
ENCODER: Final = Path(__file__).with_name("encode.lua").read_text(encoding="utf-8")
MEMERR: Final = "not enough memory"

# How often the count hook runs (instructions), on the main thread and in coroutines.
INLINE_PERIOD: Final = 1_000
INLINE_CO_PERIOD: Final = 100
POOL_PERIOD: Final = 10_000
POOL_CO_PERIOD: Final = 1_000

GC_HEADROOM: Final = 8 * 1024 * 1024  # collect after a call once usage grew this much
MAX_MEMORY: Final = 2**62  # a memory cap beyond any machine
LUA_IDSIZE: Final = 60  # Lua truncates chunk names in messages to LUA_IDSIZE - 1 bytes

_POSITION = re.compile(r".*?:(\d+): (.*)\Z", re.S)
_EMPTY: Mapping[str, Any] = {}
_NO_SCOPE: tuple[Mapping[str, Any], ...] = (_EMPTY, _EMPTY, _EMPTY, _EMPTY, _EMPTY)
# The kinds prelude.lua uses; the last holds the globals ``item`` and ``index`` of a map's item.
SCOPE_NAMES: Final = ("inputs", "args", "execution", "outputs", "item")


class Cancellable(Protocol):
    """Anything with a ``cancelled`` flag the hook can poll."""

    @property
    def cancelled(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Stopped:
    """The sandbox stopped a call.

    ``reason`` is ``instructions``, ``memory``, ``timeout`` or ``cancelled``; in the inline lane
    also ``heavy`` (a function only the pool runs) or ``toolarge`` (a result too big to encode
    inline).
    """

    reason: str


def _no_attributes(obj: object, name: object, is_setting: bool) -> object:
    raise AttributeError("Python attributes are not accessible from the Lua sandbox")


def chunk_id(chunkname: str) -> str:
    """The chunk name as Lua prints it in messages (truncated to 59 bytes)."""
    raw = chunkname.encode()
    if len(raw) < LUA_IDSIZE:
        return chunkname
    return raw[: LUA_IDSIZE - 1].decode("utf-8", "ignore")


def line_message(message: str, chunkname: str) -> str:
    """``validate:3: '=' expected near 'x'`` -> ``line 3: '=' expected near 'x'``."""
    prefix = chunk_id(chunkname) + ":"
    if message.startswith(prefix):
        line, _, text = message[len(prefix) :].partition(": ")
        if line.isdigit():
            return f"line {line}: {text}"
    match = _POSITION.match(message)
    if match is None:
        return message
    return f"line {match[1]}: {match[2]}"


class Runtime:
    """A sandboxed ``LuaRuntime`` with an LRU cache of compiled chunks.

    ``inline=True`` builds the inline lane: heavy functions are stubs that stop the call with
    ``Stopped("heavy")`` and the hook never looks at the clock. Otherwise the real functions are
    in place and the hook polls the deadline and cancel flag every ``POOL_PERIOD`` instructions.
    """

    __slots__ = (
        "_bad_value",
        "_cache",
        "_cache_size",
        "_cancel",
        "_chunkname",
        "_cleanup",
        "_compile",
        "_deadline",
        "_gc_at",
        "_invoke",
        "_lua",
        "_scope",
        "_seen",
        "_sethook",
        "_state",
        "inline",
    )

    def __init__(self, *, inline: bool, cache_size: int = 1024) -> None:
        self.inline = inline
        self._lua = lua.LuaRuntime(
            encoding="UTF-8",
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=_no_attributes,
            max_memory=0,
        )
        period, co_period = (
            (INLINE_PERIOD, INLINE_CO_PERIOD) if inline else (POOL_PERIOD, POOL_CO_PERIOD)
        )
        api = self._lua.execute(
            PRELUDE,
            inline,
            period,
            co_period,
            None if inline else self._check,
            self._lua.table_from([self._getter(kind) for kind in range(len(SCOPE_NAMES))]),
            self._keys,
            self._log,
            self._lua.compile(LIBS, name="=weir-libs"),
            self._lua.compile(ENCODER, name="=weir-encode"),
            name="=weir-prelude",
        )
        self._invoke = api["invoke"]
        self._compile = api["compile"]
        self._cleanup = api["cleanup"]
        self._sethook = api["sethook"]
        self._state = api["state"]
        self._cache: OrderedDict[tuple[str, str, bool], Any] = OrderedDict()
        self._cache_size = cache_size
        # id(code) -> (code, fn): skips hashing the source for LuaCode objects used again
        self._seen: dict[int, tuple[LuaCode, Any]] = {}
        self._scope = _NO_SCOPE
        self._chunkname = ""
        self._bad_value = False  # a scope value could not be converted during this call
        self._deadline = math.inf
        self._cancel: Cancellable | None = None
        self._gc_at = self._lua.get_memory_used() + GC_HEADROOM

    # -- compiling -------------------------------------------------------------------------------

    def syntax_error(self, code: LuaCode) -> str | None:
        """None if ``code`` compiles (it is then cached), else ``line N: message``."""
        key = (code.source, code.chunkname, code.expression)
        if key in self._cache:
            return None
        fn, problem = self._load(code)
        if fn is not None:
            self._remember(key, fn)
        return problem

    def compile(self, code: LuaCode) -> Any:
        """The compiled chunk for ``code``; a syntax error raises ``LuaError`` (not retryable)."""
        seen = self._seen.get(id(code))
        if seen is not None and seen[0] is code:  # the same LuaCode object as a recent call
            return seen[1]
        fn = self._lookup(code)
        if len(self._seen) >= self._cache_size:
            self._seen.clear()
        self._seen[id(code)] = (code, fn)
        return fn

    def _lookup(self, code: LuaCode) -> Any:
        key = (code.source, code.chunkname, code.expression)
        cache = self._cache
        fn = cache.get(key)
        if fn is not None:
            cache.move_to_end(key)
            return fn
        fn, problem = self._load(code)
        if fn is None:
            raise LuaError(f"{code.chunkname}: syntax error: {problem}", retryable=False)
        self._remember(key, fn)
        return fn

    def _remember(self, key: tuple[str, str, bool], fn: Any) -> None:
        self._cache[key] = fn
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _load(self, code: LuaCode) -> tuple[Any, str | None]:
        name = code.chunkname
        if not code.expression:
            fn, error = self._compile(code.source, name)
            return (fn, None) if fn is not None else (None, line_message(error, name))
        fn, _ = self._compile(f"return ({code.source}\n)", name)
        if fn is not None:
            return fn, None
        fn, error = self._compile(f"return {code.source}", name)
        if fn is not None:  # e.g. "1, 2": valid after return, but not one expression
            return None, "line 1: expected a single expression"
        return None, line_message(error, name)

    # -- calling ---------------------------------------------------------------------------------

    def call(
        self,
        code: LuaCode,
        scope: Scope,
        *,
        instructions: int,
        memory: int,
        max_bytes: float = math.inf,
        deadline: float = math.inf,
        cancel: Cancellable | None = None,
    ) -> Any:
        """Run ``code`` in a fresh environment built from ``scope``.

        ``instructions`` and ``memory`` (bytes on top of the current usage) bound the call,
        ``max_bytes`` the size of an encoded result table, ``deadline`` (``time.monotonic()``) and
        ``cancel`` are polled by the hook (pool runtimes only). Returns the JSON-compatible result,
        or a :class:`Stopped`; raises ``LuaError`` for an error raised by the code, a syntax error
        or a result that is not JSON.
        """
        return self.run(code, scope, instructions, memory, max_bytes, deadline, cancel)

    def run(
        self,
        code: LuaCode,
        scope: Scope,
        instructions: int,
        memory: int,
        max_bytes: float,
        deadline: float = math.inf,
        cancel: Cancellable | None = None,
    ) -> Any:
        """:meth:`call` with positional arguments (the hot path)."""
        fn = self.compile(code)
        runtime = self._lua
        args = scope.args
        each = scope.each
        self._scope = (
            scope.inputs,
            _EMPTY if args is None else args,
            scope.execution,
            scope.outputs,
            _EMPTY if each is None else each,
        )
        self._chunkname = code.chunkname
        self._bad_value = False
        if not self.inline:
            self._deadline = deadline
            self._cancel = cancel
        returned = False
        outcome: Any
        runtime.set_max_memory(min(runtime.get_memory_used() + memory, MAX_MEMORY))
        try:
            outcome = self._invoke(fn, instructions, max_bytes)
            returned = True
        except lua.LuaMemoryError:
            outcome = ("stop", "memory")
        except lua.LuaError as exc:
            stop = self._state["stop"]
            outcome = ("stop", stop) if stop else ("failure", exc)
        finally:
            runtime.set_max_memory(0)
            self._scope = _NO_SCOPE
            self._cancel = None
            if not returned:
                self._sethook()  # a C function: runs even with the hook armed at count 1
                self._cleanup(fn)
        result = from_json(outcome) if type(outcome) is str else self._outcome(outcome, code)
        if runtime.get_memory_used() > self._gc_at:
            self.collect()
        return result

    def _outcome(self, outcome: tuple[Any, ...], code: LuaCode) -> Any:
        status = outcome[0]
        if status == "ok":
            return outcome[1]
        if status == "stop":
            if outcome[1] == "memory":
                self.collect()
            return Stopped(outcome[1])
        if status == "bad":
            raise LuaError(f"{code.chunkname}: {outcome[1]}", retryable=False)
        if status == "failure":
            log.error("Lua sandbox failure in %s: %s", code.chunkname, outcome[1])
            raise LuaError(f"{code.chunkname}: internal sandbox error: {outcome[1]}")
        message, kind = outcome[1], outcome[2]
        if kind == "string":
            if not message.startswith(chunk_id(code.chunkname) + ":"):
                message = f"{code.chunkname}: {message}"
        elif kind == "described":
            message = f"{code.chunkname}: {message}"
        else:
            message = f"{code.chunkname}: error object is a {kind}"
        # a value in the scope that is not JSON will not be fixed by retrying
        raise LuaError(message, retryable=False if self._bad_value else None)

    def collect(self) -> None:
        """Run a full garbage collection and move the next automatic one further out."""
        self._lua.gccollect()
        self._gc_at = self._lua.get_memory_used() + GC_HEADROOM

    # -- called from Lua (must never raise: a Python exception would reach Lua code) -------------

    def _check(self) -> str | None:
        cancel = self._cancel
        if cancel is not None and cancel.cancelled:
            return "cancelled"
        if time.monotonic() > self._deadline:
            return "timeout"
        return None

    def _getter(self, kind: int) -> Callable[[str], Any]:
        """The callable Lua uses to read one top-level entry of a scope mapping."""
        name = SCOPE_NAMES[kind]

        def get(key: str) -> Any:
            try:
                value = self._scope[kind][key]
            except KeyError:
                return None
            except Exception as exc:
                return None, f"{name}: {exc!r}"
            item = type(value)
            if item is str or item is float or item is bool:
                return value
            if item is int and LUA_MIN_INTEGER <= value <= LUA_MAX_INTEGER:
                return value
            try:
                return to_lua(self._lua, value, (name, key))
            except LuaError as exc:
                self._bad_value = True
                return None, exc.message
            except MemoryError:
                return None, MEMERR
            except Exception as exc:
                return None, f"{name}: {exc!r}"

        return get

    def _keys(self, kind: int) -> Any:
        try:
            return self._lua.table_from([k for k in list(self._scope[kind]) if isinstance(k, str)])
        except MemoryError:
            return None, MEMERR
        except Exception as exc:
            return None, f"{SCOPE_NAMES[kind]}: {exc!r}"

    def _log(self, message: str) -> None:
        try:
            log.debug("%s: %s", self._chunkname, message)
        except Exception:
            return
