"""What a chunk sees (inputs, args, outputs, execution, the safe globals) and how errors read."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from engine.errors import LuaError
from engine.lua import ESCALATE, LuaCode, LuaSandbox, Scope

from .luasupport import SMALL, code, make_scope


class CountingMapping(Mapping[str, Any]):
    """A mapping that records every ``__getitem__``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.reads: dict[str, int] = {}

    def __getitem__(self, key: str) -> Any:
        self.reads[key] = self.reads.get(key, 0) + 1
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_scope_is_visible(box: LuaSandbox) -> None:
    scope = Scope(
        inputs={"amount": 12, "tags": ["a", "b"]},
        outputs={"fetch": {"status": 200}},
        execution={"id": "e-9", "workflow": "wf", "version": "2.0.0"},
        args={"factor": 3},
    )
    source = """
        return {
          total = inputs.amount * args.factor,
          tags = #inputs.tags,
          status = outputs.fetch.status,
          exec = execution.id .. "/" .. execution.workflow .. "@" .. execution.version,
        }
    """
    assert box.run_inline(code(source), scope, SMALL) == {
        "total": 36,
        "tags": 2,
        "status": 200,
        "exec": "e-9/wf@2.0.0",
    }


def test_args_default_to_an_empty_table(box: LuaSandbox) -> None:
    source = "local n = 0 for _ in pairs(args) do n = n + 1 end return {type(args), n}"
    assert box.run_inline(code(source), make_scope(args=None), SMALL) == ["table", 0]


def test_scope_tables_iterate_and_return_whole(box: LuaSandbox) -> None:
    scope = make_scope(inputs={"x": 1, "y": {"z": 2}}, outputs={"a": 1, "b": 2})
    source = """
        local keys = {}
        for k in pairs(inputs) do keys[#keys + 1] = k end
        table.sort(keys)
        return {keys = keys, inputs = inputs, outputs = outputs}
    """
    assert box.run_inline(code(source), scope, SMALL) == {
        "keys": ["x", "y"],
        "inputs": {"x": 1, "y": {"z": 2}},
        "outputs": {"a": 1, "b": 2},
    }


def test_missing_entries_are_nil(box: LuaSandbox) -> None:
    source = "return {inputs.nope == nil, outputs.nope == nil, execution.nope == nil}"
    assert box.run_inline(code(source), make_scope(), SMALL) == [True, True, True]


def test_outputs_are_converted_lazily() -> None:
    outputs = CountingMapping(
        {f"n{i}": {"value": i, "items": list(range(5))} for i in range(10_000)}
    )
    scope = make_scope(outputs=outputs)
    source = "return outputs.n5.value + outputs.n7.value + outputs.n5.items[5] + outputs.n5.value"
    with LuaSandbox(workers=1) as sandbox:
        assert sandbox.run_inline(code(source), scope, SMALL) == 5 + 7 + 4 + 5
        assert outputs.reads == {"n5": 1, "n7": 1}  # cached for the call, others never touched
        assert sandbox.run_inline(code(source), scope, SMALL) == 21
        assert outputs.reads == {"n5": 2, "n7": 2}  # but not across calls


async def test_outputs_are_lazy_in_the_pool() -> None:
    outputs = CountingMapping({f"n{i}": i for i in range(10_000)})
    with LuaSandbox(workers=1) as sandbox:
        result = await sandbox.run_pooled(
            code("return outputs.n42"), make_scope(outputs=outputs), SMALL
        )
    assert result == 42
    assert outputs.reads == {"n42": 1}


def test_each_call_gets_a_fresh_environment(box: LuaSandbox) -> None:
    scope = make_scope(inputs={"a": 1, "t": {"k": 1}})
    assert box.run_inline(code("leak = 'yes'; inputs.a = 99; inputs.t.k = 2"), scope, SMALL) is None
    source = "return {leak == nil, inputs.a, inputs.t.k}"
    assert box.run_inline(code(source), scope, SMALL) == [True, 1, 1]
    assert scope.inputs == {"a": 1, "t": {"k": 1}}


