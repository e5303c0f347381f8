"""Definition diffs and whether a running execution of the old version could continue."""

from __future__ import annotations

from typing import Any

import pytest

from engine.definition import from_document
from engine.definition.diff import DefinitionDiff, NodeChange, diff_definitions, format_diff
from engine.definition.model import Definition

BASE_NODES: list[dict[str, Any]] = [
    {"id": "a", "lua": "return {ok = true}"},
    {"id": "b", "depends_on": ["a"], "lua": "return {n = 1}"},
    {
        "id": "c",
        "depends_on": ["b"],
        "lua": "return {outcome = 'AGREE'}",
        "next": {"AGREE": "d", "REJECT": "c"},
        "max_visits": 10,
    },
    {"id": "d", "noop": {}},
]


def definition(
    nodes: list[dict[str, Any]] | None = None, version: str = "1.0.0", **top: Any
) -> Definition:
    document = {
        "apiVersion": "weir/v1",
        "kind": "Workflow",
        "name": "w",
        "version": version,
        "inputs": {"order_id": {"type": "string"}},
        "timeout": "10m",
        "nodes": nodes if nodes is not None else BASE_NODES,
        **top,
    }
    return from_document(document)


def with_node(node_id: str, **changes: Any) -> list[dict[str, Any]]:
    """BASE_NODES with ``node_id``'s keys replaced (a value of None drops the key)."""
    out = []
    for n in BASE_NODES:
        if n["id"] == node_id:
            n = {k: v for k, v in {**n, **changes}.items() if v is not None}
        out.append(n)
    return out


CASES: list[tuple[str, Definition, dict[str, Any], bool, list[str]]] = [
    # (case, new definition, expected diff fields, can_continue, text each reason contains)
    ("identical", definition(version="1.0.1"), {}, True, []),
    (
        "added node",
        definition([*BASE_NODES, {"id": "e", "depends_on": ["d"], "noop": {}}]),
        {"added": ("e",)},
        True,
        [],
    ),
    (
        # dropping d also drops c's edge to it: a second blocker
        "removed node",
        definition([*BASE_NODES[:2], {**BASE_NODES[2], "next": {"REJECT": "c"}}]),
        {"removed": ("d",), "changed": (NodeChange("c", ("next",)),)},
        False,
        ["node d was removed", "node c: next changed"],
    ),
    (
        "changed lua code",
        definition(with_node("b", lua="return {n = 2}")),
        {"changed": (NodeChange("b", ("lua",)),)},
        True,
        [],
    ),
    (
        "changed executor kind",
        definition(with_node("b", lua=None, noop={})),
        {"changed": (NodeChange("b", ("executor",)),)},
        True,
        [],
    ),
    (
        "changed depends_on",
        definition(with_node("c", depends_on=["a"])),
        {"changed": (NodeChange("c", ("depends_on",)),)},
        False,
        ["node c: depends_on changed ([b] -> [a])"],
    ),
    (
        "changed next",
        definition(with_node("c", next={"AGREE": "d", "REJECT": "end"})),
        {"changed": (NodeChange("c", ("next",)),)},
        False,
        ["node c: next changed"],
    ),
    (
        "changed when",
        definition(with_node("b", when="inputs.order_id ~= ''")),
        {"changed": (NodeChange("b", ("when",)),)},
        False,
        ["node b: when changed"],
    ),
    (
        "changed trigger_rule",
        definition(with_node("b", trigger_rule="all_done")),
        {"changed": (NodeChange("b", ("trigger_rule",)),)},
        False,
        ["node b: trigger_rule changed (all_success -> all_done)"],
    ),
    (
        "lower max_visits of a loop node",
        definition(with_node("c", max_visits=3)),
        {"changed": (NodeChange("c", ("max_visits",)),)},
        False,
        ["node c: max_visits lowered (10 -> 3)"],
    ),
    (
        "higher max_visits of a loop node",
        definition(with_node("c", max_visits=20)),
        {"changed": (NodeChange("c", ("max_visits",)),)},
        True,
        [],
    ),
    (
        "lower max_visits of a node never re-entered",
        definition(with_node("b", max_visits=1)),
        {"changed": (NodeChange("b", ("max_visits",)),)},
        True,
        [],
    ),
    (
        "changed args, retry and timeout",
        definition(
            with_node("b", args={"x": 1}, retry={"attempts": 3}, timeout="5s"),
        ),
        {"changed": (NodeChange("b", ("args", "retry", "timeout")),)},
        True,
        [],
    ),
    (
        "new required input",
        definition(inputs={"order_id": {"type": "string"}, "amount": {"type": "number"}}),
        {"other": ("input amount added (number, required)",)},
        False,
        ["input amount is new and required"],
    ),
    (
        "new optional input",
        definition(
            inputs={"order_id": {"type": "string"}, "amount": {"type": "number", "default": 0}}
        ),
        {"other": ("input amount added (number, default 0)",)},
        True,
        [],
    ),
    (
        "removed input",
        definition(inputs={}),
        {"other": ("input order_id removed",)},
        True,
        [],
    ),
    ("changed timeout", definition(timeout="5m"), {"other": ("timeout 10m -> 5m",)}, True, []),
    (
        "changed concurrency and description",
        definition(concurrency=4, description="now documented"),
        {"other": ("concurrency none -> 4", "description changed")},
        True,
        [],
    ),
]


