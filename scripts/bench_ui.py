"""Web UI benchmark (issue 18, ``scripts/bench ui``; not a test).

Two parts, each on real ``weir`` processes on 127.0.0.1:

**list** -- the execution list with 100,000 executions. A SQLite store file is seeded through
the store API (``SqlStore.put_execution`` in batches of ``BATCH``, one group commit each):
``--rows`` finished executions of six workflows of skewed sizes and three versions,
completed, failed and cancelled, one in twenty a sub-workflow's child, created over the last
five days; each has a real result object (nodes and path from the engine running a workflow
in this process), every ``--big-every``-th one that of the ``--nodes`` fan-out below (about
200 KB for 1,000 nodes). Then ``weir orchestrator`` starts on that file (no engines), the six
workflows are registered over REST, and for each filter of the UI's list (none,
``workflow=X``, ``status=failed``, ``workflow=X&status=failed``) three lists are walked and
timed page by page (request sent to response read, one keep-alive connection):

* ``GET /ui/executions?FILTER`` (the UI's page, HTML), then its ``a[rel=next]`` link, page
  after page, ``--pages`` deep;
* ``GET /api/v1/executions?FILTER&limit=50``, then its ``next_page_token``: the REST list,
  the baseline;
* ``SqlStore.list_executions(..., limit=50, summary=True)`` in this process on the same file:
  what the database takes of either.

after one untimed walk each (the warm-up), ``--rounds`` times. Each page's rows are checked
(newest first, no row twice, every row matching the filter); a wrong one stops the benchmark
with exit status 1. Until the UI's pages exist, ``/ui/executions`` answers 404 and the UI
rows say so; the REST and store rows are measured all the same.

**graph** -- an execution's page in headless Chromium. ``weir orchestrator`` and one ``weir
engine``; a fan-out workflow of ``--nodes`` no-op nodes (``start``, ``--nodes`` - 2 nodes
depending on it, ``join`` depending on all of them) and a 1-node one are registered and run
to completion (``POST /api/v1/executions?wait=true``). Then, ``--loads`` times each, in a
fresh browser context (nothing cached), ``/ui/executions/ID`` of the 1-node execution (the
baseline), of the fan-out, and of the fan-out with ``?expand=all`` (every member
drawn): from navigation start to the page's ``#graph`` element carrying ``data-ready`` (the
page's script sets it once the graph is interactive; a ``MutationObserver`` installed before
the page's own scripts notes the moment, ``performance.now()``), and the HTML's arrival
(``responseEnd``) beside it. On each load, once ready, a zoom (a ``wheel`` event on the
graph's centre) and a pan (a drag started with the real mouse, then one move of 120 px
dispatched in the page as ``pointermove`` and ``mousemove``), each timed in the page from
dispatching its events to the end of the next animation frame's paint
(``requestAnimationFrame``, then a task queued from it). Figures are medians, with the ratio
to the 1-node page. Until the UI's execution page exists it answers 404: the benchmark says
so and times ``GET /api/v1/executions/ID`` (the JSON) only.

Chromium is ``/usr/bin/chromium`` (``--chromium``) driven by Playwright's sync API; without
Playwright or Chromium the graph part says what is missing and the list part still runs.

Targets (printed MET/MISS, not an exit status): list page p50 <= ``TARGET_LIST_MS`` ms at
100,000 executions, every filter; the 1,000-node page ready in <= ``TARGET_READY_S`` s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import bench_e2e
import httpx
from bench_e2e import Server, free_port, percentile

from engine.definition.parser import loads
from engine.local import run_workflow
from engine.server import codec
from engine.state.result import iso
from orchestrator.store import ExecutionRow, SqlStore
from tests.support.chromium import ARGS, CHROMIUM

TARGET_LIST_MS = 50.0
TARGET_READY_S = 2.0
PAGE = 50
"""Rows per list page, the UI's and the REST baseline's."""
BATCH = 5_000
"""Executions per group commit while seeding."""
WORKFLOWS = {
    "orders": 40,
    "billing": 20,
    "reports": 15,
    "etl-nightly": 10,
    "notify": 10,
    "audit": 5,
}
"""The seeded workflows and their shares of the executions (percent)."""
VERSIONS = ("1.0.0", "1.1.0", "2.0.0")
FILTERED = "reports"
"""The workflow of the ``workflow=X`` filters: 15% of the executions (15% of those failed)."""
STATUSES = {"completed": 80, "failed": 15, "cancelled": 5}
SPAN = 5 * 86400.0
"""Seconds over which the executions were created (retention keeps 7 days)."""
CHILDREN = 0.05
"""The share of executions that are a sub-workflow's child (of one of the last 100 others)."""
FILTERS: dict[str, dict[str, str]] = {
    "(none)": {},
    f"workflow={FILTERED}": {"workflow": FILTERED},
    "status=failed": {"status": "failed"},
    f"workflow={FILTERED}&status=failed": {"workflow": FILTERED, "status": "failed"},
}
FANOUT = "bench-ui-fanout"
SINGLE = "bench-ui-one"
READY_TIMEOUT_MS = 60_000
STARTUP = 60.0
"""Seconds a server may take to listen (the orchestrator migrates and loads the store first)."""