def test_random_seed_does_not_leak(box: LuaSandbox) -> None:
    seeded = "math.randomseed(42); return {math.random(1, 2^40), math.random(1, 2^40)}"
    first, second = box.run_inline(code(seeded), make_scope(), SMALL)
    assert box.run_inline(code(seeded), make_scope(), SMALL) == [first, second]
    box.run_inline(code("math.randomseed(42); return math.random(1, 2^40)"), make_scope(), SMALL)
    assert box.run_inline(code("return math.random(1, 2^40)"), make_scope(), SMALL) != second


def test_safe_globals_are_present(box: LuaSandbox) -> None:
    names = [
        "assert", "error", "ipairs", "next", "pairs", "print", "rawequal", "rawget", "rawlen",
        "rawset", "select", "tonumber", "tostring", "type", "unpack", "pcall", "xpcall",
        "getmetatable", "setmetatable", "load", "string", "table", "math", "utf8", "coroutine",
    ]  # fmt: skip
    source = "local r = {} for i, n in ipairs({...}) do r[i] = type(_G[n]) end return r"
    listed = ", ".join(f"'{n}'" for n in names)
    result = box.run_inline(code(source.replace("...", listed)), make_scope(), SMALL)
    assert result == ["function"] * 20 + ["table"] * 5, result
    assert box.run_inline(code("return _VERSION"), make_scope(), SMALL) == "Lua 5.4"


@pytest.mark.parametrize(
    "name",
    ["os", "io", "debug", "package", "require", "dofile", "loadfile", "collectgarbage",
     "loadstring", "python", "warn"],
)  # fmt: skip
def test_unsafe_globals_are_absent(box: LuaSandbox, name: str) -> None:
    assert box.run_inline(code(f"return {name} == nil"), make_scope(), SMALL) is True


def test_library_details(box: LuaSandbox) -> None:
    source = """
        return {
          string.dump == nil, string.format("%05.1f", 3.14159), ("abc"):upper(),
          table.concat({1, 2, 3}, ","), math.floor(2.5), utf8.char(9731), select("#", 1, 2),
          unpack({4, 5}), #"xyz"
        }
    """
    assert box.run_inline(code(source), make_scope(), SMALL) == [
        True, "003.1", "ABC", "1,2,3", 2, "☃", 2, 4, 3,
    ]  # fmt: skip


def test_load_uses_the_call_environment(box: LuaSandbox) -> None:
    source = "x = 5; local f = load('return x + inputs.a'); return f()"
    assert box.run_inline(code(source), make_scope(), SMALL) == 6
    env = "local f = load('return y', 'chunk', 't', {y = 7}); return f()"
    assert box.run_inline(code(env), make_scope(), SMALL) == 7
    bad = "local f, err = load('return +', 'inner'); return err"
    assert box.run_inline(code(bad), make_scope(), SMALL) == (
        "[string \"inner\"]:1: unexpected symbol near '+'"
    )


def test_print_goes_to_the_log(
    box: LuaSandbox, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG, logger="engine.lua"):
        box.run_inline(code("print('hello', 1, nil, {1} ~= nil)", "greeter"), make_scope(), SMALL)
    assert "greeter: hello\t1\tnil\ttrue" in caplog.messages
    assert capsys.readouterr().out == ""


def test_escalate_is_a_singleton() -> None:
    assert repr(ESCALATE) == "ESCALATE"
    assert ESCALATE is not None


# -- errors ----------------------------------------------------------------------------------------


def test_error_message_has_chunkname_and_line(box: LuaSandbox) -> None:
    source = "local amount = inputs.a\nif amount < 5 then\n  error('amount must be positive')\nend"
    with pytest.raises(LuaError) as info:
        box.run_inline(code(source, "validate"), make_scope(), SMALL)
    assert str(info.value) == "validate:3: amount must be positive"
    assert info.value.message == "validate:3: amount must be positive"
    assert info.value.retryable is True