@pytest.mark.parametrize(
    ("new", "fields", "can_continue", "reasons"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_diff(
    new: Definition, fields: dict[str, Any], can_continue: bool, reasons: list[str]
) -> None:
    d = diff_definitions(definition(), new)
    expected = {"added": (), "removed": (), "changed": (), "other": (), **fields}
    assert {k: getattr(d, k) for k in expected} == expected
    assert d.can_continue is can_continue
    assert len(d.reasons) == len(reasons)
    for reason, wanted in zip(d.reasons, reasons, strict=True):
        assert wanted in reason


def test_removed_leaf_node_alone_blocks() -> None:
    old = definition([*BASE_NODES, {"id": "e", "depends_on": ["d"], "noop": {}}])
    d = diff_definitions(old, definition())
    assert d.removed == ("e",)
    assert not d.can_continue
    assert d.reasons == ("node e was removed: a running execution may already have run it",)


def test_notes_explain_what_does_not_block() -> None:
    new = definition(
        [
            *with_node("b", lua="return {n = 2}"),
            {"id": "e", "depends_on": ["a"], "noop": {}},
            {"id": "f", "noop": {}},
        ]
    )
    d = diff_definitions(definition(), new)
    assert d.can_continue
    assert d.notes == (
        "node b: lua changed; runs that finished keep their outputs, later runs use the new "
        "definition",
        "node e is new: it runs once a finished, also in running executions that are past them",
        "node f is new: it starts when a running execution resumes",
    )


def test_depends_on_order_is_not_a_change() -> None:
    nodes = [*BASE_NODES, {"id": "e", "depends_on": ["a", "b"], "noop": {}}]
    swapped = [*BASE_NODES, {"id": "e", "depends_on": ["b", "a"], "noop": {}}]
    assert diff_definitions(definition(nodes), definition(swapped)).changed == ()


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (
            DefinitionDiff((), (), (), (), True, (), ()),
            ["no changes", "a running execution of 1.0.0 can continue on 1.1.0"],
        ),
        (
            DefinitionDiff(
                added=("e",),
                removed=("d",),
                changed=(NodeChange("c", ("lua", "next")),),
                other=("timeout 10m -> 5m",),
                can_continue=False,
                reasons=("node d was removed", "node c: next changed"),
                notes=("node e is new",),
            ),
            [
                "+ e",
                "- d",
                "~ c (lua, next)",
                "* timeout 10m -> 5m",
                "a running execution of 1.0.0 cannot continue on 1.1.0:",
                "  - node d was removed",
                "  - node c: next changed",
                "notes:",
                "  - node e is new",
            ],
        ),
    ],
    ids=["empty", "everything"],
)
def test_format_diff(d: DefinitionDiff, expected: list[str]) -> None:
    assert format_diff(d, "1.0.0", "1.1.0").splitlines() == expected


def test_format_diff_of_a_real_diff() -> None:
    new = definition(with_node("b", lua="return {n = 2}", depends_on=[]), timeout="5m")
    text = format_diff(diff_definitions(definition(), new), "1.0.0", "2.0.0")
    assert "~ b (lua, depends_on)" in text.splitlines()
    assert "* timeout 10m -> 5m" in text.splitlines()
    assert "a running execution of 1.0.0 cannot continue on 2.0.0:" in text
    assert "node b: depends_on changed ([a] -> [])" in text
