"""Abuse attempts: each one is contained with a clear error, and the sandbox stays usable.

All cases share ONE sandbox with ONE pool worker, so every case runs on the runtimes the previous
cases abused; after each case a normal call must still work, inline and in the pool.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from engine.errors import LuaError, LuaLimitError
from engine.lua import LuaLimits, LuaSandbox

from .luasupport import SMALL, MiB, code, make_scope

P = pytest.param
MEM = LuaLimits(instructions=100_000_000, memory=8 * MiB, timeout=5.0)  # memory runs out first

# (source, expected exception type, fragment of its message[, limits])
ABUSE = [
    # -- escaping the environment ----------------------------------------------------------------
    P(
        "os.execute('touch /tmp/pwned')",
        LuaError,
        "attempt to index a nil value (global 'os')",
        id="os",
    ),
    P("return io.open('/etc/passwd'):read('a')", LuaError, "(global 'io')", id="io"),
    P("debug.sethook()", LuaError, "(global 'debug')", id="debug"),
    P("return package.loaded.os", LuaError, "(global 'package')", id="package"),
    P(
        "return require('os')",
        LuaError,
        "attempt to call a nil value (global 'require')",
        id="require",
    ),
    P("return dofile('/etc/passwd')", LuaError, "(global 'dofile')", id="dofile"),
    P("return loadfile('/etc/passwd')", LuaError, "(global 'loadfile')", id="loadfile"),
    P("collectgarbage('stop')", LuaError, "(global 'collectgarbage')", id="collectgarbage"),
    P(
        "return string.dump(function() end)",
        LuaError,
        "attempt to call a nil value (field 'dump')",
        id="string.dump",
    ),
    P(
        "local f = assert(load('\\27LuaT\\0\\25\\147\\r\\n\\26\\n')) return f()",
        LuaError,
        "binary chunks are not allowed",
        id="load-binary",
    ),
    P(
        "local f = assert(load(function() return '\\27Lua' end, 'x', 'b')) return f()",
        LuaError,
        "attempt to load a binary chunk (mode is 't')",
        id="load-binary-reader",
    ),
    P(
        "return load('return os')().execute('id')",
        LuaError,
        "attempt to index a nil value",
        id="load-env",
    ),
    P(
        "return getmetatable('').__index.rep('x', 3)",
        LuaError,
        "attempt to index a boolean value",
        id="string-metatable",
    ),
    P(
        "getmetatable('').__index = {}",
        LuaError,
        "attempt to index a boolean value",
        id="string-metatable-write",
    ),
    P(
        "string.upper = function() return 'pwned' end",
        LuaError,
        "attempt to modify read-only table 'string'",
        id="modify-string",
    ),
    P(
        "rawset(table, 'concat', print)",
        LuaError,
        "attempt to modify read-only table",
        id="rawset-table",
    ),
    P("math.floor = nil", LuaError, "attempt to modify read-only table 'math'", id="modify-math"),
    P(
        "setmetatable(string, {__index = function() return 'pwned' end})",
        LuaError,
        "cannot change a protected metatable",
        id="setmetatable-library",
    ),
    P("setmetatable(_G, nil)", LuaError, "cannot change a protected metatable", id="_G-metatable"),
    P(
        "return getmetatable(_ENV).__index.os",
        LuaError,
        "attempt to index a boolean value",
        id="_ENV-metatable",
    ),
    P(
        "_G.coroutine.wrap = nil",
        LuaError,
        "attempt to modify read-only table 'coroutine'",
        id="_G-library",
    ),
    P(
        "local _ENV = {print = print}; return os.getenv('HOME')",
        LuaError,
        "attempt to index a nil value (global 'os')",
        id="_ENV-replaced",
    ),
    P(
        "setmetatable({}, {__gc = function() while true do end end})",
        LuaError,
        "__gc metamethods (finalizers) are not allowed",
        id="__gc",
    ),
    # -- running forever -------------------------------------------------------------------------
    P("while true do end", LuaLimitError, "exceeded its instruction budget", id="infinite-loop"),
    P(
        "while true do pcall(function() while true do end end) end",
        LuaLimitError,
        "exceeded its instruction budget",
        id="pcall-loop",
    ),
    P(
        "while true do xpcall(function() while true do end end, function() return 'ok' end) end",
        LuaLimitError,
        "exceeded its instruction budget",
        id="xpcall-loop",
    ),
    P(
        "local ok = xpcall(function() while true do end end, function() while true do end end)",
        LuaLimitError,
        "exceeded its instruction budget",
        id="xpcall-handler-loop",
    ),
    P(
        "local co = coroutine.create(function() while true do end end) coroutine.resume(co)",
        LuaLimitError,
        "exceeded its instruction budget",
        id="coroutine-loop",
    ),
    P(
        "local f = coroutine.wrap(function() while true do end end) while true do pcall(f) end",
        LuaLimitError,
        "exceeded its instruction budget",
        id="wrap-pcall-swallow",
    ),
    P(
        """local co = coroutine.create(function()
           local x <close> = setmetatable({}, {__close = function() while true do end end})
           coroutine.yield()
         end)
         coroutine.resume(co)
         while true do pcall(coroutine.close, co) end""",
        LuaLimitError,
        "exceeded its instruction budget",
        id="coroutine-close-loop",
    ),
    P(
        "local n = 0 while true do n = n + 1 coroutine.wrap(function() end)() end",
        LuaLimitError,
        "exceeded its instruction budget",
        id="many-coroutines",
    ),
    P(
        "local t = {} for i = 1, 1e7 do t[i] = coroutine.create(function() end) end",
        LuaLimitError,
        "exceeded its memory limit",
        MEM,
        id="coroutine-hoard",
    ),
    P(
        "error(setmetatable({}, {__tostring = function() while true do end end}))",
        LuaLimitError,
        "exceeded its instruction budget",
        id="error-tostring-loop",
    ),
    P(
        "return ('%s'):format(setmetatable({}, {__tostring = function() while true do end end}))",
        LuaLimitError,
        "exceeded its instruction budget",
        id="format-tostring-loop",
    ),
    P(
        "return table.move({}, 1, math.maxinteger - 1, 2)",
        LuaLimitError,
        "exceeded its instruction budget",
        id="table.move-spin",
    ),
    P(
        "local t = setmetatable({}, {__len = function() return math.maxinteger - 1 end})"
        " table.insert(t, 1, 'x')",
        LuaLimitError,
        "exceeded its instruction budget",
        id="table.insert-fake-len",
    ),
    # -- exhausting memory / the stack -----------------------------------------------------------
    P(
        "local function f(n) return 1 + f(n + 1) end return f(1)",
        LuaLimitError,
        "exceeded its memory limit",
        MEM,
        id="deep-recursion",
    ),
    P(
        "return #string.rep('x', 2^30)",
        LuaLimitError,
        "exceeded its memory limit of 8 MiB",
        id="string.rep-bomb",
    ),
    P(
        "return #string.rep('x', 2^31)",
        LuaError,
        "resulting string too large",
        id="string.rep-too-large",
    ),
    P(
        "local s = 'x' while true do s = s .. s end",
        LuaLimitError,
        "exceeded its memory limit",
        id="concat-doubling",
    ),
    P(
        "local t = {} local i = 0 while true do i = i + 1 t[i] = i end",
        LuaLimitError,
        "exceeded its memory limit",
        MEM,
        id="table-bomb",
    ),
    P(
        "local t = {} while true do t[#t + 1] = {} end",
        LuaLimitError,
        "exceeded its memory limit",
        MEM,
        id="nested-table-bomb",
    ),
    P(
        "while true do pcall(function() local t = {} for i = 1, 1e9 do t[i] = i end end) end",
        LuaLimitError,
        "exceeded its memory limit",
        MEM,
        id="pcall-swallows-oom",
    ),
    P(
        "local parts = {} for i = 1, 1e6 do parts[i] = string.rep('y', 100) end"
        " return table.concat(parts)",
        LuaLimitError,
        "exceeded its memory limit",
        MEM,
        id="concat-bomb",
    ),
    # -- bad results -----------------------------------------------------------------------------
    P(
        "return {ok = true, handler = function() end}",
        LuaError,
        "result.handler: a function is not a JSON value",
        id="return-function",
    ),
    P("local t = {} t.self = t return t", LuaError, "result.self: a cycle", id="return-cycle"),
    P(
        "return coroutine.running()",
        LuaError,
        "result: a thread is not a JSON value",
        id="return-thread",
    ),
    P(
        "local shared = {1} local t = {} for i = 1, 2000 do t[i] = {shared, shared, shared} end"
        " local u = {} for i = 1, 200 do u[i] = t end return u",
        LuaLimitError,
        "exceeded its memory limit",
        id="result-blowup",
    ),
]


@pytest.fixture(scope="module")
def abused() -> Iterator[LuaSandbox]:
    with LuaSandbox(workers=1) as sandbox:
        yield sandbox


async def assert_usable(sandbox: LuaSandbox) -> None:
    scope = make_scope(inputs={"a": 41})
    normal = code("local t = {} for i = 1, 3 do t[i] = inputs.a + i end return t", "normal")
    assert sandbox.run_inline(normal, scope, SMALL) == [42, 43, 44]
    assert await sandbox.run_pooled(normal, scope, SMALL) == [42, 43, 44]
    matching = code("return (string.gsub('a-b-c', '-', '+'))", "normal")
    assert await sandbox.run(matching, scope, SMALL) == "a+b+c"


@pytest.mark.parametrize(("source", "kind", "fragment", "limits"), [
    P(*case.values, *([SMALL] if len(case.values) == 3 else []), id=case.id) for case in ABUSE
])  # fmt: skip
async def test_abuse_is_contained(
    abused: LuaSandbox, source: str, kind: type[LuaError], fragment: str, limits: LuaLimits
) -> None:
    started = time.monotonic()
    with pytest.raises(LuaError) as info:
        await abused.run(code(source, "evil"), make_scope(), limits)
    assert type(info.value) is kind, info.value
    assert fragment in str(info.value)
    assert str(info.value).startswith("evil")
    if kind is LuaLimitError:
        assert info.value.retryable is False
    assert time.monotonic() - started < 5
    await assert_usable(abused)


async def test_stack_overflow_with_room(abused: LuaSandbox) -> None:
    source = "local function f() return 1 + f() end return f()"
    roomy = LuaLimits(instructions=10**8, memory=256 * MiB, timeout=5.0)
    with pytest.raises(LuaError, match=r"^r:1: stack overflow") as info:
        await abused.run(code(source, "r"), make_scope(), roomy)
    assert info.value.retryable is True
    await assert_usable(abused)


async def test_empty_rep_does_not_spin(abused: LuaSandbox) -> None:
    source = "return {string.rep('', math.maxinteger), ('x'):rep(0), string.rep('', 3, '')}"
    started = time.monotonic()
    assert await abused.run(code(source), make_scope(), SMALL) == ["", "", ""]
    assert time.monotonic() - started < 1
    await assert_usable(abused)


async def test_slow_pattern_times_out_and_the_worker_is_replaced(abused: LuaSandbox) -> None:
    """A backtracking pattern stays inside one C call for ~2 s: the hook cannot stop it, so the
    awaiting side gives up at the timeout and the stuck worker is replaced."""
    source = "local s = string.rep('a', 24) return string.find(s, string.rep('a?', 24) .. s)"
    limits = LuaLimits(instructions=10**9, memory=8 * MiB, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(LuaLimitError, match=r"^evil: timed out after 0\.5s$"):
        await abused.run(code(source, "evil"), make_scope(), limits)
    assert time.monotonic() - started < 1.5
    # the only worker is still inside string.find; a replacement serves the next call at once
    started = time.monotonic()
    await assert_usable(abused)
    assert time.monotonic() - started < 0.5


async def test_memory_is_given_back(abused: LuaSandbox) -> None:
    """Many calls that each allocate close to the limit keep succeeding."""
    source = "local t = {} for i = 1, 100000 do t[i] = i end return #t"
    for _ in range(20):
        assert await abused.run_pooled(code(source), make_scope(), SMALL) == 100000
