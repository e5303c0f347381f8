"""The graph's SVG: parsed back as XML, so attributes are checked as a browser would read them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

import pytest
from markupsafe import Markup

from engine.definition.model import Definition, Node, NoopTask, Transitions
from engine.templates import Const
from orchestrator.ui.graph import build_graph
from orchestrator.ui.svg import NodeView, aggregate, group_summary, render_graph
from tests.orchestrator.ui.test_graph import DIAMOND, STATE_MACHINE, fan

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    return ET.fromstring(str(markup))


def nodes(root: ET.Element) -> dict[str, ET.Element]:
    found = root.findall(f".//{SVG}g[@class='node']")
    by_id = {g.attrib["data-node"]: g for g in found}
    assert len(by_id) == len(found)
    return by_id


def text(element: ET.Element) -> str:
    return "".join(element.itertext())


def edges(root: ET.Element) -> dict[tuple[str, str], set[str]]:
    return {
        (p.attrib["data-from"], p.attrib["data-to"]): set(p.attrib["class"].split())
        for p in root.iter(f"{SVG}path")
        if "edge" in p.attrib.get("class", "").split()
    }


RAN: Mapping[str, NodeView] = {
    "a": NodeView("completed", attempts=1, visits=1, outcome="SUCCESS"),
    "b": NodeView("failed", attempts=3, visits=1),
    "c": NodeView("running", attempts=1, visits=1),
}


def test_every_node_carries_its_id_status_kind_and_a_label() -> None:
    root = parse(render_graph(build_graph(DIAMOND), RAN))
    assert root.attrib["id"] == "graph-svg" and root.attrib["viewBox"].startswith("0 0 ")
    assert root.find(f"{SVG}defs/{SVG}marker") is not None
    by_id = nodes(root)
    assert {k: g.attrib["data-status"] for k, g in by_id.items()} == {
        "a": "completed",
        "b": "failed",
        "c": "running",
        "d": "pending",  # not in the views: not reached yet
    }
    for node_id, g in by_id.items():
        assert g.attrib["data-kind"] == "noop"
        assert g.attrib["tabindex"] == "0" and g.attrib["role"] == "button"
        assert g.attrib["transform"].startswith("translate(")
        assert g.findtext(f"{SVG}title") == f"{node_id} (noop)"
        badges = g.find(f"{SVG}text[@class='badges']")  # there for live updates to fill
        assert badges is not None
    # the page script's format, which it rewrites on every update
    assert by_id["a"].attrib["aria-label"] == "a: completed"
    assert by_id["b"].attrib["aria-label"] == "b: failed, 3 attempts"
    assert by_id["d"].attrib["aria-label"] == "d: pending"


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        ("completed", "✓ completed"),
        ("failed", "✗ failed"),
        ("running", "⟳ running"),
        ("skipped", "\N{EN DASH} skipped"),
        ("pending", "○ pending"),
        ("cancelled", "⊘ cancelled"),
    ],
)
def test_status_is_a_glyph_and_a_word(status: str, shown: str) -> None:
    root = parse(render_graph(build_graph(DIAMOND), {"b": NodeView(status)}))
    assert shown in text(nodes(root)["b"])


def test_badges_for_visits_and_attempts_only_past_one() -> None:
    views = {
        "begin": NodeView("completed", attempts=1, visits=1),
        "check": NodeView("running", attempts=2, visits=3),
        "wait": NodeView("completed", attempts=1, visits=2),
    }
    by_id = nodes(parse(render_graph(build_graph(STATE_MACHINE), views)))
    times = "\N{MULTIPLICATION SIGN}"
    assert f"{times}3" in text(by_id["check"]) and "attempt 2" in text(by_id["check"])
    assert f"{times}2" in text(by_id["wait"]) and "attempt" not in text(by_id["wait"])
    assert times not in text(by_id["begin"]) and "attempt" not in text(by_id["begin"])


def test_a_definition_graph_is_all_pending_without_badges() -> None:
    root = parse(render_graph(build_graph(STATE_MACHINE)))
    by_id = nodes(root)
    assert {g.attrib["data-status"] for g in by_id.values()} == {"pending"}
    assert "lua" in text(by_id["check"]) and "sleep" in text(by_id["wait"])
    assert root.find(f".//{SVG}text[@class='badges']") is None
    assert all(classes.isdisjoint({"taken", "failed-path"}) for classes in edges(root).values())


def test_edges_taken_and_failed_paths() -> None:
    root = parse(render_graph(build_graph(DIAMOND), RAN))
    assert edges(root) == {
        ("a", "b"): {"edge", "edge-depends", "taken", "failed-path"},
        ("a", "c"): {"edge", "edge-depends", "taken"},
        ("b", "d"): {"edge", "edge-depends"},  # d did not run
        ("c", "d"): {"edge", "edge-depends"},
    }
    for path in root.iter(f"{SVG}path"):
        if "edge" in path.attrib.get("class", ""):
            assert path.attrib["d"].startswith("M") and path.attrib["marker-end"].startswith(
                "url(#"
            )


def test_loops_and_outcome_labels() -> None:
    views = {
        "begin": NodeView("completed"),
        "check": NodeView("completed", visits=2),
        "wait": NodeView("completed"),
    }
    root = parse(render_graph(build_graph(STATE_MACHINE), views))
    found = edges(root)
    assert "edge-loop" in found[("wait", "check")] and "taken" in found[("wait", "check")]
    assert "edge-loop" in found[("check", "check")]
    assert "edge-next" in found[("check", "done")] and "taken" not in found[("check", "done")]
    labels = {
        (t.attrib["data-from"], t.attrib["data-to"]): t.text
        for t in root.iter(f"{SVG}text")
        if t.attrib.get("class") == "edge-label"
    }
    assert labels == {
        ("begin", "check"): "SUCCESS",
        ("check", "wait"): "RETRY",
        ("check", "done"): "OK",
        ("check", "check"): "FAIL",
        ("wait", "check"): "SUCCESS",
    }


def test_hostile_ids_and_labels_are_escaped() -> None:
    evil = '<script>"&'
    d = Definition(
        "evil",
        "1.0.0",
        (
            Node(
                id=evil,
                executor=NoopTask(),
                args=Const({}),
                next=Transitions(by_outcome={"<b>&'": "x"}),
            ),
            Node(id="x", executor=NoopTask(), args=Const({})),
        ),
    )
    markup = render_graph(
        build_graph(d),
        {evil: NodeView("failed", outcome="<o>")},
        link=lambda node_id: f"/ui/n?id={node_id}&x=<1>",
    )
    assert "<script>" not in markup and "<b>" not in markup and "<o>" not in markup
    root = parse(markup)
    g = nodes(root)[evil]
    assert g.attrib["data-href"] == f"/ui/n?id={evil}&x=<1>"
    assert g.attrib["aria-label"] == f"{evil}: failed"
    assert g.findtext(f"{SVG}title") == f"{evil} (noop)"
    assert evil in text(g)
    assert edges(root) == {(evil, "x"): {"edge", "edge-next"}}
    label = next(t for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "edge-label")
    assert label.text == "<b>&'"


def test_long_ids_are_cut_with_an_ellipsis_and_kept_whole_in_the_title() -> None:
    long_id = "a_node_with_a_rather_long_identifier_indeed"
    d = Definition("l", "1.0.0", (Node(id=long_id, executor=NoopTask(), args=Const({})),))
    g = nodes(parse(render_graph(build_graph(d))))[long_id]
    shown = next(t for t in g.iter(f"{SVG}text") if t.attrib.get("class") == "node-id").text
    assert shown is not None and shown.endswith("…") and long_id.startswith(shown[:-1])
    title = g.find(f"{SVG}title")
    assert title is not None and title.text is not None and long_id in title.text


def test_link_gives_every_node_a_data_href() -> None:
    by_id = nodes(parse(render_graph(build_graph(DIAMOND), link=lambda n: f"/ui/nodes/{n}")))
    assert {k: g.attrib["data-href"] for k, g in by_id.items()} == {
        k: f"/ui/nodes/{k}" for k in "abcd"
    }
    plain = nodes(parse(render_graph(build_graph(DIAMOND))))
    assert all("data-href" not in g.attrib for g in plain.values())


def test_a_collapsed_group_shows_its_counts_and_aggregate_status() -> None:
    views = {"start": NodeView("completed")}
    views |= {f"n{i}": NodeView("completed") for i in range(24)}
    views |= {f"n{i}": NodeView("failed") for i in range(24, 28)}
    views |= {f"n{i}": NodeView("running") for i in range(28, 30)}
    root = parse(render_graph(build_graph(fan(30)), views))
    (group,) = root.findall(f".//{SVG}g[@data-group]")
    assert group.attrib["class"] == "group collapsed"
    assert group.attrib["data-group"] == "group-n0"
    assert group.attrib["data-status"] == "failed"
    assert group.attrib["data-members"] == "30"
    assert group.attrib["aria-expanded"] == "false" and group.attrib["role"] == "button"
    assert group.attrib["aria-label"] == "n0 and 29 more nodes, collapsed"
    counts = group.find(f"{SVG}text[@class='group-counts']")
    assert counts is not None and counts.attrib["id"] == group.attrib["aria-describedby"]
    assert counts.text == "24 completed · 2 running · 4 failed"
    assert "n0 … 30 nodes" in text(group)
    assert edges(root) == {
        ("start", "group-n0"): {"edge", "edge-depends", "taken", "failed-path"},
        ("group-n0", "finish"): {"edge", "edge-depends"},
    }
    assert set(nodes(root)) == {"start", "finish"}


def test_an_expanded_group_draws_a_box_and_a_collapse_control() -> None:
    root = parse(render_graph(build_graph(fan(30), expand=frozenset({"group-n0"}))))
    box = root.find(f".//{SVG}rect[@class='group-box']")
    assert box is not None and box.attrib["data-group"] == "group-n0"
    control = root.find(f".//{SVG}g[@data-collapse]")
    assert control is not None and control.attrib["data-collapse"] == "group-n0"
    assert control.attrib["role"] == "button" and control.attrib["tabindex"] == "0"
    assert len(nodes(root)) == 32


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["completed", "failed", "running"], "failed"),
        (["completed", "running", "pending"], "running"),
        (["completed", "pending"], "pending"),
        (["completed", "skipped"], "completed"),
        (["completed", "cancelled"], "cancelled"),
        (["completed"], "completed"),
    ],
)
def test_aggregate_status(statuses: list[str], expected: str) -> None:
    assert aggregate(statuses) == expected


def test_group_summary_is_what_the_box_shows_and_live_updates_send() -> None:
    views = {"a": NodeView("completed"), "b": NodeView("running"), "c": NodeView("skipped")}
    assert group_summary(["a", "b", "c", "d"], views) == (
        "running",
        "1 completed · 1 running · 1 skipped · 1 pending",
    )
    assert group_summary(["a", "c"], views) == ("completed", "1 completed · 1 skipped")


def test_a_failed_source_routes_too() -> None:
    # a FAIL transition or a one_failed dependent ran after it; the page script agrees
    views = {"a": NodeView("failed"), "b": NodeView("running"), "c": NodeView("skipped")}
    root = parse(render_graph(build_graph(DIAMOND), views))
    assert "taken" in edges(root)[("a", "b")]
    assert "taken" not in edges(root)[("a", "c")]
    assert "taken" not in edges(root)[("b", "d")]  # running: not yet


def test_arrowheads_follow_the_edge_colour() -> None:
    root = parse(render_graph(build_graph(STATE_MACHINE), {"begin": NodeView("completed")}))
    (marker,) = root.iter(f"{SVG}marker")
    path = marker.find(f"{SVG}path")
    assert path is not None and path.attrib["fill"] == "context-stroke"
    markers = {p.attrib["marker-end"] for p in root.iter(f"{SVG}path") if "data-from" in p.attrib}
    assert markers == {f"url(#{marker.attrib['id']})"}