INSTRUMENT = """
(() => {
  const mark = () => {
    if (window.__weirReady === undefined && document.querySelector('#graph[data-ready]')) {
      window.__weirReady = performance.now();
    }
  };
  // kept in a global: an observer nothing refers to may be collected, and miss the moment
  window.__weirObserver = new MutationObserver(mark);
  window.__weirObserver.observe(document, {
    subtree: true, childList: true, attributes: true, attributeFilter: ['data-ready'],
  });
  document.addEventListener('DOMContentLoaded', mark);
  // the id of the real pointer of the drag a pan starts, for the move dispatched in the page
  window.addEventListener('pointerdown', e => { window.__weirPointer = e.pointerId; }, true);
  // resolves with the time once the next animation frame is painted: a task queued from
  // requestAnimationFrame runs after that frame's paint
  window.__weirAfterPaint = () => new Promise(done => requestAnimationFrame(() => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => done(performance.now());
    channel.port2.postMessage(null);
  }));
  // [ms from dispatching a gesture's events to that paint, whether #graph changed at all]
  window.__weirGesture = async (dispatch) => {
    const graph = document.querySelector('#graph');
    let changes = 0;
    const watch = new MutationObserver(records => { changes += records.length; });
    watch.observe(graph, {subtree: true, attributes: true, childList: true});
    const start = performance.now();
    dispatch();
    const end = await window.__weirAfterPaint();
    changes += watch.takeRecords().length;
    watch.disconnect();
    return [end - start, changes > 0];
  };
})();
"""
"""Installed before the page's own scripts: notes when ``#graph`` gets ``data-ready``, and
gives the zoom and the pan their end."""
ZOOM = """
async () => {
  const graph = document.querySelector('#graph');
  const box = graph.getBoundingClientRect();
  const x = box.left + box.width / 2, y = box.top + box.height / 2;
  const target = document.elementFromPoint(x, y) || graph;
  return await window.__weirGesture(() => target.dispatchEvent(new WheelEvent('wheel', {
    deltaY: -240, deltaMode: 0, clientX: x, clientY: y, bubbles: true, cancelable: true,
  })));
}
"""
PAN_STEP = """
async ([dx, dy]) => {
  const graph = document.querySelector('#graph');
  const box = graph.getBoundingClientRect();
  const x = box.left + box.width / 2 + dx, y = box.top + box.height / 2 + dy;
  const target = document.elementFromPoint(x, y) || graph;
  const common = {bubbles: true, cancelable: true, view: window, clientX: x, clientY: y};
  return await window.__weirGesture(() => {
    target.dispatchEvent(new PointerEvent('pointermove', {
      ...common, buttons: 1, pointerId: window.__weirPointer, pointerType: 'mouse',
      isPrimary: true,
    }));
    target.dispatchEvent(new MouseEvent('mousemove', {...common, buttons: 1}));
  });
}
"""
"""One move of a drag in progress, from its events to the next frame's paint."""
PAN = (110, 55)
"""Where the timed move of a pan goes, from the graph's centre (px): a drag of about 120 px."""
EXPAND_ALL = "expand=all"
"""The execution page's query that draws every member of every fan-out group."""


class WrongResult(Exception):
    """A page that does not hold what its filter asked for."""


def ms(seconds: float) -> float:
    return seconds * 1000.0


# --- seeding ---------------------------------------------------------------------------------


