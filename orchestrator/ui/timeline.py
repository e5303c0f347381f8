"""An execution's timeline: when each node ran, built from its monitoring events; pure.

``build_timeline(events, now=...)`` turns an execution's events into one row per node (in the
order the nodes first started) holding one bar per run, that is per (visit, attempt), from its
start to its end, in the status it ended in:

- ``node.started`` opens a run; ``node.completed``, ``node.failed``, ``node.skipped`` and
  ``node.cancelled`` end it in that status; ``node.retrying`` ends it ``failed`` with the detail
  ``retried`` (the next attempt is a bar of its own).
- An end without a start (a node skipped or cancelled before it ran; a lost start) is a bar of
  no length at the end's time; an end for a run already ended (a cancel while waiting for a
  retry) changes nothing.
- ``node.reused`` (a retry reusing an earlier execution's result) is a bar of no length in the
  reused status, with the detail ``reused from <execution>``.
- A run still open is ``running`` and ends at ``now``.
- The items of a mapped node (``item.*`` events) are summarised in the detail of their visit's
  bar (``12 items: 10 completed, 2 failed; 3 retries``), never a bar each: a map can have
  thousands of items.

``render_timeline`` draws it as SVG: a time axis relative to the start (``+0s``, ``+1.5s``,
``+2m``), a row per node, bars carrying ``data-node``/``data-visit``/``data-attempt``/
``data-status`` and a ``<title>`` tooltip, a status glyph inside each bar wide enough for one.
Bars are filled with ``currentColor``, which the stylesheet sets by ``data-status``. Only the
first ``max_rows`` (500) rows are drawn, then a note ``… N more nodes``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from orchestrator.monitor import TERMINAL_EVENTS, MonitorEvent
from orchestrator.ui.svg import GLYPHS, coord

MAX_ROWS = 500

LABEL_WIDTH = 180.0
RIGHT_PAD = 16.0
AXIS_HEIGHT = 28.0
ROW_HEIGHT = 22.0
BAR_HEIGHT = 14.0
MIN_BAR = 2.0
"""Bars of no (visible) length are drawn this wide."""
LABEL_CHARS = 24

_ENDS = {
    "node.completed": "completed",
    "node.failed": "failed",
    "node.skipped": "skipped",
    "node.cancelled": "cancelled",
    "node.retrying": "failed",
}
_NODE_EVENTS = frozenset({"node.started", "node.reused", "node.mapped", *_ENDS})
_ITEM_ENDS = {"item.completed": "completed", "item.failed": "failed"}

_STEPS = (
    *(m * 10.0**e for e in range(-3, 1) for m in (1, 2, 5)),
    10.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    3 * 3600.0,
    6 * 3600.0,
    12 * 3600.0,
    86400.0,
)
"""Tick spacings, in seconds, from which the axis takes the finest that fits."""
TICK_ROOM = 70.0
"""Horizontal room a tick's label needs."""


@dataclass(frozen=True, slots=True)
class TimelineBar:
    """One run of a node: ``end`` is ``now`` for a run still ``running``."""

    visit: int
    attempt: int
    start: float
    end: float
    status: str
    detail: str | None = None
    """``retried``, ``reused from <execution>``, a mapped node's items summary, or None."""


@dataclass(frozen=True, slots=True)
class TimelineRow:
    node: str
    bars: tuple[TimelineBar, ...]


@dataclass(frozen=True, slots=True)
class Timeline:
    start: float
    end: float
    rows: tuple[TimelineRow, ...]


@dataclass(slots=True)
class _Run:
    start: float
    end: float | None = None
    status: str = "running"
    detail: str | None = None


@dataclass(slots=True)
class _Items:
    total: int | None = None
    ended: dict[int, str] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)
    retries: int = 0

    def summary(self) -> str:
        total = self.total if self.total is not None else len(self.started | set(self.ended))
        tally = Counter(self.ended.values())
        running = len(self.started - set(self.ended))
        parts = [f"{tally[s]} {s}" for s in ("completed", "failed") if tally[s]]
        if running:
            parts.append(f"{running} running")
        text = f"{total} items" + (": " + ", ".join(parts) if parts else "")
        if self.retries:
            text += f"; {self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        return text


