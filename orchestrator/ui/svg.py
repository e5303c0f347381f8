"""A laid-out ``Graph`` drawn as inline SVG markup, with what is known of an execution's nodes.

``render_graph(graph, views)`` returns one ``markupsafe.Markup`` string (built with a list and a
join: a 1,000-node graph renders in a few milliseconds) for a template to place as is. Every
piece of user text (node ids, group labels, edge labels, links) goes through
``markupsafe.escape``. Colours are the stylesheet's business: the markup carries classes and
``data-`` attributes, and never says a status by colour alone (a glyph and a word)::

    <g class="node" data-node=ID data-status=STATUS data-kind=KIND tabindex=0 role=button ...>
    <g class="group collapsed" data-group=ID data-status=AGGREGATE data-members=N ...>
    <rect class="group-box" data-group=ID> + <g class="group-collapse" data-collapse=ID>
    <path class="edge edge-KIND [taken] [failed-path]" data-from=ID data-to=ID d=...>

Decisions:

- A definition's graph (``views`` None) gives every node ``data-status="pending"``, the status
  the nodes of a new execution start in, so one stylesheet serves both pages; its nodes show
  their executor kind where an execution's show their status, and carry no badges. A node
  missing from ``views`` is pending too.
- An edge is ``taken`` once its source ran to an end that routes (completed, or failed: a
  ``FAIL`` transition and a ``one_failed`` dependent follow a failed node) and its target ran
  (neither pending nor skipped); ``failed-path`` when its target failed. For a collapsed group
  the group's aggregate status stands for its members. The page script (``static/app.js``,
  ``applyStatus``) applies the same rule to live updates.
- What changes while an execution runs is where the page script rewrites it: ``data-status``,
  the ``.node-status`` text, the ``.badges`` text (always present on an execution's nodes,
  empty when there is nothing to show), the node's ``aria-label`` (``id: status, N attempts,
  M visits``, the script's format), a group's ``data-status`` and ``.group-counts`` text (from
  ``group_summary``). Everything else is static: a node's ``<title>`` is its id and kind, a
  group's accessible name its label, with its counts as its description.
- A group's aggregate status: failed if any member failed, else running if any runs, else
  pending if any is pending, else cancelled if any was cancelled, else completed (all completed
  or skipped).
- Arrowheads are one marker filled with ``context-stroke``: they take the colour the stylesheet
  gives the edge, also after the script toggles ``taken``/``failed-path`` (a browser without
  ``context-stroke`` draws them black).
- The root is ``role="group"``, not ``role="img"``: an image's children are presentational to
  assistive technology, which would hide the nodes' buttons.
- ``link(node_id)``, when given, sets ``data-href`` on each node's ``<g>`` (the page's script
  opens it on click or Enter; no inline handlers, no ``<a>`` around a ``role=button``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from markupsafe import Markup, escape

from orchestrator.ui.graph import Graph, GraphEdge, GraphGroup, GraphNode, Point

GLYPHS: Mapping[str, str] = {
    "pending": "○",
    "running": "⟳",
    "completed": "✓",
    "failed": "✗",
    "skipped": "\N{EN DASH}",
    "cancelled": "⊘",
}
"""The glyph drawn before each status word (``svg`` and ``timeline``)."""

STATUS_ORDER = ("completed", "running", "failed", "cancelled", "skipped", "pending")
"""The order of a collapsed group's counts."""

CHAR_WIDTH = 7.2
"""Roughly the width of one character of a node's id, in user units, to decide truncation."""
TEXT_INSET = 10.0


@dataclass(frozen=True, slots=True)
class NodeView:
    """What the page knows about a node in an execution (``NodeSummary``'s part of it)."""

    status: str
    """pending|running|completed|failed|skipped|cancelled (``NodeStatus`` values)."""
    attempts: int = 0
    visits: int = 0
    outcome: str | None = None