def fanout(name: str, nodes: int) -> dict[str, Any]:
    """``start`` -> ``nodes - 2`` no-op nodes -> ``join``."""
    members = [f"n{i:04}" for i in range(1, nodes - 1)]
    return {
        "apiVersion": "weir/v1",
        "kind": "Workflow",
        "name": name,
        "version": "1.0.0",
        "description": f"scripts/bench ui: a fan-out of {nodes} no-op nodes",
        "nodes": [
            {"id": "start", "noop": {}},
            *({"id": m, "noop": {}, "depends_on": ["start"]} for m in members),
            {"id": "join", "noop": {}, "depends_on": members},
        ],
    }


def chain(name: str, version: str = "1.0.0", nodes: int = 3) -> dict[str, Any]:
    ids = [f"step{i}" for i in range(1, nodes + 1)]
    return {
        "apiVersion": "weir/v1",
        "kind": "Workflow",
        "name": name,
        "version": version,
        "description": f"scripts/bench ui: {nodes} no-op nodes in a chain",
        "nodes": [
            {"id": node, "noop": {}, **({"depends_on": [ids[i - 1]]} if i else {})}
            for i, node in enumerate(ids)
        ],
    }


async def result_parts(definition: dict[str, Any]) -> tuple[bytes, bytes]:
    """The ``nodes`` and ``path`` of the result of the engine running ``definition`` here."""
    result = (await run_workflow(loads(json.dumps(definition)), {})).to_json()
    return codec.to_json(result["nodes"]) or b"{}", codec.to_json(result["path"]) or b"[]"


def result_json(row: ExecutionRow, parts: tuple[bytes, bytes]) -> bytes:
    """A result object for ``row`` (ARCHITECTURE.md) around a real run's nodes and path."""
    error = None
    if row.status == "failed":
        error = {"node": "step2", "message": "step2 failed: the upstream answered 503"}
    elif row.status == "cancelled":
        error = {"node": None, "message": "cancelled by request"}
    head = {
        "id": row.id,
        "workflow": row.workflow,
        "version": row.version,
        "status": row.status,
        "inputs": {"customer": 1042},
        "outputs": {} if error else {"done": True},
        "error": error,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
    }
    nodes, path = parts
    return (codec.to_json(head) or b"{}")[:-1] + b',"nodes":' + nodes + b',"path":' + path + b"}"


def history(
    rows: int, big_every: int, now: float, seed: int = 18
) -> Iterator[tuple[ExecutionRow, bool]]:
    """The seeded executions, oldest first, each with whether its result is the big one;
    ``result_json`` is left to ``seed_store``."""
    rnd = random.Random(seed)
    names, weights = list(WORKFLOWS), list(WORKFLOWS.values())
    statuses, status_weights = list(STATUSES), list(STATUSES.values())
    recent: list[str] = []
    children = 0
    for i in range(rows):
        created = now - SPAN + SPAN * i / rows
        started = created + rnd.uniform(0.01, 0.5)
        execution_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        parent = None
        if recent and rnd.random() < CHILDREN:
            parent = rnd.choice(recent)
            children += 1
        else:
            recent = [*recent[-99:], execution_id]
        row = ExecutionRow(
            id=execution_id,
            workflow=rnd.choices(names, weights)[0],
            version=rnd.choice(VERSIONS),
            status=rnd.choices(statuses, status_weights)[0],
            inputs_json=b'{"customer": 1042}',
            created_at=created,
            routing_key="",
            parent_id=parent,
            parent_node="call" if parent else None,
            child_key=f"{parent}/call/{children}/1" if parent else None,
            depth=1 if parent else 0,
            engine="127.0.0.1:50051",
            engine_name=f"e{1 + i % 2}",
            lease=1,
            placements=1,
            started_at=started,
            finished_at=started + rnd.uniform(0.05, 30.0),
        )
        yield row, bool(big_every) and i % big_every == 0


async def seed_store(path: Path, rows: int, big_every: int, nodes: int) -> dict[str, float]:
    """Seed ``rows`` finished executions into a new SQLite store at ``path``."""
    big = await result_parts(fanout(FANOUT, nodes))
    small = await result_parts(chain("seeded"))
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    began = time.perf_counter()
    big_kb = 0.0
    try:
        for i, (row, is_big) in enumerate(history(rows, big_every, time.time()), 1):
            row.result_json = result_json(row, big if is_big else small)
            if is_big:
                big_kb = len(row.result_json) / 1e3
            store.put_execution(row)
            if i % BATCH == 0:
                await store.durable()
        await store.durable()
    finally:
        await store.close()
    return {"seconds": time.perf_counter() - began, "big_kb": big_kb}


