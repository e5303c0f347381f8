"""The layout of a definition's graph: its invariants over several shapes, then each rule."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from engine.definition.builder import Workflow
from engine.definition.model import Definition, Node, NoopTask
from engine.templates import Const
from orchestrator.ui.graph import Graph, build_graph


def wf(*nodes: Mapping[str, Any]) -> Definition:
    """A definition of noop nodes, each ``{"id": ..., **builder keywords}``."""
    w = Workflow("g", "1.0.0")
    for spec in nodes:
        kwargs = {k: v for k, v in spec.items() if k != "id"}
        if not ({"lua", "http", "python", "workflow", "task", "wait", "sleep"} & set(kwargs)):
            kwargs["noop"] = True
        w.node(spec["id"], **kwargs)
    return w.build()


def fan(width: int, name: str = "n") -> Definition:
    members = [{"id": f"{name}{i}", "depends_on": "start"} for i in range(width)]
    finish = {"id": "finish", "depends_on": [f"{name}{i}" for i in range(width)]}
    return wf({"id": "start"}, *members, finish)


def raw(ids: Sequence[str], deps: Mapping[str, Sequence[str]]) -> Definition:
    """A definition made without the parser, so node ids may be anything."""
    nodes = tuple(
        Node(id=i, executor=NoopTask(), args=Const({}), depends_on=tuple(deps.get(i, ())))
        for i in ids
    )
    return Definition("raw", "1.0.0", nodes)


def random_dag(n: int, edges: int, seed: int) -> Definition:
    rnd = random.Random(seed)
    deps: dict[str, set[str]] = {f"n{i}": set() for i in range(n)}
    while sum(map(len, deps.values())) < edges:
        t = rnd.randrange(1, n)
        deps[f"n{t}"].add(f"n{rnd.randrange(max(0, t - 8), t)}")
    return raw(list(deps), {k: sorted(v) for k, v in deps.items()})


DIAMOND = wf(
    {"id": "a"},
    {"id": "b", "depends_on": "a"},
    {"id": "c", "depends_on": "a"},
    {"id": "d", "depends_on": ["b", "c"]},
)

STATE_MACHINE = wf(
    {"id": "begin", "next": {"SUCCESS": "check"}},
    {"id": "check", "lua": "return 1", "next": {"RETRY": "wait", "OK": "done", "FAIL": "check"}},
    {"id": "wait", "sleep": "1s", "next": {"SUCCESS": "check"}},
    {"id": "done"},
)

SHAPES: dict[str, Callable[[], Graph]] = {
    "diamond": lambda: build_graph(DIAMOND),
    "state machine": lambda: build_graph(STATE_MACHINE),
    "collapsed fan-out": lambda: build_graph(fan(30)),
    "expanded fan-out": lambda: build_graph(fan(30), expand_all=True),
    "long edges": lambda: build_graph(
        wf(
            {"id": "a"},
            {"id": "b", "depends_on": "a"},
            {"id": "c", "depends_on": "b"},
            {"id": "d", "depends_on": ["c", "a"]},
            {"id": "late", "depends_on": "d"},
            {"id": "s2"},
            {"id": "e", "depends_on": ["late", "s2", "a"]},
        )
    ),
    "random DAG": lambda: build_graph(random_dag(80, 160, seed=7)),
}

Box = tuple[float, float, float, float]


def boxes(graph: Graph) -> dict[str, Box]:
    out = {n.id: (n.x, n.y, n.width, n.height) for n in graph.nodes}
    out.update((g.id, (g.x, g.y, g.width, g.height)) for g in graph.groups if g.collapsed)
    return out


def overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def inside(point: tuple[float, float], box: Box) -> bool:
    x, y = point
    return box[0] < x < box[0] + box[2] and box[1] < y < box[1] + box[3]


@pytest.mark.parametrize("shape", SHAPES)
def test_edges_go_right_except_loops(shape: str) -> None:
    graph = SHAPES[shape]()
    at = boxes(graph)
    for edge in graph.edges:
        sx, _, sw, _ = at[edge.source]
        tx, _, _, _ = at[edge.target]
        if edge.kind == "loop":
            assert tx <= sx, edge
        else:
            assert sx + sw < tx, edge


@pytest.mark.parametrize("shape", SHAPES)
def test_no_two_boxes_overlap_and_all_fit(shape: str) -> None:
    graph = SHAPES[shape]()
    items = list(boxes(graph).items())
    for i, (a, box) in enumerate(items):
        assert box[0] >= 0 and box[0] + box[2] <= graph.width, a
        assert box[1] >= 0 and box[1] + box[3] <= graph.height, a
        for b, other in items[i + 1 :]:
            assert not overlap(box, other), (a, b)


@pytest.mark.parametrize("shape", SHAPES)
def test_edges_run_from_right_side_to_left_side_around_boxes(shape: str) -> None:
    graph = SHAPES[shape]()
    at = boxes(graph)
    for edge in graph.edges:
        sx, sy, sw, sh = at[edge.source]
        tx, ty, _, th = at[edge.target]
        (x0, y0), (x1, y1) = edge.points[0], edge.points[-1]
        assert x0 == sx + sw and sy <= y0 <= sy + sh, edge
        assert x1 == tx and ty <= y1 <= ty + th, edge
        middle = edge.points[1:-1]
        stretches = [((a[0] + b[0]) / 2, (a[1] + b[1]) / 2) for a, b in itertools.pairwise(middle)]
        for point in [*middle, *stretches]:
            for name, box in at.items():
                assert not inside(point, box), (edge, name)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_node_is_drawn_once_or_stood_for_by_its_group(shape: str) -> None:
    graph = SHAPES[shape]()
    drawn = [n.id for n in graph.nodes]
    members = [m for g in graph.groups if g.collapsed for m in g.members]
    assert len(set(drawn)) == len(drawn)
    assert not set(drawn) & set(members)
    assert dict(graph.member_group) == {
        m: g.id for g in graph.groups if g.collapsed for m in g.members
    }


def test_diamond() -> None:
    graph = SHAPES["diamond"]()
    at = {n.id: n for n in graph.nodes}
    assert at["a"].x < at["b"].x == at["c"].x < at["d"].x
    assert at["b"].y < at["c"].y  # definition order breaks the tie
    assert at["a"].y + at["a"].height / 2 == pytest.approx(
        (at["b"].y + at["c"].y + at["c"].height) / 2
    )  # centred in its column
    assert {(e.source, e.target, e.kind) for e in graph.edges} == {
        ("a", "b", "depends"),
        ("a", "c", "depends"),
        ("b", "d", "depends"),
        ("c", "d", "depends"),
    }
    assert all(len(e.points) == 2 for e in graph.edges)
    assert not graph.groups


def test_state_machine_loops_are_back_edges_with_their_outcomes() -> None:
    graph = SHAPES["state machine"]()
    edges = {(e.source, e.target): e for e in graph.edges}
    assert {k: (e.kind, e.label) for k, e in edges.items()} == {
        ("begin", "check"): ("next", "SUCCESS"),
        ("check", "wait"): ("next", "RETRY"),
        ("check", "done"): ("next", "OK"),
        ("check", "check"): ("loop", "FAIL"),
        ("wait", "check"): ("loop", "SUCCESS"),
    }
    back = edges[("wait", "check")].points
    bottom = max(n.y + n.height for n in graph.nodes)
    assert max(y for _, y in back) > bottom  # routed below every box
    itself = edges[("check", "check")].points
    check = next(n for n in graph.nodes if n.id == "check")
    assert check.y + check.height < max(y for _, y in itself) < graph.height


def test_labels_of_edges_and_duplicates_merged() -> None:
    d = wf(
        {
            "id": "a",
            "lua": "return 1",
            "next": [
                {"to": "b", "when": "true"},
                {"to": "c", "outcome": "X"},
                {"to": "d"},
            ],
        },
        {"id": "b", "next": {"ONE": "e", "TWO": "e"}},
        {"id": "c"},
        {"id": "d"},
        {"id": "e", "depends_on": "b"},
    )
    edges = {(e.source, e.target, e.kind): e.label for e in build_graph(d).edges}
    assert edges == {
        ("a", "b", "next"): "when",
        ("a", "c", "next"): "X",
        ("a", "d", "next"): None,
        ("b", "e", "next"): "ONE, TWO",
        ("b", "e", "depends"): None,
    }


def test_edges_across_layers_get_a_slot_in_each_layer_they_cross() -> None:
    graph = SHAPES["long edges"]()
    at = {n.id: n for n in graph.nodes}
    edges = {(e.source, e.target): e for e in graph.edges}
    assert len(edges[("a", "d")].points) == 2 + 2 * 2  # through the columns of b and c
    assert len(edges[("a", "e")].points) == 2 + 2 * 4
    # a second source sits just before the node it feeds, not in the first column
    assert at["s2"].x == at["late"].x
    assert len(edges[("s2", "e")].points) == 2


def test_sweeps_untangle_crossed_edges() -> None:
    graph = build_graph(
        wf(
            {"id": "a1"},
            {"id": "a2"},
            {"id": "b1", "depends_on": "a2"},
            {"id": "b2", "depends_on": "a1"},
        )
    )
    at = {n.id: n for n in graph.nodes}
    assert at["a1"].y < at["a2"].y
    assert at["b2"].y < at["b1"].y


def test_a_wide_fan_out_collapses_into_one_box_with_merged_edges() -> None:
    graph = SHAPES["collapsed fan-out"]()
    assert [n.id for n in graph.nodes] == ["start", "finish"]
    (group,) = graph.groups
    assert group.id == "group-n0" and group.collapsed
    assert group.members == tuple(f"n{i}" for i in range(30))
    assert [(e.source, e.target, e.kind) for e in graph.edges] == [
        ("start", "group-n0", "depends"),
        ("group-n0", "finish", "depends"),
    ]
    assert group.width * group.height > graph.nodes[0].width * graph.nodes[0].height
    assert graph.member_group["n17"] == "group-n0"


def test_a_fan_out_at_the_threshold_stays_expanded_and_unlisted() -> None:
    graph = build_graph(fan(25))
    assert len(graph.nodes) == 27 and not graph.groups and not graph.member_group
    assert build_graph(fan(25), collapse_over=24).groups[0].collapsed


@pytest.mark.parametrize("how", [{"expand": frozenset({"group-n0"})}, {"expand_all": True}])
def test_an_expanded_group_is_listed_with_the_bounding_box_of_its_members(
    how: dict[str, Any],
) -> None:
    graph = build_graph(fan(30), **how)
    assert len(graph.nodes) == 32 and not graph.member_group
    (group,) = graph.groups
    assert group.id == "group-n0" and not group.collapsed
    box = (group.x, group.y, group.width, group.height)
    for node in graph.nodes:
        inner = (node.x, node.y, node.width, node.height)
        if node.id in group.members:
            assert node.group == "group-n0"
            assert box[0] < node.x and node.x + node.width < box[0] + box[2]
            assert box[1] < node.y and node.y + node.height < box[1] + box[3]
        else:
            assert node.group is None and not overlap(box, inner)
    assert len(graph.edges) == 60


def test_expanded_members_stay_together_beside_other_nodes() -> None:
    d = wf(
        {"id": "start"},
        {"id": "m0", "depends_on": "start"},
        {"id": "solo", "depends_on": "start"},  # ties with the members, defined among them
        *({"id": f"m{i}", "depends_on": "start"} for i in range(1, 4)),
        {"id": "other"},
        {"id": "after", "depends_on": ["other", "solo"]},
    )
    graph = build_graph(d, collapse_over=3, expand_all=True)
    (group,) = graph.groups
    box = (group.x, group.y, group.width, group.height)
    for node in graph.nodes:
        if node.id not in group.members:
            assert not overlap(box, (node.x, node.y, node.width, node.height)), node.id


def test_group_ids_do_not_take_a_node_id() -> None:
    d = fan(30)
    taken = Definition(
        d.name, d.version, (*d.nodes, Node(id="group-n0", executor=NoopTask(), args=Const({})))
    )
    assert [g.id for g in build_graph(taken).groups] == ["group-n0-2"]


@pytest.mark.parametrize(
    ("executor", "kind"),
    [
        ({"lua": "return 1"}, "lua"),
        ({"http": {"url": "http://x"}}, "http"),
        ({"python": "tests.support.tasks:add"}, "python"),
        ({"workflow": {"name": "child", "version": "1.0.0"}}, "subworkflow"),
        ({"task": "queue-a"}, "queue"),
        ({"wait": {"signal": "go"}}, "wait"),
        ({"noop": True}, "noop"),
        ({"sleep": "1s"}, "sleep"),
    ],
)
def test_node_kind_is_the_executor_short_name(executor: dict[str, Any], kind: str) -> None:
    (node,) = build_graph(Workflow("k", "1.0.0").node("x", **executor).build()).nodes
    assert node.kind == kind and node.label == "x"


def test_same_definition_same_layout_and_empty_definition() -> None:
    d = random_dag(40, 70, seed=3)
    assert build_graph(d) == build_graph(d)
    empty = build_graph(Definition("e", "1.0.0", ()))
    assert empty.nodes == () and empty.edges == () and empty.width > 0 and empty.height > 0
