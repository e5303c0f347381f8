"""The layout of a workflow's graph, computed on the server: pure, no web framework.

``build_graph(definition)`` turns a ``Definition`` into boxes and routed edges, left to right,
for ``svg.render_graph`` to draw:

1. **Edges.** ``depends_on`` gives ``depends`` edges (dependency -> dependent); ``next`` gives
   ``next`` edges labelled by their outcome (the ``by_outcome`` key, the edge's ``outcome``, or
   ``when`` for an edge with only a Lua condition; a default edge has no label). Edges with the
   same (source, target, kind) become one, their labels joined. Targets that are not nodes
   (``end``) draw nothing.
2. **Loops.** A depth-first search over all edges, in definition order, marks the edges that
   close a cycle (a ``next`` back to an earlier node of a state machine) as ``loop``. Loops take
   no part in layering; they are routed below the drawing (a self-loop just below its node).
3. **Layers.** A node's layer is its longest path from a source over the other edges, so every
   non-loop edge goes from a lower layer to a higher one; layers are columns. Then, from the
   sinks back, a node with at least as many successors as predecessors (every source) moves up
   to the layer before its nearest successor: a second start node feeding a node deep in the
   graph sits next to it instead of dragging an edge across every layer.
4. **Fan-out groups.** Nodes of one layer with the same predecessors and the same successors
   (over all edges, loops included), more than one of them, form a group whose id is
   ``group-<first member id>`` (``-2``, ``-3``... appended should a node already have that id).
   Only groups of more than ``collapse_over`` members are listed in ``Graph.groups``: smaller
   ones are never collapsed, so a page has nothing to offer for them. A listed group is
   collapsed, unless its id is in ``expand`` or ``expand_all`` is set: one box then stands for
   its members and their edges become the group's (merged like any other duplicates).
5. **Order.** Edges spanning several layers get a dummy vertex in each layer they cross; the
   long edges of one source share them (a trunk that each edge leaves in the layer before its
   target). Each layer is ordered by barycenter sweeps (down, up, down, up) with ties broken by
   definition order; after each, the members of an expanded group are gathered where the first
   of them stands, so their bounding box holds no other box.
6. **Coordinates.** Columns of the widest box in the layer, each column's boxes stacked and
   centred vertically. An edge's points run from the right side of its source box to the left
   side of its target box, through each dummy's slot (a point on either side of the column it
   crosses); a loop's points are the corners of its route.

Everything is integer-indexed lists inside: a 1,000-node definition lays out in tens of
milliseconds, a 10,000-node one in under a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from engine.definition.model import (
    Definition,
    Executor,
    HttpTask,
    LuaTask,
    NoopTask,
    PythonTask,
    QueueTask,
    SleepTask,
    SubWorkflowTask,
    WaitTask,
)

NODE_WIDTH = 180.0
NODE_HEIGHT = 44.0
GROUP_WIDTH = 200.0
GROUP_HEIGHT = 52.0
LAYER_GAP = 90.0
"""Horizontal room between two columns, where edges bend and their labels sit."""
ROW_GAP = 16.0
DUMMY_HEIGHT = 6.0
"""The slot an edge passing through a column takes in it."""
MARGIN = 24.0
LOOP_LANE = 12.0
"""Vertical distance between the lanes of loops below the drawing."""
GROUP_PADDING = 6.0
"""Space between an expanded group's bounding box and its members."""
SWEEPS = 4

Point = tuple[float, float]

_KINDS: Mapping[type[Executor], str] = {
    LuaTask: "lua",
    HttpTask: "http",
    PythonTask: "python",
    SubWorkflowTask: "subworkflow",
    QueueTask: "queue",
    WaitTask: "wait",
    NoopTask: "noop",
    SleepTask: "sleep",
}