def build_timeline(events: Sequence[MonitorEvent], *, now: float) -> Timeline:
    """The rows of an execution's ``events`` (in their order), open runs ending at ``now``."""
    runs: dict[str, dict[tuple[int, int], _Run]] = {}  # in first-event order
    items: dict[tuple[str, int], _Items] = {}
    begin: float | None = None
    finish: float | None = None
    for event in events:
        node = event.node
        if node is None:
            if event.type == "execution.started" and begin is None:
                begin = event.at
            elif event.type in TERMINAL_EVENTS:
                finish = event.at
            continue
        kind = event.type
        if kind not in _NODE_EVENTS and not kind.startswith("item."):
            continue
        own = runs.setdefault(node, {})
        key = (event.visit, event.attempt)
        if kind == "node.started":
            own.setdefault(key, _Run(event.at))
        elif kind in _ENDS:
            run = own.get(key)
            if run is None:
                own[key] = run = _Run(event.at)
            elif run.end is not None:
                continue
            run.end = event.at
            run.status = _ENDS[kind]
            if kind == "node.retrying":
                run.detail = "retried"
        elif kind == "node.reused":
            data = event.data or {}
            own[key] = _Run(
                event.at,
                event.at,
                str(data.get("status") or "completed"),
                f"reused from {data.get('reused_from') or 'an earlier execution'}",
            )
        elif kind == "node.mapped":
            total = (event.data or {}).get("items")
            items.setdefault((node, event.visit), _Items()).total = (
                total if isinstance(total, int) else None
            )
        elif kind.startswith("item."):
            _item(items.setdefault((node, event.visit), _Items()), kind, event)
            if not any(v == event.visit for v, _ in own):
                own[(event.visit, 1)] = _Run(event.at)

    for (node, visit), summary in items.items():
        own = runs.get(node, {})
        latest = max((k for k in own if k[0] == visit), default=None)
        if latest is not None:
            own[latest].detail = summary.summary()

    rows = []
    for node, own in runs.items():
        if not own:  # only a mapping seen so far
            continue
        bars = tuple(
            TimelineBar(
                visit,
                attempt,
                run.start,
                run.end if run.end is not None else max(now, run.start),
                run.status,
                run.detail,
            )
            for (visit, attempt), run in sorted(own.items(), key=lambda kv: kv[1].start)
        )
        rows.append(TimelineRow(node, bars))
    rows.sort(key=lambda row: row.bars[0].start)  # stable: ties keep first-event order
    starts = [row.bars[0].start for row in rows]
    if begin is not None:
        starts.append(begin)
    start = min(starts, default=now)
    ends = [bar.end for row in rows for bar in row.bars]
    if finish is not None:
        ends.append(finish)
    elif not rows:
        ends.append(now)  # started, nothing ran yet
    return Timeline(start, max([start, *ends]), tuple(rows))


def _item(summary: _Items, kind: str, event: MonitorEvent) -> None:
    index = (event.data or {}).get("item")
    if not isinstance(index, int):
        return
    if kind == "item.started":
        summary.started.add(index)
    elif kind in _ITEM_ENDS:
        summary.ended[index] = _ITEM_ENDS[kind]
    elif kind == "item.retrying":
        summary.retries += 1


# --- rendering --------------------------------------------------------------------------------