_PENDING = NodeView("pending")
_ROUTED = frozenset({"completed", "failed"})
_NOT_REACHED = frozenset({"pending", "skipped"})

_DEFS = (
    '<defs><marker id="arrow" class="arrow" viewBox="0 0 10 10" refX="10" refY="5"'
    ' markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
    '<path d="M0,0L10,5L0,10z" fill="context-stroke"/></marker></defs>'
)


def render_graph(
    graph: Graph,
    views: Mapping[str, NodeView] | None = None,
    *,
    link: Callable[[str], str] | None = None,
) -> Markup:
    """The SVG of ``graph``; ``views`` by node id (None: a definition's graph, no execution)."""
    status = _statuses(graph, views)
    out = [
        f'<svg id="graph-svg" class="graph" xmlns="http://www.w3.org/2000/svg"'
        f' viewBox="0 0 {coord(graph.width)} {coord(graph.height)}"'
        f' {_size(graph.width, graph.height)} role="group"'
        f' aria-label="Workflow graph: {len(graph.nodes)} nodes, {len(graph.edges)} edges">',
        _DEFS,
        '<g class="groups">',
    ]
    out.extend(_expanded(group) for group in graph.groups if not group.collapsed)
    out.append('</g><g class="edges">')
    executed = views is not None
    for edge in graph.edges:
        _edge(out, edge, status if executed else None)
    out.append('</g><g class="nodes">')
    for node in graph.nodes:
        out.append(_node(node, _view(views, node.id) if views is not None else None, link))
    for group in graph.groups:
        if group.collapsed:
            out.append(_collapsed(group, views))
    out.append("</g></svg>")
    return Markup("".join(out))


def group_summary(members: Iterable[str], views: Mapping[str, NodeView]) -> tuple[str, str]:
    """A collapsed group's aggregate status and its counts by status, as its box shows them
    (``12 completed · 3 running · 1 failed``); the page's live updates send the same pair."""
    tally = Counter(_view(views, m).status for m in members)
    counts = " · ".join(f"{tally[s]} {s}" for s in STATUS_ORDER if tally[s])
    others = " · ".join(f"{n} {s}" for s, n in tally.items() if s not in STATUS_ORDER)
    return aggregate(tally), " · ".join(filter(None, (counts, others)))


def aggregate(statuses: Iterable[str]) -> str:
    """The status a collapsed group shows for its members' statuses (module docstring)."""
    seen = set(statuses)
    for status in ("failed", "running", "pending", "cancelled"):
        if status in seen:
            return status
    return "completed"


def _statuses(graph: Graph, views: Mapping[str, NodeView] | None) -> dict[str, str]:
    """The status each edge end shows: a node's own, a collapsed group's aggregate."""
    if views is None:
        out = {node.id: "pending" for node in graph.nodes}
        out.update((group.id, "pending") for group in graph.groups)
        return out
    out = {node.id: _view(views, node.id).status for node in graph.nodes}
    for group in graph.groups:
        if group.collapsed:
            out[group.id] = group_summary(group.members, views)[0]
    return out


def _view(views: Mapping[str, NodeView], node_id: str) -> NodeView:
    return views.get(node_id) or _PENDING


# --- nodes and groups -------------------------------------------------------------------------


def _node(node: GraphNode, view: NodeView | None, link: Callable[[str], str] | None) -> str:
    nid = escape(node.id)
    status = view.status if view is not None else "pending"
    title = f"{node.id} ({node.kind})"
    if view is None:
        aria = title
        second = f'<text class="node-kind" x="{TEXT_INSET}" y="34">{escape(node.kind)}</text>'
    else:
        aria = f"{node.id}: {_describe(view)}"
        second = (
            f'<text class="node-status" x="{TEXT_INSET}" y="34">'
            f'<tspan class="glyph">{GLYPHS.get(status, "?")}</tspan> {escape(status)}</text>'
            + _badges(node, view)
        )
    href = f' data-href="{escape(link(node.id))}"' if link is not None else ""
    return (
        f'<g class="node" data-node="{nid}" data-status="{escape(status)}"'
        f' data-kind="{escape(node.kind)}" tabindex="0" role="button"'
        f' aria-label="{escape(aria)}"{href} transform="translate({_pt(node.x, node.y)})">'
        f"<title>{escape(title)}</title>"
        f'<rect class="node-box" {_size(node.width, node.height)} rx="6"/>'
        f'<text class="node-id" x="{TEXT_INSET}" y="17">'
        f"{escape(_fit(node.label, node.width))}</text>{second}</g>"
    )