# --- processes --------------------------------------------------------------------------------


class Processes:
    """``weir orchestrator`` (and engines) on 127.0.0.1, stopped by ``stop()``."""

    def __init__(self, logs: Path, store_url: str, engines: int) -> None:
        self.logs = logs
        self.store_url = store_url
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.engine_ports = [free_port() for _ in range(engines)]
        self.servers: list[Server] = []

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        for i, port in enumerate(self.engine_ports, 1):
            env = {
                "ENGINE_ID": f"e{i}",
                "PORT": str(port),
                "BIND_ADDRESS": "127.0.0.1",
                "METRICS_PORT": "0",
                "SHUTDOWN_GRACE_PERIOD": "2s",
            }
            self.servers.append(Server(f"e{i}", "engine", env, self.logs, None))
        env = {
            "ORCHESTRATOR_ID": "bench-ui",
            "GRPC_PORT": str(self.grpc_port),
            "HTTP_PORT": str(self.http_port),
            "BIND_ADDRESS": "127.0.0.1",
            "DISCOVERY": "static",
            "ENGINES": ",".join(f"127.0.0.1:{p}" for p in self.engine_ports),
            "ENGINE_HEALTH_CHECK_INTERVAL": "1s",
            "STORE_URL": self.store_url,
            "TRIGGERS_ENABLED": "false",
        }
        self.servers.append(Server("orchestrator", "orchestrator", env, self.logs, None))
        deadline = time.monotonic() + STARTUP
        while not all(server.listening() for server in self.servers):
            if time.monotonic() > deadline:
                raise RuntimeError("servers did not start listening:\n" + self.dump())
            time.sleep(0.05)

    def engines_ready(self, http: httpx.Client) -> None:
        deadline = time.monotonic() + STARTUP
        while True:
            engines = http.get("/api/v1/engines").json()["engines"]
            if sum(1 for e in engines if e.get("state") == "ready") >= len(self.engine_ports):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"engines did not become ready: {engines}\n{self.dump()}")
            time.sleep(0.05)

    def stop(self) -> None:
        bench_e2e.stop_all(self.servers)

    def dump(self) -> str:
        return bench_e2e.dump(self.servers)


@contextlib.contextmanager
def running(logs: Path, store_url: str, engines: int) -> Iterator[Processes]:
    processes = Processes(logs, store_url, engines)
    try:
        processes.start()
        yield processes
    finally:
        processes.stop()


def register(http: httpx.Client, definition: dict[str, Any]) -> None:
    response = http.post("/api/v1/workflows", json=definition)
    if response.status_code not in (200, 201):
        raise RuntimeError(f"registering {definition['name']}: {response.text}")


# --- the list ---------------------------------------------------------------------------------


class NextLink(HTMLParser):
    """The ``href`` of the first ``<a rel="next">`` of a page, entities unescaped."""

    def __init__(self) -> None:
        super().__init__()
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and self.href is None and "next" in (found.get("rel") or "").split():
            self.href = found.get("href")


def next_href(html: str) -> str | None:
    parser = NextLink()
    parser.feed(html)
    parser.close()
    return parser.href


@dataclass
class Walk:
    """One kind of list page under one filter: each page's milliseconds, page by page."""

    times: list[list[float]] = field(default_factory=list)
    """Per round, per page (0: the first page)."""
    note: str = ""

    @property
    def all(self) -> list[float]:
        return [t for walk in self.times for t in walk]

    @property
    def first(self) -> list[float]:
        return [walk[0] for walk in self.times if walk]


def check_page(
    rows: list[dict[str, Any]], filters: dict[str, str], seen: set[str], last: Any
) -> Any:
    """Raise ``WrongResult`` unless the page is newest first after ``last``, new, filtered."""
    for row in rows:
        key = (row["created_at"], row["id"])
        if last is not None and key >= last:
            raise WrongResult(f"{filters}: {row['id']} is not older than the row before it")
        if row["id"] in seen:
            raise WrongResult(f"{filters}: {row['id']} came twice")
        for name, value in filters.items():
            if row[name] != value:
                raise WrongResult(f"{filters}: {row['id']} has {name} {row[name]!r}")
        seen.add(row["id"])
        last = key
    return last


