"""The timeline from an execution's events, with a fake clock (plain numbers), and its SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from orchestrator.monitor import MonitorEvent, severity_of
from orchestrator.ui.timeline import (
    Timeline,
    TimelineBar,
    TimelineRow,
    build_timeline,
    render_timeline,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_700_000_000.0


def events(*specs: tuple[Any, ...]) -> list[MonitorEvent]:
    """``(type, seconds after T0, node, visit, attempt[, data])`` each, numbered in order."""
    out = []
    for sequence, (kind, at, node, visit, attempt, *data) in enumerate(specs, 1):
        out.append(
            MonitorEvent(
                sequence,
                kind,
                T0 + at,
                severity_of(kind),
                node=node,
                visit=visit,
                attempt=attempt,
                data=data[0] if data else None,
            )
        )
    return out


def bars(timeline: Timeline) -> dict[str, list[tuple[Any, ...]]]:
    """Each row's bars as (visit, attempt, start, end, status, detail), times after T0."""
    return {
        row.node: [
            (b.visit, b.attempt, round(b.start - T0, 6), round(b.end - T0, 6), b.status, b.detail)
            for b in row.bars
        ]
        for row in timeline.rows
    }


def test_a_retried_node_has_a_bar_per_attempt() -> None:
    timeline = build_timeline(
        events(
            ("execution.started", 0, None, 0, 0),
            ("node.started", 0.5, "fetch", 1, 1),
            ("node.retrying", 1.5, "fetch", 1, 1, {"error": "503", "next_attempt": 2}),
            ("node.started", 3, "fetch", 1, 2),
            ("node.completed", 4, "fetch", 1, 2, {"outcome": "SUCCESS"}),
            ("execution.completed", 4.2, None, 0, 0),
        ),
        now=T0 + 99,
    )
    assert bars(timeline) == {
        "fetch": [(1, 1, 0.5, 1.5, "failed", "retried"), (1, 2, 3, 4, "completed", None)]
    }
    assert (timeline.start, timeline.end) == (T0, T0 + 4.2)


def test_a_loop_has_a_bar_per_visit() -> None:
    timeline = build_timeline(
        events(
            ("node.started", 0, "check", 1, 1),
            ("node.completed", 1, "check", 1, 1, {"outcome": "RETRY"}),
            ("node.started", 1, "wait", 1, 1),
            ("node.completed", 3, "wait", 1, 1),
            ("node.started", 3, "check", 2, 1),
            ("node.failed", 3.5, "check", 2, 1, {"error": "boom"}),
        ),
        now=T0 + 10,
    )
    assert bars(timeline) == {
        "check": [(1, 1, 0, 1, "completed", None), (2, 1, 3, 3.5, "failed", None)],
        "wait": [(1, 1, 1, 3, "completed", None)],
    }


def test_a_running_run_ends_at_now() -> None:
    timeline = build_timeline(
        events(("node.started", 1, "a", 1, 1), ("node.started", 2, "b", 1, 1)), now=T0 + 7
    )
    assert bars(timeline) == {
        "a": [(1, 1, 1, 7, "running", None)],
        "b": [(1, 1, 2, 7, "running", None)],
    }
    assert timeline.end == T0 + 7


def test_rows_in_first_start_order() -> None:
    timeline = build_timeline(
        events(
            ("node.started", 5, "late", 1, 1),
            ("node.started", 1, "early", 1, 1),
            ("node.completed", 6, "late", 1, 1),
            ("node.completed", 2, "early", 1, 1),
        ),
        now=T0 + 10,
    )
    assert [row.node for row in timeline.rows] == ["early", "late"]


def test_ends_without_a_start_and_after_an_end() -> None:
    timeline = build_timeline(
        events(
            ("node.started", 0, "a", 1, 1),
            ("node.retrying", 1, "a", 1, 1),
            ("node.cancelled", 2, "a", 1, 1),  # cancelled while waiting for its retry
            ("node.skipped", 2, "b", 0, 1, {"reason": "execution cancelled"}),
            ("node.reused", 0, "c", 1, 1, {"reused_from": "exec-1", "status": "completed"}),
        ),
        now=T0 + 5,
    )
    assert bars(timeline) == {
        "c": [(1, 1, 0, 0, "completed", "reused from exec-1")],
        "a": [(1, 1, 0, 1, "failed", "retried")],
        "b": [(0, 1, 2, 2, "skipped", None)],
    }


def test_items_of_a_mapped_node_are_summarised_in_its_bar() -> None:
    timeline = build_timeline(
        events(
            ("node.started", 0, "m", 1, 1),
            ("node.mapped", 0.1, "m", 1, 1, {"items": 3}),
            *(("item.started", 0.2, "m", 1, 1, {"item": i}) for i in range(3)),
            ("item.retrying", 0.5, "m", 1, 1, {"item": 1}),
            ("item.started", 0.7, "m", 1, 2, {"item": 1}),
            ("item.completed", 0.8, "m", 1, 1, {"item": 0}),
            ("item.failed", 0.9, "m", 1, 2, {"item": 1}),
            ("item.completed", 1.0, "m", 1, 1, {"item": 2}),
            ("node.completed", 1.1, "m", 1, 1),
        ),
        now=T0 + 5,
    )
    assert bars(timeline) == {
        "m": [(1, 1, 0, 1.1, "completed", "3 items: 2 completed, 1 failed; 1 retry")]
    }