def _describe(view: NodeView) -> str:
    """``completed, 2 attempts, 3 visits``: the status with what qualifies it (the outcome is
    the node panel's to show: the page's live updates do not carry it)."""
    words = [view.status]
    if view.attempts > 1:
        words.append(f"{view.attempts} attempts")
    if view.visits > 1:
        words.append(f"{view.visits} visits")
    return ", ".join(words)


def _badges(node: GraphNode, view: NodeView) -> str:
    badges = []
    if view.visits > 1:
        badges.append(
            f'<tspan class="badge badge-visits">\N{MULTIPLICATION SIGN}{view.visits}</tspan>'
        )
    if view.attempts > 1:
        badges.append(f'<tspan class="badge badge-attempts">attempt {view.attempts}</tspan>')
    return (
        f'<text class="badges" x="{coord(node.width - TEXT_INSET)}" y="34" text-anchor="end">'
        + " ".join(badges)
        + "</text>"
    )


def _collapsed(group: GraphGroup, views: Mapping[str, NodeView] | None) -> str:
    count = len(group.members)
    more = f" … {count} nodes"
    label = _fit(group.members[0], group.width, reserve=len(more)) + more
    if views is None:
        status, counts = "pending", "collapsed: expand to see them"
    else:
        status, counts = group_summary(group.members, views)
    gid = escape(group.id)
    name = escape(f"{group.members[0]} and {count - 1} more nodes, collapsed")
    return (
        f'<g class="group collapsed" data-group="{gid}" data-status="{escape(status)}"'
        f' data-members="{count}" tabindex="0" role="button" aria-expanded="false"'
        f' aria-label="{name}" aria-describedby="{gid}-counts"'
        f' transform="translate({_pt(group.x, group.y)})">'
        f"<title>{name}</title>"
        f'<rect class="group-stack" x="4" y="4" {_size(group.width, group.height)} rx="6"/>'
        f'<rect class="node-box" {_size(group.width, group.height)} rx="6"/>'
        f'<text class="group-label" x="{TEXT_INSET}" y="17">{escape(label)}</text>'
        f'<text class="group-counts" id="{gid}-counts" x="{TEXT_INSET}" y="36">'
        f"{escape(counts)}</text></g>"
    )


def _expanded(group: GraphGroup) -> str:
    gid = escape(group.id)
    right, top = group.x + group.width, group.y
    aria = escape(f"Collapse the group of {len(group.members)} nodes from {group.members[0]}")
    return (
        f'<g class="group expanded" data-group="{gid}">'
        f'<rect class="group-box" data-group="{gid}" x="{coord(group.x)}" y="{coord(group.y)}"'
        f' {_size(group.width, group.height)} rx="8"'
        f' stroke-dasharray="5 4"/>'
        f'<g class="group-collapse" data-collapse="{gid}" tabindex="0" role="button"'
        f' aria-label="{aria}" transform="translate({_pt(right, top)})">'
        f"<title>{aria}</title>"
        f'<circle r="8" fill="#fff" stroke="#9aa3b5"/>'
        f'<text text-anchor="middle" y="4">\N{MINUS SIGN}</text></g></g>'
    )


def _fit(text: str, width: float, reserve: int = 0) -> str:
    """``text`` cut with an ellipsis to what fits in ``width`` beside ``reserve`` characters
    (the full text is in the element's title)."""
    room = max(int((width - 2 * TEXT_INSET) / CHAR_WIDTH) - reserve, 2)
    return text if len(text) <= room else text[: room - 1] + "…"