def rest_walk(http: httpx.Client, filters: dict[str, str], pages: int) -> tuple[list[float], str]:
    """Time ``pages`` pages of the REST list; return the times and the first page's first id."""
    times: list[float] = []
    token = ""
    seen: set[str] = set()
    last = None
    first = ""
    for _ in range(pages):
        params = {**filters, "limit": str(PAGE), **({"page_token": token} if token else {})}
        began = time.perf_counter()
        response = http.get("/api/v1/executions", params=params)
        times.append(ms(time.perf_counter() - began))
        response.raise_for_status()
        body = response.json()
        rows = body["executions"]
        first = first or (rows[0]["id"] if rows else "")
        last = check_page(rows, filters, seen, last)
        token = body.get("next_page_token") or ""
        if not token:
            break
        if len(rows) != PAGE:
            raise WrongResult(f"{filters}: a page of {len(rows)} with a next page")
    return times, first


def ui_walk(http: httpx.Client, filters: dict[str, str], pages: int) -> tuple[list[float], str]:
    """Time ``pages`` UI list pages following ``a[rel=next]``; ([], why) when it cannot."""
    times: list[float] = []
    url: str | None = _ui_url(filters)
    while url is not None and len(times) < pages:
        began = time.perf_counter()
        response = http.get(url)
        times.append(ms(time.perf_counter() - began))
        if response.status_code != 200:
            what = "not there yet (the UI lands on main: merge it)"
            if response.status_code != 404:
                what = response.text[:200]
            return [], f"GET {url} answered {response.status_code}: {what}"
        href = next_href(response.text)
        url = urljoin(str(response.url), href) if href else None
    return times, "" if times else "no page"


async def store_walks(path: Path, filters: dict[str, str], pages: int, rounds: int) -> Walk:
    """The same pages from ``SqlStore.list_executions`` in this process (summary rows)."""
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    walk = Walk()
    try:
        for round_ in range(rounds + 1):  # the first one warms up
            times: list[float] = []
            before = None
            for _ in range(pages):
                began = time.perf_counter()
                rows = await store.list_executions(
                    limit=PAGE, before=before, summary=True, **filters
                )
                times.append(ms(time.perf_counter() - began))
                if len(rows) < PAGE:
                    break
                before = (rows[-1].created_at, rows[-1].id)
            if round_:
                walk.times.append(times)
    finally:
        await store.close()
    return walk


@dataclass
class ListFigures:
    rows: int
    seeded: dict[str, float]
    walks: dict[str, dict[str, Walk]]
    """filter label -> "UI", "REST", "store" -> its walk."""
    ui_note: str = ""
    warnings: list[str] = field(default_factory=list)


def measure_list(args: argparse.Namespace, tmp: Path) -> ListFigures:
    path = Path(args.db) if args.db else tmp / "list.db"
    if path.exists():
        print(f"list: reusing {path} (not seeded again)", file=sys.stderr)
        seeded = {"seconds": 0.0, "mb": path.stat().st_size / 1e6, "big_kb": 0.0}
    else:
        print(f"list: seeding {args.rows:,} executions into {path} ...", file=sys.stderr)
        seeded = asyncio.run(seed_store(path, args.rows, args.big_every, args.nodes))
        seeded["mb"] = path.stat().st_size / 1e6
    figures = ListFigures(args.rows, seeded, {})
    logs = tmp / "list"
    logs.mkdir()
    with (
        running(logs, f"sqlite:///{path}", engines=0) as processes,
        httpx.Client(base_url=processes.http, timeout=60) as http,
    ):
        for name in WORKFLOWS:
            for version in VERSIONS:
                register(http, chain(name, version))
        for label, filters in FILTERS.items():
            print(f"list: {label} ...", file=sys.stderr)
            rest, ui = Walk(), Walk()
            for round_ in range(args.rounds + 1):  # the first one warms up
                times, newest = rest_walk(http, filters, args.pages)
                if round_:
                    rest.times.append(times)
                if figures.ui_note:
                    continue
                times, note = ui_walk(http, filters, args.pages)
                if note:
                    figures.ui_note = note
                    continue
                if round_:
                    ui.times.append(times)
                elif newest and newest not in http.get(_ui_url(filters)).text:
                    figures.warnings.append(
                        f"the UI's first page of {label} does not show the newest execution "
                        f"{newest} (the REST list's first row)"
                    )
            figures.walks[label] = {"UI": ui, "REST": rest}
    for label, filters in FILTERS.items():
        figures.walks[label]["store"] = asyncio.run(
            store_walks(path, filters, args.pages, args.rounds)
        )
    return figures