def test_runtime_error_has_chunkname_and_line(box: LuaSandbox) -> None:
    with pytest.raises(LuaError, match=r"^calc:2: attempt to perform arithmetic on a nil value"):
        box.run_inline(code("local x\nreturn x + 1", "calc"), make_scope(), SMALL)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("error({code = 42})", "obj: error object is a table"),
        ("error()", "obj: error object is a nil"),
        ("error(true)", "obj: error object is a boolean"),
        ("error(42)", "obj: 42"),
        ("error(setmetatable({}, {__tostring = function() return 'custom' end}))", "obj: custom"),
        ("error(setmetatable({}, {__tostring = function() error('x') end}))",
         "obj: error object is a table"),
        ("error('no position', 0)", "obj: no position"),
        ("error('caller', 2)", "obj: caller"),
    ],
)  # fmt: skip
def test_error_objects(box: LuaSandbox, source: str, message: str) -> None:
    with pytest.raises(LuaError) as info:
        box.run_inline(code(source, "obj"), make_scope(), SMALL)
    assert str(info.value) == message
    assert info.value.retryable is True


def test_caught_errors_are_values(box: LuaSandbox) -> None:
    source = """
        local ok, err = pcall(error, {code = 7})
        local ok2, err2 = pcall(function() error('boom') end)
        return {ok, err.code, ok2, err2}
    """
    assert box.run_inline(code(source, "c"), make_scope(), SMALL) == [False, 7, False, "c:3: boom"]


def test_long_chunkname(box: LuaSandbox) -> None:
    name = "nodes.a_rather_long_node_identifier_that_goes_on.next[12].when.condition"
    with pytest.raises(LuaError, match="boom") as info:
        box.run_inline(code("error('boom')", name), make_scope(), SMALL)
    assert str(info.value).startswith(name[:59])
    assert box.syntax_error(code("x = = 1", name)) == "line 1: unexpected symbol near '='"


# -- syntax and expressions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("return 1", None),
        ("x = = 1", "line 1: unexpected symbol near '='"),
        ("local a = 1\nlocal b = 2\nx y", "line 3: syntax error near 'y'"),
        ("local t = {\n1,\n2", "line 3: '}' expected (to close '{' at line 1) near <eof>"),
        ("if x then\n  y = 1\n", "line 3: 'end' expected (to close 'if' at line 1) near <eof>"),
        ("return 'unfinished", "line 1: unfinished string near <eof>"),
        ("\n\ngoto nowhere", "line 3: no visible label 'nowhere' for <goto> at line 3"),
    ],
)
def test_syntax_error(box: LuaSandbox, source: str, expected: str | None) -> None:
    assert box.syntax_error(code(source, "validate")) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("inputs.a + 1", None),
        ("inputs.a +", "line 1: unexpected symbol near <eof>"),
        ("1, 2", "line 1: expected a single expression"),
        ("x = 1", "line 1: <eof> expected near '='"),
        ("(inputs.a\n+\n)", "line 3: unexpected symbol near ')'"),
        ("inputs.a -- a comment", None),
    ],
)
def test_expression_syntax_error(box: LuaSandbox, source: str, expected: str | None) -> None:
    assert box.syntax_error(code(source, "when", expression=True)) == expected


def test_syntax_error_at_run_is_not_retryable(box: LuaSandbox) -> None:
    with pytest.raises(LuaError, match=r"^bad: syntax error: line 1: ") as info:
        box.run_inline(code("return return", "bad"), make_scope(), SMALL)
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("inputs.a * 2", 2),
        ("inputs.a > 0 and 'positive' or 'not'", "positive"),
        ("{inputs.a, execution.workflow}", [1, "orders"]),
        ("nil", None),
        ("string.format('%d items', 3)", "3 items"),
        ("(function() return 1, 2 end)()", 1),
        ("inputs.a -- trailing comment", 1),
    ],
)
def test_expressions(box: LuaSandbox, source: str, expected: Any) -> None:
    assert box.run_inline(code(source, "expr", expression=True), make_scope(), SMALL) == expected


def test_compiled_functions_are_cached_per_source_and_name(box: LuaSandbox) -> None:
    first = LuaCode("error('x')", "first")
    second = LuaCode("error('x')", "second")
    for item, name in ((first, "first"), (second, "second"), (first, "first")):
        with pytest.raises(LuaError, match=f"^{name}:1: x$"):
            box.run_inline(item, make_scope(), SMALL)