# --- edges ------------------------------------------------------------------------------------


def _edge(out: list[str], edge: GraphEdge, status: Mapping[str, str] | None) -> None:
    classes = f"edge edge-{escape(edge.kind)}"
    if status is not None:
        target = status.get(edge.target, "pending")
        if status.get(edge.source) in _ROUTED and target not in _NOT_REACHED:
            classes += " taken"
        if target == "failed":
            classes += " failed-path"
    points = edge.points
    d = _orthogonal(points) if edge.kind == "loop" else _curve(points)
    out.append(
        f'<path class="{classes}" data-from="{escape(edge.source)}"'
        f' data-to="{escape(edge.target)}" d="{d}" marker-end="url(#arrow)"/>'
    )
    if edge.label is not None:
        if edge.source == edge.target:  # beside its way back up, left of the box
            (x0, y0), (_, y1) = points[3], points[4]
            x, y, anchor = x0 - 3, (y0 + y1) / 2 + 4, "end"
        elif edge.kind == "loop":  # over the middle of its run below
            (x0, y0), (x1, _) = points[2], points[3]
            x, y, anchor = (x0 + x1) / 2, y0 - 3, "middle"
        else:  # along its first stretch, where edges from one source part ways
            (x0, y0), (x1, y1) = points[0], points[1]
            x, y, anchor = x0 + 6, y0 + (y1 - y0) * 0.25 - 4, "start"
        out.append(
            f'<text class="edge-label" x="{coord(x)}" y="{coord(y)}" text-anchor="{anchor}"'
            f' data-from="{escape(edge.source)}" data-to="{escape(edge.target)}">'
            f"{escape(edge.label)}</text>"
        )


def _curve(points: tuple[Point, ...]) -> str:
    """Cubic pieces leaving and reaching every point horizontally: a smooth left-to-right
    curve through dummy slots, straight where they are level."""
    x0, y0 = points[0]
    parts = [f"M{_pt(x0, y0)}"]
    for x1, y1 in points[1:]:
        if y1 == y0:
            parts.append(f"H{coord(x1)}")
        else:
            h = (x1 - x0) / 2
            parts.append(f"C{_pt(x0 + h, y0)} {_pt(x1 - h, y1)} {_pt(x1, y1)}")
        x0, y0 = x1, y1
    return "".join(parts)


def _orthogonal(points: tuple[Point, ...], radius: float = 8.0) -> str:
    """Straight runs between the points with each corner rounded."""
    x0, y0 = points[0]
    parts = [f"M{_pt(x0, y0)}"]
    for i in range(1, len(points) - 1):
        (px, py), (cx, cy), (nx, ny) = points[i - 1], points[i], points[i + 1]
        r_in = min(radius, abs(cx - px) / 2 + abs(cy - py) / 2)
        r_out = min(radius, abs(nx - cx) / 2 + abs(ny - cy) / 2)
        ax, ay = cx - _sign(cx - px) * r_in, cy - _sign(cy - py) * r_in
        bx, by = cx + _sign(nx - cx) * r_out, cy + _sign(ny - cy) * r_out
        parts.append(f"L{_pt(ax, ay)}Q{_pt(cx, cy)} {_pt(bx, by)}")
    x1, y1 = points[-1]
    parts.append(f"L{_pt(x1, y1)}")
    return "".join(parts)


def _sign(v: float) -> float:
    return 1.0 if v > 0 else -1.0 if v < 0 else 0.0


def coord(v: float) -> str:
    """A coordinate: at most one decimal, no trailing ``.0``."""
    text = f"{v:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _pt(x: float, y: float) -> str:
    return f"{coord(x)},{coord(y)}"


def _size(width: float, height: float) -> str:
    return f'width="{coord(width)}" height="{coord(height)}"'