def test_no_runs() -> None:
    assert build_timeline([], now=T0) == Timeline(T0, T0, ())
    started = events(
        ("execution.started", 1, None, 0, 0),
        ("node.mapped", 2, "m", 1, 1, {"items": 0}),
        ("engine.joined", 2, "m", 0, 0),
    )
    assert build_timeline(started, now=T0 + 5) == Timeline(T0 + 1, T0 + 5, ())
    root = ET.fromstring(str(render_timeline(build_timeline(started, now=T0 + 5))))
    assert root.find(f".//{SVG}rect") is None


def parse_timeline(timeline: Timeline, **kwargs: Any) -> ET.Element:
    return ET.fromstring(str(render_timeline(timeline, **kwargs)))


def test_bars_carry_their_run_and_a_tooltip() -> None:
    timeline = build_timeline(
        events(
            ("node.started", 0, "fetch", 1, 1),
            ("node.retrying", 1.5, "fetch", 1, 1),
            ("node.started", 3, "fetch", 1, 2),
            ("node.started", 3.5, "other", 1, 1),
        ),
        now=T0 + 10,
    )
    root = parse_timeline(timeline)
    rects = root.findall(f".//{SVG}rect[@data-node]")
    assert [
        (
            r.attrib["data-node"],
            r.attrib["data-visit"],
            r.attrib["data-attempt"],
            r.attrib["data-status"],
        )
        for r in rects
    ] == [
        ("fetch", "1", "1", "failed"),
        ("fetch", "1", "2", "running"),
        ("other", "1", "1", "running"),
    ]
    titles = [r.findtext(f"{SVG}title") for r in rects]
    assert titles[0] == "fetch: visit 1, attempt 1, failed, 1.50 s (retried)"
    assert titles[1] == "fetch: visit 1, attempt 2, running, 7 s so far"
    xs = [float(r.attrib["x"]) for r in rects]
    widths = [float(r.attrib["width"]) for r in rects]
    assert xs[0] < xs[1] < xs[2]
    assert xs[1] + widths[1] == pytest.approx(900 - 16)  # running: to now, the right end
    labels = [t.text for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "row-label"]
    assert labels == ["fetch", "other"]


@pytest.mark.parametrize(
    ("seconds", "ticks"),
    [
        (10, ["+0s", "+1s", "+2s", "+5s", "+10s"]),
        (1.5, ["+0s", "+0.2s", "+1.4s"]),
        (150, ["+0s", "+15s", "+1m", "+1m30s", "+2m30s"]),
        (5400, ["+0s", "+10m", "+1h", "+1h30m"]),
    ],
)
def test_axis_ticks_are_relative_times(seconds: float, ticks: list[str]) -> None:
    timeline = build_timeline(
        events(("node.started", 0, "a", 1, 1), ("node.completed", seconds, "a", 1, 1)),
        now=T0 + seconds,
    )
    shown = [
        t.text
        for t in parse_timeline(timeline).iter(f"{SVG}text")
        if t.attrib.get("class") == "tick-label"
    ]
    assert set(ticks) <= set(shown), shown
    assert len(shown) <= 14


def test_hostile_node_ids_are_escaped() -> None:
    evil = '<script>"&'
    timeline = build_timeline(events(("node.started", 0, evil, 1, 1)), now=T0 + 1)
    markup = render_timeline(timeline)
    assert "<script>" not in markup
    root = ET.fromstring(str(markup))
    (rect,) = root.findall(f".//{SVG}rect[@data-node]")
    assert rect.attrib["data-node"] == evil
    assert evil in "".join(root.itertext())


def test_rows_past_the_limit_are_cut_with_a_note() -> None:
    specs = [("node.started", i / 100, f"n{i}", 1, 1) for i in range(503)]
    timeline = build_timeline(events(*specs), now=T0 + 6)
    root = parse_timeline(timeline)
    assert len(root.findall(f".//{SVG}g[@class='row']")) == 500
    note = [t.text for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "more"]
    assert note == ["… 3 more nodes"]
    small = parse_timeline(timeline, max_rows=10)
    assert len(small.findall(f".//{SVG}g[@class='row']")) == 10


def test_zero_length_bars_stay_visible() -> None:
    bar = TimelineBar(1, 1, T0 + 50, T0 + 50, "skipped")
    timeline = Timeline(T0, T0 + 100, (TimelineRow("s", (bar,)),))
    (rect,) = parse_timeline(timeline).findall(f".//{SVG}rect[@data-node]")
    assert float(rect.attrib["width"]) >= 2