def render_timeline(timeline: Timeline, *, width: int = 900, max_rows: int = MAX_ROWS) -> Markup:
    """The SVG of ``timeline``, ``width`` wide; rows past ``max_rows`` are left out, noted."""
    rows = timeline.rows[:max_rows]
    cut = len(timeline.rows) - len(rows)
    plot = max(width - LABEL_WIDTH - RIGHT_PAD, 10.0)
    span = max(timeline.end - timeline.start, 1e-3)
    scale = plot / span
    height = AXIS_HEIGHT + ROW_HEIGHT * (len(rows) + (1 if cut else 0)) + 8
    out = [
        f'<svg id="timeline-svg" class="timeline" xmlns="http://www.w3.org/2000/svg"'
        f' viewBox="0 0 {width} {coord(height)}" width="{width}" height="{coord(height)}"'
        f' font-size="12" role="group" aria-label="Timeline: {len(timeline.rows)} nodes over'
        f' {_duration(timeline.end - timeline.start)}">',
        '<g class="axis">',
    ]
    step = next((s for s in _STEPS if span / s <= plot / TICK_ROOM), _STEPS[-1])
    bottom = coord(height - 8)
    for i in range(int(span / step + 1e-9) + 1):
        at = coord(LABEL_WIDTH + i * step * scale)
        out.append(
            f'<line class="tick" x1="{at}" y1="{coord(AXIS_HEIGHT - 6)}" x2="{at}" y2="{bottom}"'
            ' stroke="#e5e8ee"/>'
            f'<text class="tick-label" x="{at}" y="{coord(AXIS_HEIGHT - 10)}"'
            f' text-anchor="middle">{_relative(i * step)}</text>'
        )
    out.append('</g><g class="rows">')
    start = timeline.start
    for i, row in enumerate(rows):
        top = AXIS_HEIGHT + i * ROW_HEIGHT
        node = escape(row.node)
        label = row.node if len(row.node) <= LABEL_CHARS else row.node[: LABEL_CHARS - 1] + "…"
        out.append(
            f'<g class="row" data-node="{node}"><title>{node}</title>'
            f'<text class="row-label" x="{coord(LABEL_WIDTH - 8)}" y="{coord(top + 15)}"'
            f' text-anchor="end">{escape(label)}</text>'
        )
        y = coord(top + (ROW_HEIGHT - BAR_HEIGHT) / 2)
        for bar in row.bars:
            x = LABEL_WIDTH + (bar.start - start) * scale
            w = max((bar.end - bar.start) * scale, MIN_BAR)
            status = escape(bar.status)
            tip = (
                f"{row.node}: visit {bar.visit}, attempt {bar.attempt}, {bar.status},"
                f" {_duration(bar.end - bar.start)}"
                + (" so far" if bar.status == "running" else "")
                + (f" ({bar.detail})" if bar.detail else "")
            )
            glyph = (
                f'<text class="bar-glyph" x="{coord(x + 3)}" y="{coord(top + 15)}" fill="#fff">'
                f"{GLYPHS.get(bar.status, '')}</text>"
                if w >= 14
                else ""
            )
            out.append(
                f'<rect class="bar bar-{status}" data-node="{node}" data-visit="{bar.visit}"'
                f' data-attempt="{bar.attempt}" data-status="{status}" x="{coord(x)}" y="{y}"'
                f' width="{coord(w)}" height="{coord(BAR_HEIGHT)}" rx="2" fill="currentColor">'
                f"<title>{escape(tip)}</title></rect>{glyph}"
            )
        out.append("</g>")
    out.append("</g>")
    if cut:
        y = coord(AXIS_HEIGHT + len(rows) * ROW_HEIGHT + 15)
        out.append(
            f'<text class="more" x="{coord(LABEL_WIDTH - 8)}" y="{y}" text-anchor="end">'
            f"… {cut} more node{'s' if cut != 1 else ''}</text>"
        )
    out.append("</svg>")
    return Markup("".join(out))


def _relative(seconds: float) -> str:
    """A tick's label: ``+0s``, ``+0.25s``, ``+1.5s``, ``+2m``, ``+2m30s``, ``+1h30m``."""
    s = round(seconds, 3)
    if s < 60:
        return f"+{s:g}s"
    if s < 3600:
        m, rest = divmod(round(s), 60)
        return f"+{m}m" + (f"{rest}s" if rest else "")
    h, rest = divmod(round(s / 60), 60)
    return f"+{h}h" + (f"{rest}m" if rest else "")


def _duration(seconds: float) -> str:
    """A run's length: ``340 ms``, ``1.25 s``, ``2m 5s``, ``1h 2m``."""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.2f} s".replace(".00 s", " s")
    if seconds < 3600:
        m, s = divmod(round(seconds), 60)
        return f"{m}m {s}s"
    h, m = divmod(round(seconds / 60), 60)
    return f"{h}h {m}m"