def executor_kind(executor: Executor) -> str:
    """The short name of a node's executor: lua, http, python, subworkflow, queue, wait, noop,
    sleep (``queue`` is the definition's ``task:``, done by a worker)."""
    return _KINDS[type(executor)]


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A node's box; (x, y) is its top-left corner. ``group``: the expanded group it is in."""

    id: str
    kind: str
    label: str
    x: float
    y: float
    width: float
    height: float
    group: str | None = None


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """``kind``: depends, next or loop. ``source``/``target`` name a group when collapsed."""

    source: str
    target: str
    kind: str
    label: str | None
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class GraphGroup:
    """A fan-out group: its box when collapsed, its members' bounding box when expanded."""

    id: str
    members: tuple[str, ...]
    collapsed: bool
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: tuple[GraphNode, ...]
    """The boxes drawn, in definition order; members of collapsed groups are not among them."""
    edges: tuple[GraphEdge, ...]
    groups: tuple[GraphGroup, ...]
    width: float
    height: float
    member_group: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Node id -> id of the collapsed group standing for it."""


def build_graph(
    definition: Definition,
    *,
    collapse_over: int = 25,
    expand: frozenset[str] = frozenset(),
    expand_all: bool = False,
) -> Graph:
    """Lay out ``definition`` left to right (see the module docstring for the steps)."""
    nodes = definition.nodes
    n = len(nodes)
    index = {node.id: i for i, node in enumerate(nodes)}
    edges = _find_loops(n, _definition_edges(definition, index))
    layer = _layers(n, edges)
    groups = _fan_out_groups(definition, edges, layer, collapse_over)

    # Vertices of the layout: one per node, except one per collapsed group.
    vertex_of = list(range(n))
    sizes: list[tuple[float, float]] = [(NODE_WIDTH, NODE_HEIGHT)] * n
    names = [node.id for node in nodes]
    rank = list(range(n))  # the tie-break: definition order
    band = [-1] * n  # the first member of the expanded group a node is in
    vertex_layer = list(layer)
    listed: list[tuple[str, list[int], bool]] = []
    member_group: dict[str, str] = {}
    for gid, members in groups:
        collapsed = not expand_all and gid not in expand
        listed.append((gid, members, collapsed))
        first = members[0]
        if collapsed:
            v = len(names)
            names.append(gid)
            sizes.append((GROUP_WIDTH, GROUP_HEIGHT))
            rank.append(first)
            band.append(-1)
            vertex_layer.append(layer[first])
            for m in members:
                vertex_of[m] = v
                member_group[nodes[m].id] = gid
        else:
            for m in members:
                band[m] = first
    drawn = [i for i in range(n) if vertex_of[i] == i] + list(range(n, len(names)))

    vedges = _merge((vertex_of[s], vertex_of[t], kind, label) for s, t, kind, label in edges)
    layout = _Layout(vertex_layer, sizes, rank, band, drawn)
    forward: dict[int, dict[int, None]] = {}  # source -> its targets, in order
    for s, t, kind, _ in vedges:
        if kind != "loop":
            forward.setdefault(s, {})[t] = None
    for s, targets in forward.items():
        layout.connect(s, list(targets))
    layout.order()
    layout.place()

    out_edges = tuple(
        GraphEdge(names[s], names[t], kind, label, layout.route(s, t, kind == "loop"))
        for s, t, kind, label in vedges
    )
    in_group = {
        nodes[m].id: gid for gid, members, collapsed in listed if not collapsed for m in members
    }
    out_nodes = tuple(
        GraphNode(
            node.id,
            executor_kind(node.executor),
            node.id,
            *layout.box(i),
            group=in_group.get(node.id),
        )
        for i, node in enumerate(nodes)
        if vertex_of[i] == i
    )
    out_groups = []
    for gid, members, collapsed in listed:
        if collapsed:
            box = layout.box(vertex_of[members[0]])
        else:
            box = _bounds(layout.box(m) for m in members)
        out_groups.append(GraphGroup(gid, tuple(nodes[m].id for m in members), collapsed, *box))
    return Graph(
        out_nodes,
        out_edges,
        tuple(out_groups),
        layout.width,
        layout.height,
        MappingProxyType(member_group),
    )


# --- edges, loops, layers, groups -------------------------------------------------------------

_Edge = tuple[int, int, str, str | None]
_Box = tuple[float, float, float, float]


def _definition_edges(definition: Definition, index: Mapping[str, int]) -> list[_Edge]:
    edges: list[_Edge] = []
    for i, node in enumerate(definition.nodes):
        for dep in node.depends_on:
            if dep in index:
                edges.append((index[dep], i, "depends", None))
        transitions = node.next
        if transitions is None:
            continue
        if transitions.by_outcome is not None:
            for outcome, target in transitions.by_outcome.items():
                if target in index:
                    edges.append((i, index[target], "next", outcome))
        else:
            for edge in transitions.edges:
                if edge.to in index:
                    label = edge.outcome or ("when" if edge.when is not None else None)
                    edges.append((i, index[edge.to], "next", label))
    return edges


def _find_loops(n: int, edges: list[_Edge]) -> list[_Edge]:
    """``edges`` with those closing a cycle turned into ``loop`` edges, duplicates merged."""
    succ: list[list[int]] = [[] for _ in range(n)]
    for s, t, _, _ in edges:
        succ[s].append(t)
    state = [0] * n  # 0 unseen, 1 on the stack, 2 done
    back: set[tuple[int, int]] = set()
    for root in range(n):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            u, it = stack[-1]
            for v in it:
                if state[v] == 0:
                    state[v] = 1
                    stack.append((v, iter(succ[v])))
                    break
                if state[v] == 1:
                    back.add((u, v))
            else:
                state[u] = 2
                stack.pop()
    if not back:
        return _merge(edges)
    return _merge((s, t, "loop" if (s, t) in back else kind, label) for s, t, kind, label in edges)


def _merge(edges: Iterable[_Edge]) -> list[_Edge]:
    """One edge per (source, target, kind), in first-seen order, with its labels joined."""
    labels: dict[tuple[int, int, str], list[str]] = {}
    for s, t, kind, label in edges:
        seen = labels.setdefault((s, t, kind), [])
        if label is not None and label not in seen:
            seen.append(label)
    return [(s, t, kind, ", ".join(ls) if ls else None) for (s, t, kind), ls in labels.items()]


def _layers(n: int, edges: list[_Edge]) -> list[int]:
    """Longest path from a source over the non-loop edges (in Kahn's order); then, from the
    sinks back, a node with at least as many successors as predecessors moves up to the layer
    before its nearest successor: its edges get no longer in sum, and the nodes before it may
    follow (a chain hanging from a second start node moves as a whole)."""
    succ: list[list[int]] = [[] for _ in range(n)]
    preds = [0] * n
    for s, t, kind, _ in edges:
        if kind != "loop" and s != t:
            succ[s].append(t)
            preds[t] += 1
    indegree = list(preds)
    layer = [0] * n
    ready = [i for i in range(n) if indegree[i] == 0]
    seen = []
    while ready:
        u = ready.pop()
        seen.append(u)
        below = layer[u] + 1
        for v in succ[u]:
            if layer[v] < below:
                layer[v] = below
            indegree[v] -= 1
            if indegree[v] == 0:
                ready.append(v)
    for u in reversed(seen):
        after = succ[u]
        if after and len(after) >= preds[u]:
            layer[u] = max(layer[u], min([layer[v] for v in after]) - 1)
    return layer


def _fan_out_groups(
    definition: Definition, edges: list[_Edge], layer: list[int], collapse_over: int
) -> list[tuple[str, list[int]]]:
    n = len(layer)
    preds: list[set[int]] = [set() for _ in range(n)]
    succs: list[set[int]] = [set() for _ in range(n)]
    for s, t, _, _ in edges:
        succs[s].add(t)
        preds[t].add(s)
    by_key: dict[tuple[int, frozenset[int], frozenset[int]], list[int]] = {}
    for i in range(n):
        by_key.setdefault((layer[i], frozenset(preds[i]), frozenset(succs[i])), []).append(i)
    taken = {node.id for node in definition.nodes}
    groups = []
    for members in by_key.values():  # in the order of their first members
        if len(members) < 2 or len(members) <= collapse_over:
            continue
        gid = base = f"group-{definition.nodes[members[0]].id}"
        suffix = 1
        while gid in taken:
            suffix += 1
            gid = f"{base}-{suffix}"
        taken.add(gid)
        groups.append((gid, members))
    return groups


def _bounds(boxes: Iterable[_Box]) -> _Box:
    x0 = y0 = float("inf")
    x1 = y1 = float("-inf")
    for x, y, w, h in boxes:
        x0, y0 = min(x0, x), min(y0, y)
        x1, y1 = max(x1, x + w), max(y1, y + h)
    p = GROUP_PADDING
    return (x0 - p, y0 - p, x1 - x0 + 2 * p, y1 - y0 + 2 * p)


def _gather(vs: list[int], band: list[int]) -> list[int]:
    """``vs`` with the members of each expanded group moved up to the first one of them."""
    members: dict[int, list[int]] = {}
    for v in vs:
        if band[v] >= 0:
            members.setdefault(band[v], []).append(v)
    out: list[int] = []
    for v in vs:
        b = band[v]
        if b < 0:
            out.append(v)
        elif b in members:
            out.extend(members.pop(b))
    return out


# --- the layered layout -----------------------------------------------------------------------


class _Layout:
    """Vertices by integer, dummies appended after the real ones; built, ordered, placed.

    The edges from one source that span several layers share one trunk of dummies, as long as
    the longest of them, and leave it in the layer before their targets: a source with many
    long edges costs one dummy per layer, not one per edge and layer.
    """

    def __init__(
        self,
        layer: list[int],
        sizes: list[tuple[float, float]],
        rank: list[int],
        band: list[int],
        drawn: list[int],
    ) -> None:
        self.layer = layer
        self.sizes = sizes
        self.rank = rank
        self.band = band
        self.drawn = drawn
        self.up: list[list[int]] = [[] for _ in layer]
        self.down: list[list[int]] = [[] for _ in layer]
        self.trunk: dict[int, int] = {}  # source -> its first dummy (they are consecutive)
        self.dummies_from = len(layer)
        self.x: list[float] = []
        self.y: list[float] = []
        self.layers: list[list[int]] = []
        self.columns: list[tuple[float, float]] = []  # (left, width) per layer
        self.width = self.height = 0.0
        self.bottom = 0.0
        self.loops = 0

    def connect(self, s: int, targets: list[int]) -> None:
        """Add the forward edges from ``s`` (distinct targets, each in a later layer)."""
        layer, up, down = self.layer, self.up, self.down
        base = layer[s]
        length = max(layer[t] for t in targets) - base - 1
        first = len(layer)
        if length > 0:
            self.trunk[s] = first
            dummies = range(first, first + length)
            layer.extend(range(base + 1, base + 1 + length))
            self.sizes.extend([(0.0, DUMMY_HEIGHT)] * length)
            self.rank.extend(dummies)
            self.band.extend([-1] * length)
            up.append([s])
            up.extend([d - 1] for d in dummies[1:])
            down.extend([d + 1] for d in dummies[:-1])
            down.append([])
            down[s].append(first)
        for t in targets:
            span = layer[t] - base
            before = s if span == 1 else first + span - 2
            up[t].append(before)
            down[before].append(t)

    def order(self) -> None:
        depth = max((self.layer[v] for v in self.drawn), default=-1) + 1
        layers: list[list[int]] = [[] for _ in range(depth)]
        layer = self.layer
        for v in self.drawn:
            layers[layer[v]].append(v)
        for d in range(self.dummies_from, len(layer)):
            layers[layer[d]].append(d)
        rank, band = self.rank, self.band
        banded = [any(band[v] >= 0 for v in vs) for vs in layers]
        pos = [0] * len(layer)
        for vs in layers:
            vs.sort(key=rank.__getitem__)
            for p, v in enumerate(vs):
                pos[v] = p
        for sweep in range(SWEEPS):
            downward = sweep % 2 == 0
            near = self.up if downward else self.down
            seq = range(1, depth) if downward else range(depth - 2, -1, -1)
            for at in seq:
                keyed = [
                    (
                        pos[v]
                        if not (ns := near[v])
                        else pos[ns[0]]
                        if len(ns) == 1
                        else sum([pos[u] for u in ns]) / len(ns),
                        rank[v],
                        v,
                    )
                    for v in layers[at]
                ]
                keyed.sort()
                vs = [k[2] for k in keyed]
                if banded[at]:
                    vs = _gather(vs, band)
                layers[at] = vs
                for p, v in enumerate(vs):
                    pos[v] = p
        self.layers = layers

    def place(self) -> None:
        sizes = self.sizes
        x = self.x = [0.0] * len(sizes)
        y = self.y = [0.0] * len(sizes)
        left = MARGIN
        totals = []
        for vs in self.layers:
            width = max([NODE_WIDTH, *(sizes[v][0] for v in vs)])
            self.columns.append((left, width))
            left += width + LAYER_GAP
            totals.append(sum([sizes[v][1] for v in vs]) + ROW_GAP * max(len(vs) - 1, 0))
        tallest = max(totals, default=0.0)
        for vs, total in zip(self.layers, totals, strict=True):
            at = MARGIN + (tallest - total) / 2
            for v in vs:
                y[v] = at
                at += sizes[v][1] + ROW_GAP
        self.width = (left - LAYER_GAP if self.layers else MARGIN) + MARGIN
        columns, layer = self.columns, self.layer
        for v in self.drawn:
            column, width = columns[layer[v]]
            x[v] = column + (width - sizes[v][0]) / 2
        self.bottom = MARGIN + tallest
        self.height = self.bottom + MARGIN

    def box(self, v: int) -> _Box:
        w, h = self.sizes[v]
        return (self.x[v], self.y[v], w, h)

    def route(self, s: int, t: int, loop: bool) -> tuple[Point, ...]:
        sx, sy, sw, sh = self.box(s)
        tx, ty, _, th = self.box(t)
        start = (sx + sw, sy + sh / 2)
        end = (tx, ty + th / 2)
        if not loop:
            span = self.layer[t] - self.layer[s]
            if span == 1:
                return (start, end)
            points = [start]
            first = self.trunk[s]
            half = DUMMY_HEIGHT / 2
            base = self.layer[s] + 1
            for i, d in enumerate(range(first, first + span - 1)):
                left, width = self.columns[base + i]
                mid = self.y[d] + half
                points += [(left, mid), (left + width, mid)]
            points.append(end)
            return tuple(points)
        if s == t:  # just below the box, in the gap to the next one of its column
            lane = sy + sh + ROW_GAP / 2
            off = LAYER_GAP / 6
        else:  # below everything
            lane = self.bottom + ROW_GAP + LOOP_LANE * self.loops
            off = 10.0 + 6.0 * (self.loops % 6)
            self.loops += 1
            self.height = max(self.height, lane + MARGIN)
        right, back = start[0] + off, end[0] - off
        return (start, (right, start[1]), (right, lane), (back, lane), (back, end[1]), end)
