"""Values between Python and Lua: shapes both ways, rejections with paths, and a round trip."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import LuaError
from engine.lua import ESCALATE, LuaSandbox

from .luasupport import SMALL, code, make_scope


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0 is not True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


# -- Lua -> Python ---------------------------------------------------------------------------------

LUA_TO_PYTHON = [
    ("nil", None),
    ("true", True),
    ("false", False),
    ("42", 42),
    ("-7", -7),
    ("math.maxinteger", 2**63 - 1),
    ("1.5", 1.5),
    ("2.0", 2.0),
    ("-0.0", -0.0),
    ("2^53", 9007199254740992.0),
    ("'text'", "text"),
    ("'héllo ☃'", "héllo ☃"),
    ("'tab\\tquote\"back\\\\slash\\0nul'", 'tab\tquote"back\\slash\x00nul'),
    ("{}", {}),
    ("{1, 2, 3}", [1, 2, 3]),
    ("{[2] = 'b', [1] = 'a'}", ["a", "b"]),
    ("{[1] = 'a', [3] = 'c'}", {"1": "a", "3": "c"}),
    ("{[0] = 'zero', [1] = 'one'}", {"0": "zero", "1": "one"}),
    ("{[-1] = 'minus'}", {"-1": "minus"}),
    ("{1, 2, x = 3}", {"1": 1, "2": 2, "x": 3}),
    ("{a = 1, b = {c = {true, false}}}", {"a": 1, "b": {"c": [True, False]}}),
    ("{{}, {{}}}", [{}, [{}]]),
    ("{x = 1.25, y = 3}", {"x": 1.25, "y": 3}),
    ("{['key with space'] = 1}", {"key with space": 1}),
]


@pytest.mark.parametrize(("lua", "expected"), LUA_TO_PYTHON, ids=[c[0] for c in LUA_TO_PYTHON])
def test_lua_to_python(box: LuaSandbox, lua: str, expected: Any) -> None:
    result = box.run_inline(code(lua, expression=True), make_scope(), SMALL)
    assert same(result, expected), result


LUA_REJECTED = [
    ("function() end", "result: a function is not a JSON value"),
    ("{items = {1, 2, print}}", "result.items[3]: a function is not a JSON value"),
    ("{co = coroutine.create(function() end)}", "result.co: a thread is not a JSON value"),
    ("0/0", "result: NaN is not a JSON number"),
    ("{x = 1/0}", "result.x: inf is not a JSON number"),
    ("{x = {-1/0}}", "result.x[1]: -inf is not a JSON number"),
    ("'\\255'", "result: a string that is not valid UTF-8"),
    ("{s = 'ok\\200'}", "result.s: a string that is not valid UTF-8"),
    ("{['\\255'] = 1}", "a string that is not valid UTF-8"),
    ("{[1.5] = 1}", "result: a table key that is a non-integer number"),
    ("{[true] = 1}", "result: a table key that is a boolean"),
    ("{[{}] = 1}", "result: a table key that is a table"),
    ("{[1] = 'a', ['1'] = 'b'}", "result: key 1 is used both as a number and as a string"),
]


@pytest.mark.parametrize(("lua", "message"), LUA_REJECTED, ids=[c[0] for c in LUA_REJECTED])
def test_lua_result_rejected(box: LuaSandbox, lua: str, message: str) -> None:
    with pytest.raises(LuaError) as info:
        box.run_inline(code(lua, "shape", expression=True), make_scope(), SMALL)
    assert message in str(info.value)
    assert str(info.value).startswith("shape: ")
    assert info.value.retryable is False


def test_cycle_is_named(box: LuaSandbox) -> None:
    source = "local t = {a = {b = {}}}; t.a.b.back = t.a; return t"
    with pytest.raises(LuaError, match=r"result\.a\.b\.back: a cycle") as info:
        box.run_inline(code(source), make_scope(), SMALL)
    assert info.value.retryable is False


def test_depth_limit(box: LuaSandbox) -> None:
    deep = "local t = {} local cur = t for i = 1, 70 do cur.x = {} cur = cur.x end return t"
    with pytest.raises(LuaError, match="nested deeper than 64 levels"):
        box.run_inline(code(deep), make_scope(), SMALL)
    ok = "local t = {} local cur = t for i = 1, 63 do cur.x = {} cur = cur.x end return t"
    result = box.run_inline(code(ok), make_scope(), SMALL)
    for _ in range(63):
        result = result["x"]
    assert result == {}


def test_big_result_goes_to_the_pool(box: LuaSandbox) -> None:
    source = "local t = {} for i = 1, 3000 do t[i] = string.rep('x', 500) end return t"
    limits = SMALL
    assert box.run_inline(code(source), make_scope(), limits) is ESCALATE


async def test_big_result_from_the_pool(box: LuaSandbox) -> None:
    source = "local t = {} for i = 1, 3000 do t[i] = string.rep('x', 500) end return t"
    result = await box.run(code(source), make_scope(), SMALL)
    assert len(result) == 3000
    assert result[0] == "x" * 500


# -- Python -> Lua ---------------------------------------------------------------------------------

PYTHON_TO_LUA: list[tuple[Any, str, Any]] = [
    ({"x": 1}, "type(v) .. ':' .. v.x", "table:1"),
    ([10, 20, 30], "#v .. ':' .. v[1] .. ':' .. v[3]", "3:10:30"),
    ((1, 2), "#v", 2),
    (None, "v == nil", True),
    ({"a": None, "b": 1}, "v.a == nil and v.b == 1", True),
    (5, "math.type(v)", "integer"),
    (5.0, "math.type(v)", "float"),
    (True, "type(v)", "boolean"),
    ("s", "type(v)", "string"),
    ({"n": {"m": [{"k": "deep"}]}}, "v.n.m[1].k", "deep"),
    ({1: "int key"}, "v['1']", "int key"),
    ([], "type(v) .. #v", "table0"),
]


@pytest.mark.parametrize(("value", "expression", "expected"), PYTHON_TO_LUA)
def test_python_to_lua(box: LuaSandbox, value: Any, expression: str, expected: Any) -> None:
    scope = make_scope(inputs={"v": value})
    source = f"local v = inputs.v; return {expression}"
    assert box.run_inline(code(source), scope, SMALL) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, "inputs.v: a set is not a JSON value"),
        ({"x": [1, object()]}, "inputs.v.x[2]: an object is not a JSON value"),
        (2**70, "inputs.v: the integer 1180591620717411303424 does not fit in 64 bits"),
        ({"x": -(2**64)}, "inputs.v.x: the integer"),
        ({(1, 2): "tuple key"}, "inputs.v: the key (1, 2) is not a string"),
    ],
)
def test_python_value_rejected(box: LuaSandbox, value: Any, message: str) -> None:
    with pytest.raises(LuaError, match=r"^node:1: ") as info:
        box.run_inline(code("return inputs.v"), make_scope(inputs={"v": value}), SMALL)
    assert message in str(info.value)
    assert info.value.retryable is False


def test_python_depth_limit(box: LuaSandbox) -> None:
    value: Any = "leaf"
    for _ in range(70):
        value = {"x": value}
    with pytest.raises(LuaError, match="nested deeper than 64 levels"):
        box.run_inline(code("return inputs.v"), make_scope(inputs={"v": value}), SMALL)


# -- round trip ------------------------------------------------------------------------------------

json_scalars = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=5)
        | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_round_trip(box: LuaSandbox, value: Any) -> None:
    result = box.run_inline(code("return inputs.v"), make_scope(inputs={"v": value}), SMALL)
    assert same(result, value), (value, result)


@settings(max_examples=60, deadline=None)
@given(value=json_values)
def test_round_trip_through_a_copy(box: LuaSandbox, value: Any) -> None:
    """A copy made in Lua (not the converted table itself) comes back the same."""
    source = """
        local function copy(v)
          if type(v) ~= "table" then return v end
          local c = {}
          for k, x in pairs(v) do c[k] = copy(x) end
          return c
        end
        return copy(inputs.v)
    """
    result = box.run_inline(code(source), make_scope(inputs={"v": value}), SMALL)
    assert same(result, value), (value, result)