def _ui_url(filters: dict[str, str]) -> str:
    return "/ui/executions" + (f"?{urlencode(filters)}" if filters else "")


def report_list(args: argparse.Namespace, figures: ListFigures) -> None:
    seeded = figures.seeded
    print()
    how = f"{seeded['mb']:,.0f} MB, " + (
        f"seeded in {seeded['seconds']:.1f} s; one in {args.big_every} with a result of "
        f"{seeded['big_kb']:,.0f} KB"
        if seeded["seconds"]
        else f"reused: {args.db}"
    )
    print(
        f"execution list: {figures.rows:,} executions in SQLite ({how}), {PAGE} per page, up "
        f"to {args.pages} pages deep, {args.rounds} rounds; ms from request sent to response "
        "read (loopback)"
    )
    print(f"  {'filter':34} {'list':6} {'first p50':>9} {'p50':>7} {'p95':>7} {'pages':>6}")
    worst_ui = 0.0
    for label, walks in figures.walks.items():
        for kind in ("UI", "REST", "store"):
            walk = walks[kind]
            shown = label if kind == "UI" else ""
            if not walk.all:
                print(f"  {shown:34} {kind:6} {'-':>9} {'-':>7} {'-':>7} {'-':>6}")
                continue
            p50 = statistics.median(walk.all)
            if kind == "UI":
                worst_ui = max(worst_ui, p50)
            pages = max(len(t) for t in walk.times)
            print(
                f"  {shown:34} {kind:6} {statistics.median(walk.first):9.2f} {p50:7.2f} "
                f"{percentile(walk.all, 95):7.2f} {pages:6}"
            )
        ui, rest = walks["UI"].all, walks["REST"].all
        if ui and rest:
            ratio = statistics.median(ui) / statistics.median(rest)
            print(f"  {'':34} {'UI / REST p50':>24} {ratio:6.2f}x")
    if figures.ui_note:
        print(f"  UI list not measured: {figures.ui_note}")
    for warning in figures.warnings:
        print(f"  warning: {warning}")
    target = f"target: list page p50 <= {TARGET_LIST_MS:.0f} ms at {figures.rows:,} executions"
    if not worst_ui:
        print(f"{target}: not measured (no UI list page)")
    else:
        verdict = "MET" if worst_ui <= TARGET_LIST_MS else "MISS"
        print(f"{target}: {verdict} (worst filter p50 {worst_ui:.1f} ms)")
    if figures.rows < 100_000:
        print(f"  (with --rows {figures.rows:,}: the target is for 100,000)")


# --- the graph ---------------------------------------------------------------------------------


@dataclass
class Load:
    html_ms: float
    ready_ms: float | None
    zoom_ms: float | None = None
    pan_ms: float | None = None
    inert: list[str] = field(default_factory=list)
    """The gestures that changed nothing in ``#graph`` (their time means nothing then)."""


@dataclass
class GraphFigures:
    nodes: int
    ids: dict[str, str] = field(default_factory=dict)
    """page label -> execution id."""
    loads: dict[str, list[Load]] = field(default_factory=dict)
    rest_ms: dict[str, float] = field(default_factory=dict)
    """page label -> GET /api/v1/executions/ID, median ms."""
    note: str = ""


def run_to_completion(http: httpx.Client, workflow: str, nodes: int) -> str:
    response = http.post(
        "/api/v1/executions",
        params={"wait": "true", "timeout": "120"},
        json={"workflow": workflow},
    )
    body = response.json()
    if response.status_code != 200 or body.get("status") != "completed":
        raise WrongResult(f"{workflow}: {response.status_code} {json.dumps(body)[:500]}")
    done = sum(1 for n in body["nodes"].values() if n["status"] == "completed")
    if done != nodes:
        raise WrongResult(f"{workflow}: {done} nodes completed, not {nodes}")
    return str(body["id"])


def browser_missing(chromium: str) -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed in this venv (a dev dependency: scripts/_venv.sh)"
    if not Path(chromium).exists():
        return f"no Chromium at {chromium} (--chromium PATH)"
    return ""


