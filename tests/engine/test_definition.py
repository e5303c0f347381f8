"""Parsing and validating definitions: every error names its path and reason."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from engine.definition import Workflow, from_document, load_file, loads, resolve_inputs
from engine.definition.duration import format_duration, parse_duration
from engine.definition.model import (
    Callback,
    HttpTask,
    LuaTask,
    NoopTask,
    SleepTask,
    TriggerRule,
    WaitTask,
)
from engine.definition.schema import json_schema
from engine.definition.semver import Version, VersionRange
from engine.errors import DefinitionError, InputError

EXAMPLES = Path(__file__).parents[2] / "examples"


def doc(*nodes: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "apiVersion": "weir/v1",
        "kind": "Workflow",
        "name": "w",
        "version": "1.0.0",
        "nodes": list(nodes) or [{"id": "a", "noop": {}}],
        **top,
    }


INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "unknown dependency",
        doc({"id": "load", "noop": {}, "depends_on": ["lod"]}, {"id": "lood", "noop": {}}),
        "nodes[0].depends_on[0]",
        "unknown node 'lod' (did you mean 'lood'?)",
    ),
    (
        "duplicate id",
        doc({"id": "a", "noop": {}}, {"id": "a", "noop": {}}),
        "nodes[1].id",
        "duplicate id 'a' (first at nodes[0])",
    ),
    (
        "cycle",
        doc(
            {"id": "a", "noop": {}, "depends_on": ["c"]},
            {"id": "b", "noop": {}, "depends_on": ["a"]},
            {"id": "c", "noop": {}, "depends_on": ["b"]},
            {"id": "s", "noop": {}},
        ),
        "nodes",
        "depends_on cycle: a -> c -> b -> a",
    ),
    (
        "self dependency",
        doc({"id": "a", "noop": {}, "depends_on": ["a"]}, {"id": "b", "noop": {}}),
        "nodes[0].depends_on[0]",
        "node 'a' depends on itself",
    ),
    (
        "next to unknown node",
        doc({"id": "a", "noop": {}, "next": {"AGREE": "deplo"}}, {"id": "deploy", "noop": {}}),
        "nodes[0].next.AGREE",
        "unknown node 'deplo' (did you mean 'deploy'?)",
    ),
    (
        "edge to unknown node",
        doc({"id": "a", "noop": {}, "next": [{"to": "x"}]}),
        "nodes[0].next[0].to",
        "unknown node 'x'",
    ),
    (
        "two executors",
        doc({"id": "a", "lua": "return 1", "http": {"url": "http://x"}}),
        "nodes[0]",
        "has 2 executors (lua, http)",
    ),
    ("no executor", doc({"id": "a"}), "nodes[0]", "has no executor"),
    (
        "bad duration",
        doc({"id": "a", "noop": {}, "timeout": "10 minutes"}),
        "nodes[0].timeout",
        "invalid duration '10 minutes'",
    ),
    ("bad sleep", doc({"id": "a", "sleep": "soon"}), "nodes[0].sleep", "invalid duration 'soon'"),
    ("bad semver", doc(version="1.0"), "version", "invalid semantic version '1.0'"),
    (
        "lua syntax error",
        doc({"id": "a", "lua": "local x = 1\nreturn {x = }"}),
        "nodes[0].lua",
        "Lua syntax error",
    ),
    (
        "when syntax error",
        doc({"id": "a", "noop": {}, "when": "1 +"}),
        "nodes[0].when",
        "Lua expression syntax error",
    ),
    (
        "template syntax error",
        doc({"id": "a", "noop": {}, "args": {"x": "${inputs.a"}}),
        "nodes[0].args",
        "template: unclosed",
    ),
    (
        "undeclared input",
        doc({"id": "a", "lua": "return inputs.amount"}, inputs={"amont": {"type": "number"}}),
        "nodes[0].lua",
        "undeclared input 'amount' (did you mean 'amont'?)",
    ),
    (
        "undeclared input in a template",
        doc({"id": "a", "noop": {}, "args": {"x": "${inputs.q}"}}),
        "nodes[0].args",
        "undeclared input 'q'",
    ),
    (
        "unknown node in outputs",
        doc({"id": "a", "noop": {}}, outputs={"t": "${outputs.b.total}"}),
        "outputs",
        "outputs.b: unknown node",
    ),
    (
        "unknown key",
        doc({"id": "a", "noop": {}, "dependson": ["b"]}),
        "nodes[0].dependson",
        "unknown key (did you mean 'depends_on'?)",
    ),
    ("missing name", {k: v for k, v in doc().items() if k != "name"}, "name", "required"),
    ("bad name", doc(name="My Flow"), "name", "must be a DNS label"),
    ("bad node id", doc({"id": "1a", "noop": {}}), "nodes[0].id", "must start with a letter"),
    (
        "bad trigger rule",
        doc(
            {"id": "a", "noop": {}},
            {"id": "b", "noop": {}, "depends_on": ["a"], "trigger_rule": "any"},
        ),
        "nodes[1].trigger_rule",
        "expected 'all_success', 'all_done' or 'one_failed'",
    ),
    (
        "bad next shape",
        doc({"id": "a", "noop": {}, "next": "b"}),
        "nodes[0].next",
        "expected a map of outcome",
    ),
    (
        "bad python target",
        doc({"id": "a", "python": "os.system"}),
        "nodes[0].python",
        'expected "package.module:function"',
    ),
    (
        "bad input default",
        doc(inputs={"n": {"type": "integer", "default": "x"}}),
        "inputs.n.default",
        'expected integer, got string "x"',
    ),
    (
        "no start node",
        doc(
            {"id": "a", "noop": {}, "next": {"SUCCESS": "b"}},
            {"id": "b", "noop": {}, "next": {"SUCCESS": "a"}},
        ),
        "nodes",
        "no node starts the execution",
    ),
    ("end is reserved", doc({"id": "end", "noop": {}}), "nodes[0].id", "'end' is reserved"),
    ("empty nodes", doc(nodes=[]) | {"nodes": []}, "nodes", "at least 1"),
    (
        "bad retry",
        doc({"id": "a", "noop": {}, "retry": {"attempts": 0}}),
        "nodes[0].retry.attempts",
        "greater than or equal to 1",
    ),
]


@pytest.mark.parametrize(
    ("name", "document", "path", "message"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid_definitions_name_path_and_reason(
    name: str, document: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as info:
        from_document(document)
    found = [(i.path, i.message) for i in info.value.issues]
    assert any(p == path and message in m for p, m in found), found


def test_all_problems_are_reported_at_once() -> None:
    document = doc({"id": "a", "noop": {}, "depends_on": ["x"]}, {"id": "a", "lua": "return ("})
    with pytest.raises(DefinitionError) as info:
        from_document(document)
    paths = {i.path for i in info.value.issues}
    assert {"nodes[0].depends_on[0]", "nodes[1].id", "nodes[1].lua"} <= paths


def test_lua_syntax_error_has_line_number() -> None:
    with pytest.raises(DefinitionError) as info:
        from_document(doc({"id": "a", "lua": "local x = 1\nlocal y = 2\nreturn {x = }"}))
    assert "3" in info.value.issues[0].message


def test_yaml_errors_have_a_line() -> None:
    with pytest.raises(DefinitionError) as info:
        loads("name: w\nnodes: [\n  - id: a\n", source="bad.yaml")
    assert "line" in str(info.value) and str(info.value).startswith("bad.yaml:")


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(DefinitionError, match="expected a mapping"):
        loads("- 1\n- 2\n")


def test_missing_file() -> None:
    with pytest.raises(DefinitionError, match="cannot read file"):
        load_file("/nonexistent/w.yaml")


def test_yaml_json_and_builder_give_the_same_model() -> None:
    yaml_text = """
apiVersion: weir/v1
kind: Workflow
name: etl
version: 1.2.0
inputs:
  rows: {type: integer, default: 3}
timeout: 1m
nodes:
  - id: extract
    lua: "return {n = inputs.rows}"
    retry: {attempts: 3, backoff: 500ms}
  - id: load
    depends_on: [extract]
    trigger_rule: all_done
    when: outputs.extract.n > 0
    sleep: 2s
outputs:
  n: ${outputs.extract.n}
"""
    from_yaml = loads(yaml_text)
    from_json = loads(json.dumps(yaml.safe_load(yaml_text)))
    built = (
        Workflow("etl", "1.2.0", inputs={"rows": {"type": "integer", "default": 3}}, timeout="1m")
        .node("extract", lua="return {n = inputs.rows}", retry={"attempts": 3, "backoff": "500ms"})
        .node(
            "load",
            depends_on="extract",
            trigger_rule="all_done",
            when="outputs.extract.n > 0",
            sleep="2s",
        )
        .output("n", "${outputs.extract.n}")
        .build()
    )
    assert from_yaml == from_json == built
    assert isinstance(built.by_id["extract"].executor, LuaTask)
    assert built.by_id["load"].executor == SleepTask(2.0)
    assert built.by_id["load"].trigger_rule is TriggerRule.ALL_DONE
    assert built.by_id["extract"].retry.backoff == 0.5
    assert built.timeout == 60.0
    assert (
        loads(Workflow("etl", "1.2.0").node("a", noop=True).to_yaml()).by_id["a"].executor
        == NoopTask()
    )


def test_examples_are_valid() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        load_file(path)


def test_schema_describes_the_format() -> None:
    schema = json_schema()
    assert schema["title"] == "weir workflow"
    assert {"name", "version", "nodes"} <= set(schema["required"])
    node = schema["$defs"]["NodeDoc"]["properties"]
    assert {"lua", "http", "python", "workflow", "noop", "sleep", "next", "depends_on"} <= set(node)


def test_start_nodes_and_transition_targets() -> None:
    d = from_document(
        doc(
            {"id": "A", "noop": {}, "next": {"SUCCESS": "D", "FAIL": "A"}},
            {"id": "D", "noop": {}, "next": {"SUCCESS": "end"}},
            {"id": "x", "noop": {}, "depends_on": ["A"]},
        )
    )
    assert d.start_nodes == ("A",)
    assert d.dependents["A"] == ("x",)


# --- inputs ----------------------------------------------------------------------------------


def test_inputs_defaults_types_and_errors() -> None:
    d = from_document(
        doc(
            inputs={
                "a": {"type": "number"},
                "b": {"type": "string", "default": "x"},
                "n": {"type": "integer", "default": 1},
            }
        )
    )
    assert resolve_inputs(d, {"a": 2.5}) == {"a": 2.5, "b": "x", "n": 1}
    with pytest.raises(InputError) as info:
        resolve_inputs(d, {"b": 3, "c": 1, "n": 1.5})
    messages = {str(i) for i in info.value.issues}
    assert messages == {
        "inputs.c: undeclared input (declared: a, b, n)",
        "inputs.a: required input missing (number)",
        "inputs.b: expected string, got integer 3",
        "inputs.n: expected integer, got number 1.5",
    }


# --- durations and versions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("10m", 600),
        ("1h30m", 5400),
        ("1.5s", 1.5),
        ("2d", 172800),
        (5, 5),
        ("7", 7),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "1x", "-1s", "m", True, None, [], "1 h"])
def test_bad_durations(bad: Any) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


@given(st.floats(min_value=0.001, max_value=10**6))
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=0.001)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("1.9.0", "1.10.0"),
        ("1.0.0-alpha", "1.0.0"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-beta.2", "1.0.0-beta.11"),
        ("1.0.0-rc.1", "1.0.0"),
        ("0.9.9", "1.0.0"),
        ("2.0.0", "10.0.0"),
    ],
)
def test_semver_order(low: str, high: str) -> None:
    assert Version.parse(low) < Version.parse(high)


@pytest.mark.parametrize(
    ("spec", "version", "ok"),
    [
        ("^1.2", "1.9.3", True),
        ("^1.2", "2.0.0", False),
        ("^1.2", "1.1.9", False),
        ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.3.0", False),
        ("1.2.3", "1.2.3", True),
        ("1.2.3", "1.2.4", False),
        ("*", "7.0.0", True),
        ("*", "1.0.0-rc.1", False),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        (">=1.0.0 <2.0.0", "1.5.0", True),
        (">=1.0.0 <2.0.0", "2.0.0", False),
        ("1.x", "1.4.0", True),
    ],
)
def test_version_ranges(spec: str, version: str, ok: bool) -> None:
    assert VersionRange.parse(spec).matches(Version.parse(version)) is ok


# --- long waits (docs/waits.md) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            {"http": {"url": "http://x", "timeout": "1h"}},
            "nodes[0].http.timeout: only with callback",
        ),
        (
            {"http": {"url": "http://x", "body": "b", "callback": True}},
            "nodes[0].http.body: not with callback",
        ),
        (
            {"http": {"url": "http://x", "callback": {"protocol": "soap"}}},
            "nodes[0].http.callback.protocol: expected 'weir' or 'fsl'",
        ),
        ({"http": {"url": "http://x", "callback": True, "timeout": "0s"}}, "greater than 0"),
        ({"wait": {"signal": "a b"}}, "nodes[0].wait.signal"),
        ({"wait": {}}, "nodes[0].wait.signal: required"),
        ({"wait": {"signal": "go", "after": "1s"}}, "nodes[0].wait.after"),
        ({"wait": {"signal": "go"}, "noop": {}}, "has 2 executors"),
    ],
)
def test_bad_waits_are_refused_with_their_path(node: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)):
        loads(json.dumps({"name": "w", "version": "1.0.0", "nodes": [{"id": "a", **node}]}))


def test_a_callback_request_defaults_to_post_and_its_ack_states_to_the_keys_of_next() -> None:
    d = loads(
        json.dumps(
            {
                "name": "w",
                "version": "1.0.0",
                "nodes": [
                    {
                        "id": "a",
                        "http": {"url": "http://x", "callback": {"protocol": "fsl"}},
                        "next": {"SUCCESS": "end", "FAIL": "a"},
                    },
                    {"id": "b", "wait": {"signal": "approve", "timeout": "72h"}},
                ],
            }
        )
    )
    a, b = d.nodes
    assert isinstance(a.executor, HttpTask) and a.executor.method == "POST"
    assert a.executor.callback == Callback("fsl", ("SUCCESS", "FAIL"))
    assert b.executor == WaitTask("approve", 259200.0)