def measure_graph(args: argparse.Namespace, tmp: Path) -> GraphFigures:
    figures = GraphFigures(args.nodes)
    logs = tmp / "graph"
    logs.mkdir()
    with (
        running(logs, f"sqlite:///{logs / 'weir.db'}", engines=1) as processes,
        httpx.Client(base_url=processes.http, timeout=180) as http,
    ):
        processes.engines_ready(http)
        register(http, fanout(FANOUT, args.nodes))
        register(http, chain(SINGLE, nodes=1))
        one = run_to_completion(http, SINGLE, 1)
        many = run_to_completion(http, FANOUT, args.nodes)
        figures.ids = {
            "1 node": one,
            f"{args.nodes:,} nodes": many,
            f"{args.nodes:,} nodes ?{EXPAND_ALL}": many,
        }
        for label, execution_id in figures.ids.items():
            times = []
            for _ in range(args.loads):
                began = time.perf_counter()
                http.get(f"/api/v1/executions/{execution_id}").raise_for_status()
                times.append(ms(time.perf_counter() - began))
            figures.rest_ms[label] = statistics.median(times)
        probe = http.get(f"/ui/executions/{many}")
        if probe.status_code != 200:
            figures.note = f"GET /ui/executions/{many} answered {probe.status_code}" + (
                ": not there yet (the UI lands on main: merge it)"
                if probe.status_code == 404
                else ""
            )
            return figures
        missing = browser_missing(args.chromium)
        if missing:
            figures.note = missing
            return figures
        print("graph: loading the pages in Chromium ...", file=sys.stderr)
        figures.loads = browse(processes.http, figures.ids, args)
    return figures


def browse(base: str, ids: dict[str, str], args: argparse.Namespace) -> dict[str, list[Load]]:
    from playwright.sync_api import sync_playwright

    loads_: dict[str, list[Load]] = {label: [] for label in ids}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=ARGS)
        try:
            for round_ in range(args.loads + 1):  # the first round warms up
                for label, execution_id in ids.items():
                    url = f"{base}/ui/executions/{execution_id}"
                    if label.endswith(EXPAND_ALL):
                        url += f"?{EXPAND_ALL}"
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    try:
                        page = context.new_page()
                        page.add_init_script(INSTRUMENT)
                        response = page.goto(url, wait_until="domcontentloaded")
                        if response is None or response.status != 200:
                            status = response.status if response else "no response"
                            raise WrongResult(f"{url} answered {status}")
                        load = one_load(page)
                    finally:
                        context.close()
                    if round_:
                        loads_[label].append(load)
        finally:
            browser.close()
    return loads_


def one_load(page: Any) -> Load:
    """Wait for the instrument to note ``data-ready``, then zoom and pan once."""
    # Polled from here: each evaluate runs in the page's current document, where
    # ``wait_for_function`` started at the navigation's commit missed one in three.
    state = "[performance.getEntriesByType('navigation')[0]?.responseEnd, window.__weirReady]"
    deadline = time.monotonic() + READY_TIMEOUT_MS / 1000
    html, ready = page.evaluate(state)
    while ready is None and time.monotonic() < deadline:
        time.sleep(0.01)
        html, ready = page.evaluate(state)
    load = Load(float(html or 0.0), None if ready is None else float(ready))
    if ready is not None:
        took, changed = page.evaluate(ZOOM)
        load.zoom_ms = float(took)
        if not changed:
            load.inert.append("zoom")
        page.evaluate("window.__weirAfterPaint()")
        took, changed = pan(page)
        load.pan_ms = float(took)
        if not changed:
            load.inert.append("pan")
    return load


def pan(page: Any) -> tuple[float, bool]:
    """Start a drag on the graph's centre with the real mouse (press, move 10 px: the page
    takes it for a drag and captures the pointer), time one move dispatched in the page to
    ``PAN`` from there, release."""
    graph = page.locator("#graph")
    graph.scroll_into_view_if_needed()
    box = graph.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 10, y + 5)
    page.evaluate("window.__weirAfterPaint()")
    took, changed = page.evaluate(PAN_STEP, list(PAN))
    page.mouse.up()
    return float(took), bool(changed)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present and len(present) == len(values) else None


def report_graph(args: argparse.Namespace, figures: GraphFigures) -> None:
    print()
    print(
        f"execution page in headless Chromium: a fan-out of {figures.nodes:,} no-op nodes "
        f"beside 1 node; median of {args.loads} loads, each in a fresh context (nothing "
        "cached); ms from navigation start"
    )
    header = f"  {'page':28} {'REST JSON':>9} {'HTML':>7} {'ready':>8} {'x 1 node':>8}"
    print(header + f" {'zoom':>7} {'pan':>7}")
    base: float | None = None
    ready_many: float | None = None
    for label in figures.ids:
        loads_ = figures.loads.get(label, [])
        rest = f"{figures.rest_ms[label]:9.2f}"
        if not loads_:
            print(f"  {label:28} {rest} {'-':>7} {'-':>8} {'-':>8} {'-':>7} {'-':>7}")
            continue
        html = statistics.median(load.html_ms for load in loads_)
        ready = _median([load.ready_ms for load in loads_])
        zoom = _median([load.zoom_ms for load in loads_])
        pan = _median([load.pan_ms for load in loads_])
        if label == "1 node":
            base = ready
        elif not label.endswith(EXPAND_ALL):
            ready_many = ready

        def cell(value: float | None, width: int) -> str:
            return f"{value:{width}.1f}" if value is not None else f"{'never':>{width}}"

        ratio = f"{ready / base:7.2f}x" if ready is not None and base else f"{'-':>8}"
        print(
            f"  {label:28} {rest} {html:7.1f} {cell(ready, 8)} {ratio} "
            f"{cell(zoom, 7)} {cell(pan, 7)}"
        )
    if figures.note:
        print(f"  UI execution page not measured: {figures.note}")
    never = [
        label for label, loads_ in figures.loads.items() if any(not x.ready_ms for x in loads_)
    ]
    if never:
        print(f"  #graph never got data-ready within {READY_TIMEOUT_MS / 1000:.0f} s: {never}")
    for label, loads_ in figures.loads.items():
        for gesture in ("zoom", "pan"):
            inert = sum(1 for load in loads_ if gesture in load.inert)
            if inert:
                print(f"  warning: on {label}, the {gesture} changed nothing in #graph ({inert}x)")
    target = f"target: {figures.nodes:,}-node page ready <= {TARGET_READY_S:.0f} s"
    if ready_many is None:
        print(f"{target}: not measured")
    else:
        verdict = "MET" if ready_many <= TARGET_READY_S * 1000 else "MISS"
        print(f"{target}: {verdict} ({ready_many / 1000:.2f} s)")


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="5,000 rows, 3 pages, 1 round; 200 nodes, 2 loads"
    )
    parser.add_argument("--only", choices=("list", "graph"), help="one part only")
    parser.add_argument("--rows", type=int, help="executions seeded (100,000)")
    parser.add_argument("--big-every", type=int, default=100, help="one 1,000-node result in N")
    parser.add_argument("--pages", type=int, help="pages deep per walk (21: the first + 20)")
    parser.add_argument("--rounds", type=int, help="timed walks per filter and list (3)")
    parser.add_argument("--nodes", type=int, help="nodes of the fan-out (1,000)")
    parser.add_argument("--loads", type=int, help="page loads timed per page (5)")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the browser ({CHROMIUM})")
    parser.add_argument(
        "--db", help="the list's SQLite file: seeded when missing, reused (and kept) when not"
    )
    args = parser.parse_args()
    args.rows = args.rows or (5_000 if args.quick else 100_000)
    args.pages = args.pages or (3 if args.quick else 21)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.nodes = args.nodes or (200 if args.quick else 1_000)
    args.loads = args.loads or (2 if args.quick else 5)
    if args.nodes < 3:
        parser.error("--nodes must be at least 3")
    steps: list[tuple[Callable[..., Any], Callable[..., None]]] = []
    if args.only in (None, "list"):
        steps.append((measure_list, report_list))
    if args.only in (None, "graph"):
        steps.append((measure_graph, report_graph))
    with tempfile.TemporaryDirectory(prefix="weir-bench-ui-") as tmp:
        try:
            figures = [(measure(args, Path(tmp)), report) for measure, report in steps]
        except WrongResult as exc:
            print(f"WRONG RESULT: {exc}", file=sys.stderr)
            return 1
    for result, report in figures:
        report(args, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
