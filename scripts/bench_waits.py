"""Long-wait benchmark (``scripts/bench waits``; not a test).

Issue 17, "Figures for the closing note": memory per parked execution (orchestrator RSS with
10,000 parked) and the resume latency from a signal to the next node started, p50/p99.

Real processes on 127.0.0.1, fresh for every round: ``weir orchestrator`` (SQLite store in a
temporary directory unless ``--store``) and two ``weir engine`` processes with ``CAPACITY=50``
and ``PARK_AFTER=200ms``. One workflow, ``bench-waits-approval``: ``ask`` (``wait: {signal:
approve}``, ``next: {AGREE: done}``) -> ``done`` (``noop: {}``). The client is the SDK's; one
``WatchEvents`` stream on the workflow (``execution.parked``, ``task.scheduled``,
``node.started``, the terminal events) tells the benchmark what happened, matched by execution
id. Each round:

1. **Warm-up**: ``WARM_UP`` executions parked, signalled and completed, and a few unparked
   resumes; then the processes settle (``SETTLE`` seconds, no load) and their RSS is read
   (``VmRSS`` in ``/proc/PID/status``).
2. **Parking**: N executions started, in two halves (``START_CONCURRENCY`` StartExecution calls
   in flight, at most ``WINDOW`` started and not yet parked, so the orchestrator's queue stays
   far from its limit), each half until every one has announced ``execution.parked``, the
   orchestrator lists them ``waiting`` (REST, paged) and both engines report 0 in flight; RSS
   after each half and its settle. The time the two halves took is shown. The orchestrator's
   growth divided by N is the memory a parked execution costs it (what the process took and did
   not give back: an upper bound on what it keeps); the second half's growth per execution
   shows it without what the first run of this size left behind. The engines should not grow
   with N: a parked execution holds none of their memory.
3. **Resume latency**, K samples, one signal at a time (clean latencies: nothing else runs), from
   just before the ``signal`` call to the ``node.started`` event of ``done`` in hand; alternating
   with the **baseline**: a new execution of the same workflow signalled as soon as its wait is
   open on the orchestrator (its ``task.scheduled`` event), so its engine still holds it
   (``PARK_AFTER`` has not passed): the same signal path without the re-placement. The time to
   the node's own start stamp (``node.started``'s ``at``, the engine's clock: same machine) is
   shown too, without the event's trip to the client.
4. The other N - K parked executions are signalled (``START_CONCURRENCY`` in flight) and every
   execution must complete; then RSS once more.

Every execution's result is checked (``GetExecution``): completed, path ``[ask, done]``,
``ask``'s output the data of its own signal; a parked one was placed twice, a baseline one once.
A wrong result stops the benchmark with exit status 1.

``--tracemalloc`` then parks N once more with the orchestrator and engine e1 under
``tracemalloc`` and prints what each still holds for them after a full collection, by the
weir source line that allocated it (slow: not the headline figures).

Targets (printed MET/MISS, not an exit status): ``TARGET_BYTES`` per parked execution in the
orchestrator, engines' RSS growth <= ``TARGET_ENGINE_MB``, parked resume p50 <=
``TARGET_RATIO`` x the unparked p50.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import bench_e2e
import httpx
from bench_e2e import ROOT, free_port, percentile
from weir import Client
from weir.proto.v1 import engine_pb2, orchestrator_pb2

from orchestrator.errors import RpcError

WORKFLOW = "bench-waits-approval"
DEFINITION = json.dumps(
    {
        "apiVersion": "weir/v1",
        "kind": "Workflow",
        "name": WORKFLOW,
        "version": "1.0.0",
        "description": "scripts/bench waits: a signal wait, then a no-op",
        "nodes": [
            {"id": "ask", "wait": {"signal": "approve"}, "next": {"AGREE": "done"}},
            {"id": "done", "noop": {}},
        ],
    }
)
PATH = ["ask", "done"]
CAPACITY = 50
PARK_AFTER = "200ms"
START_CONCURRENCY = 200
"""StartExecution (and, when resuming the rest, SignalExecution) calls in flight."""
WINDOW = 2_000
"""Executions started and not yet parked, at most: the orchestrator's queue holds 10,000."""
WARM_UP = 1_000
"""Executions parked, signalled and completed before the first RSS reading: the servers'
allocators reach the size that this kind of work at this concurrency needs (after 200, the
engines still grew 5-7 MB with 10,000 or 20,000 parked alike), so that what grows after is what
N parked cost."""
NOISY_BELOW = 5_000
"""Below this N, a per-execution RSS figure is mostly the noise of a reading (+-1 MB)."""
SETTLE = 2.0
"""Seconds without load before each RSS reading: the servers finish what they were doing."""
DEADLINE = 600.0
"""Seconds any phase may take at most."""
SAMPLE_TIMEOUT = 30.0
COMPLETED = engine_pb2.EXECUTION_STATUS_COMPLETED
EVENTS = [
    "execution.parked",
    "task.scheduled",
    "node.started",
    "execution.completed",
    "execution.failed",
    "execution.cancelled",
]
TARGET_BYTES = 8_000
"""Orchestrator memory per parked execution; see BENCHMARKS.md, "Long waits"."""
TARGET_ENGINE_MB = 5.0
"""Engines' RSS growth with N parked: a parked execution holds no engine memory."""
TARGET_RATIO = 3.0
"""Parked resume p50 / unparked resume p50."""
TRACE_TOP = 12
TRACE_FRAMES = 8
"""Frames kept per allocation: enough to get from a dataclass ``__init__`` or the standard
library back to the weir line that made the object."""
TRACED_SERVERS = ("orchestrator", "e1")
T = TypeVar("T")

TRACED = """\
import gc, os, signal, sys, tracemalloc
_dumps = [0]
def _dump(signum, frame):
    gc.collect()
    if not tracemalloc.is_tracing():
        tracemalloc.start(int(os.environ["WEIR_BENCH_TRACE_FRAMES"]))
    path = os.environ["WEIR_BENCH_TRACE"] + f".{_dumps[0]}"
    _dumps[0] += 1
    tracemalloc.take_snapshot().dump(path + ".tmp")
    os.rename(path + ".tmp", path)
signal.signal(signal.SIGUSR1, _dump)
from orchestrator.cli import main
main(args=sys.argv[1:], prog_name="weir")
"""
"""``python -c TRACED orchestrator`` (or ``engine``): the server, traced by tracemalloc from the
first SIGUSR1 on (start-up is not slowed down); each SIGUSR1 dumps a snapshot, after a full
collection, to ``$WEIR_BENCH_TRACE.<n>``. Snapshot n minus snapshot 0 is what was allocated
since and is still alive."""


class WrongResult(Exception):
    """An execution that did not do what it should: the benchmark stops (exit status 1)."""


# --- processes -------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """The process's resident set (``VmRSS``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Proc(bench_e2e.Server):
    """One server process, its output in a log file; ``traced``: under tracemalloc, snapshots
    on demand (``snapshot``)."""

    def __init__(
        self, name: str, command: str, env: dict[str, str], logs: Path, *, traced: bool = False
    ) -> None:
        self.trace = logs / f"trace-{name}"
        self._snapshots = 0
        launcher = None
        if traced:
            trace_env = {
                "WEIR_BENCH_TRACE": str(self.trace),
                "WEIR_BENCH_TRACE_FRAMES": str(TRACE_FRAMES),
            }
            launcher = (TRACED, trace_env)
        super().__init__(name, command, env, logs, None, launcher=launcher)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    async def snapshot(self) -> tracemalloc.Snapshot:
        """A traced server's next tracemalloc snapshot (SIGUSR1, then its file)."""
        path = self.trace.with_name(f"{self.trace.name}.{self._snapshots}")
        self._snapshots += 1
        self.popen.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 120
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} wrote no tracemalloc snapshot")
            self.listening()  # raises if it died
            await asyncio.sleep(0.1)
        return tracemalloc.Snapshot.load(str(path))


class Cluster:
    """An orchestrator and two engines that park, started together, stopped in ``stop()``."""

    def __init__(self, logs: Path, store_url: str, *, traced: bool) -> None:
        self.logs = logs
        self.store_url = store_url
        self.traced = traced
        self.port = free_port()
        self.http_port = free_port()
        self.engines: list[Proc] = []
        self.orchestrator: Proc | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def servers(self) -> list[Proc]:
        return [*self.engines, *([self.orchestrator] if self.orchestrator else [])]

    async def start(self, client: Client) -> None:
        """Engines, then the orchestrator; return when it has both engines ready."""
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports, 1):
            env = {
                "ENGINE_ID": f"e{i}",
                "PORT": str(port),
                "BIND_ADDRESS": "127.0.0.1",
                "METRICS_PORT": "0",
                "CAPACITY": str(CAPACITY),
                "PARK_AFTER": PARK_AFTER,
                "SHUTDOWN_GRACE_PERIOD": "2s",
            }
            traced = self.traced and f"e{i}" in TRACED_SERVERS
            self.engines.append(Proc(f"e{i}", "engine", env, self.logs, traced=traced))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening(self.engines), 0.5)
        env = {
            "ORCHESTRATOR_ID": "bench",
            "GRPC_PORT": str(self.port),
            "HTTP_PORT": str(self.http_port),
            "BIND_ADDRESS": "127.0.0.1",
            "DISCOVERY": "static",
            "ENGINES": ",".join(f"127.0.0.1:{p}" for p in ports),
            "ENGINE_HEALTH_CHECK_INTERVAL": "2s",
            "STORE_URL": self.store_url,
        }
        self.orchestrator = Proc("orchestrator", "orchestrator", env, self.logs, traced=self.traced)
        await self._listening(self.servers)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(RpcError):
                engines = await client.engines()
                if sum(1 for e in engines if e.healthy and e.state == bench_e2e.READY) >= 2:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("engines did not become ready:\n" + self.dump())
            await asyncio.sleep(0.05)

    async def _listening(self, servers: list[Proc]) -> None:
        deadline = time.monotonic() + 30
        while not all(s.listening() for s in servers):
            if time.monotonic() > deadline:
                raise RuntimeError("servers did not start listening:\n" + self.dump())
            await asyncio.sleep(0.02)

    def rss(self) -> dict[str, int]:
        return {s.name: s.rss() for s in self.servers}

    async def snapshots(self) -> dict[str, tracemalloc.Snapshot]:
        """A tracemalloc snapshot of each traced server."""
        traced = [s for s in self.servers if s.name in TRACED_SERVERS]
        return {s.name: await s.snapshot() for s in traced}

    def stop(self) -> None:
        bench_e2e.stop_all(self.servers)

    def dump(self) -> str:
        return bench_e2e.dump(self.servers)


# --- the client side -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    arrived: float
    """``time.perf_counter()`` when the event reached this client."""
    stamped: float
    """The event's own time (``at``, Unix seconds)."""


class Watch:
    """One WatchEvents stream on the workflow: the first event of each (kind, execution)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: dict[tuple[str, str], Seen] = {}
        self.counts: dict[str, int] = {}
        self.on_parked: Callable[[str], None] | None = None
        self._waiters: dict[tuple[str, str], asyncio.Future[Seen]] = {}
        self._missing: dict[str, set[str]] = {}
        """Per kind: the executions ``until_all`` waits for that have not had that event."""
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None

    @staticmethod
    def kind(event: orchestrator_pb2.Event) -> str:
        """``node.started:done`` for a node event, else the event type."""
        return f"{event.type}:{event.node}" if event.type == "node.started" else event.type

    def start(self) -> None:
        self._task = asyncio.create_task(self._read(), name="watch")

    async def _read(self) -> None:
        try:
            async for event in self.client.events(workflow=WORKFLOW, types=EVENTS):
                arrived = time.perf_counter()
                key = (self.kind(event), event.execution_id)
                if key in self.seen:
                    continue
                seen = Seen(arrived, event.at.seconds + event.at.nanos / 1e9)
                self.seen[key] = seen
                self.counts[key[0]] = self.counts.get(key[0], 0) + 1
                missing = self._missing.get(key[0])
                if missing is not None:
                    missing.discard(key[1])
                waiter = self._waiters.pop(key, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(seen)
                if key[0] == "execution.parked" and self.on_parked is not None:
                    self.on_parked(key[1])
                self._changed.set()
            raise RuntimeError("the orchestrator ended the WatchEvents stream")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed = exc
            self._changed.set()
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_exception(exc)

    def check(self) -> None:
        if self.failed is not None:
            raise RuntimeError(f"WatchEvents stream failed: {self.failed!r}")

    async def wait(self, kind: str, execution_id: str, within: float = SAMPLE_TIMEOUT) -> Seen:
        """The first ``kind`` event of ``execution_id``, waiting for it up to ``within`` s."""
        self.check()
        key = (kind, execution_id)
        if key in self.seen:
            return self.seen[key]
        waiter = self._waiters.get(key)
        if waiter is None:
            waiter = self._waiters[key] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), within)
        except TimeoutError:
            raise WrongResult(
                f"execution {execution_id}: no {kind} within {within:.0f} s"
            ) from None

    async def until_all(
        self, kind: str, ids: list[str], then: Callable[[], Awaitable[bool]] | None = None
    ) -> None:
        """Wait until every one of ``ids`` has had a ``kind`` event and then ``then()`` holds
        (polled on every event and at least every 0.2 s), for ``DEADLINE`` seconds at most."""
        missing = self._missing[kind] = {i for i in ids if (kind, i) not in self.seen}
        deadline = time.monotonic() + DEADLINE
        try:
            while missing or (then is not None and not await then()):
                self.check()
                if time.monotonic() > deadline:
                    raise WrongResult(
                        f"{kind}: {len(missing):,} of {len(ids):,} executions without it after "
                        f"{DEADLINE:.0f} s" + (", and the rest not settled" if not missing else "")
                    )
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.2)
        finally:
            del self._missing[kind]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def bounded(calls: list[Coroutine[Any, Any, T]], limit: int = START_CONCURRENCY) -> list[T]:
    """Await ``calls`` with at most ``limit`` in flight."""
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Coroutine[Any, Any, T]) -> T:
        async with semaphore:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def waiting_count(http: httpx.AsyncClient) -> int:
    """Executions of the workflow the orchestrator lists as ``waiting`` (REST, every page)."""
    count, token = 0, ""
    for _ in range(10_000):
        params = {"workflow": WORKFLOW, "status": "waiting", "limit": "1000"}
        if token:
            params["page_token"] = token
        response = await http.get("/api/v1/executions", params=params)
        response.raise_for_status()
        page = response.json()
        count += len(page["executions"])
        token = page.get("next_page_token") or ""
        if not token:
            break
    return count


def data_of(execution_id: str) -> dict[str, str]:
    return {"for": execution_id}


async def signal_one(client: Client, execution_id: str) -> None:
    receipt = await client.signal(
        execution_id, "approve", outcome="AGREE", data=data_of(execution_id)
    )
    if receipt.node != "ask":
        raise WrongResult(
            f"execution {execution_id}: the signal was not taken by 'ask' at once "
            f"(receipt node {receipt.node!r})"
        )


async def park(
    client: Client, http: httpx.AsyncClient, watch: Watch, n: int, waiting: int
) -> list[str]:
    """Start ``n`` executions and return their ids once every one is parked (and the
    orchestrator lists ``waiting`` in all)."""
    window = asyncio.Semaphore(WINDOW)
    watch.on_parked = lambda _: window.release()

    async def start() -> str:
        await window.acquire()
        return (await client.start(WORKFLOW)).id

    try:
        ids = await bounded([start() for _ in range(n)])

        async def engines_idle() -> bool:
            return sum(e.in_flight for e in await client.engines()) == 0

        await watch.until_all("execution.parked", ids, then=engines_idle)
    finally:
        watch.on_parked = None
    listed = await waiting_count(http)
    if listed != waiting:
        raise WrongResult(f"{waiting} executions parked, the orchestrator lists {listed} waiting")
    return ids


async def resume_parked(client: Client, watch: Watch, execution_id: str) -> tuple[float, float]:
    """Signal a parked execution: (seconds to ``done``'s event in hand, to its start stamp)."""
    began, wall = time.perf_counter(), time.time()
    await signal_one(client, execution_id)
    seen = await watch.wait("node.started:done", execution_id)
    return seen.arrived - began, seen.stamped - wall


async def resume_unparked(client: Client, watch: Watch) -> tuple[str, float, float]:
    """Start an execution, signal it once its wait is open, before it can park: (id, seconds
    to ``done``'s event in hand, to its start stamp)."""
    execution_id = (await client.start(WORKFLOW)).id
    await watch.wait("task.scheduled", execution_id)
    began, wall = time.perf_counter(), time.time()
    await signal_one(client, execution_id)
    seen = await watch.wait("node.started:done", execution_id)
    if ("execution.parked", execution_id) in watch.seen:
        raise WrongResult(f"baseline execution {execution_id} parked: PARK_AFTER too short?")
    return execution_id, seen.arrived - began, seen.stamped - wall


def problems(e: orchestrator_pb2.Execution, parked: bool) -> list[str]:
    """What is wrong with a finished execution: not completed, another path than [ask, done],
    ``ask``'s output not its own signal's data, placed once though parked or twice though not."""
    found = []
    if e.status != COMPLETED:
        error = str(e.error).strip() if e.HasField("error") else ""
        found.append(f"status {engine_pb2.ExecutionStatus.Name(e.status)} {error}".strip())
    if list(e.path) != PATH:
        found.append(f"path {list(e.path)}")
    ask = e.nodes.get("ask")
    output = json.loads(ask.output_json) if ask is not None and ask.output_json else None
    if output != data_of(e.id):
        found.append(f"ask's output {output!r}, not its signal's data")
    if parked != (e.placements >= 2):
        found.append(f"{'parked' if parked else 'unparked'}, yet placed {e.placements} time(s)")
    return found


async def check_all(client: Client, parked: list[str], unparked: list[str]) -> None:
    """``problems`` of every execution, read back with ``GetExecution``."""

    async def one(execution_id: str, was_parked: bool) -> str | None:
        found = problems(await client.execution(execution_id), was_parked)
        return f"execution {execution_id}: " + "; ".join(found) if found else None

    calls = [one(i, True) for i in parked] + [one(i, False) for i in unparked]
    wrong = [p for p in await bounded(calls) if p is not None]
    if wrong:
        raise WrongResult(f"{len(wrong)} wrong result(s), e.g. " + " | ".join(wrong[:3]))


# --- one round -------------------------------------------------------------------------------


@dataclass
class Round:
    rss: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per moment ("before", "parked", "after"): each process's RSS in bytes."""
    park_seconds: float = 0.0
    resume_seconds: float = 0.0
    """Signalling the other N - K parked executions, to every one completed."""
    latency: dict[str, list[float]] = field(default_factory=dict)
    """Per kind ("parked", "unparked", and the same with ":stamp"): seconds, one per sample."""


async def settled_rss(cluster: Cluster) -> dict[str, int]:
    await asyncio.sleep(SETTLE)
    return cluster.rss()


async def one_round(
    args: argparse.Namespace, tmp: Path, number: int, trace: bool = False
) -> tuple[Round, list[dict[str, tracemalloc.Snapshot]]]:
    n, k = args.executions, args.sample
    logs = tmp / f"round-{number}"
    logs.mkdir()
    result = Round()
    snapshots: list[dict[str, tracemalloc.Snapshot]] = []
    async with bench_e2e.store_url(args.store, logs, args.postgres_admin) as url:
        cluster = Cluster(logs, url, traced=trace)
        watch: Watch | None = None
        try:
            async with (
                Client(cluster.address, timeout=60.0) as client,
                httpx.AsyncClient(base_url=cluster.http, timeout=60.0) as http,
            ):
                began = time.monotonic()
                await cluster.start(client)
                await client.register(DEFINITION)
                watch = Watch(client)
                watch.start()
                print(f"cluster up in {time.monotonic() - began:.1f} s", file=sys.stderr)

                warm = await park(client, http, watch, min(WARM_UP, n), min(WARM_UP, n))
                await bounded([signal_one(client, i) for i in warm])
                for _ in range(min(20, k)):
                    await resume_unparked(client, watch)
                await watch.until_all("execution.completed", warm)
                result.rss["before"] = await settled_rss(cluster)
                if trace:
                    snapshots.append(await cluster.snapshots())

                ids = []
                for moment, count in (("half", n // 2), ("parked", n - n // 2)):
                    began = time.perf_counter()
                    ids += await park(client, http, watch, count, len(ids) + count)
                    result.park_seconds += time.perf_counter() - began
                    result.rss[moment] = await settled_rss(cluster)
                print(f"{n:,} parked in {result.park_seconds:.1f} s", file=sys.stderr)
                if trace:
                    snapshots.append(await cluster.snapshots())
                    return result, snapshots

                sample = random.Random(number).sample(ids, k)
                unparked = []
                for i, execution_id in enumerate(sample):
                    for kind in ("parked", "unparked") if i % 2 else ("unparked", "parked"):
                        if kind == "parked":
                            in_hand, stamp = await resume_parked(client, watch, execution_id)
                        else:
                            made, in_hand, stamp = await resume_unparked(client, watch)
                            unparked.append(made)
                        result.latency.setdefault(kind, []).append(in_hand)
                        result.latency.setdefault(f"{kind}:stamp", []).append(stamp)

                began = time.perf_counter()
                chosen = set(sample)
                await bounded([signal_one(client, i) for i in ids if i not in chosen])
                everyone = ids + unparked
                await watch.until_all("execution.completed", everyone)
                result.resume_seconds = time.perf_counter() - began
                failed = watch.counts.get("execution.failed", 0)
                if failed:
                    raise WrongResult(f"{failed} execution(s) failed")
                await check_all(client, ids, unparked)
                result.rss["after"] = await settled_rss(cluster)
        except Exception:
            print(cluster.dump()[-6000:], file=sys.stderr)
            raise
        finally:
            if watch is not None:
                await watch.stop()
            cluster.stop()
    return result, snapshots


# --- figures ---------------------------------------------------------------------------------


def spread(values: list[float], digits: int = 1) -> str:
    """Median (min-max), or the one value; "min..max" when min is negative."""
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.{digits}f}"
    between = ".." if min(values) < 0 else "-"
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}{between}{max(values):,.{digits}f})"


MB = 1024 * 1024


def row(label: str, *cells: str, indent: int = 2) -> None:
    """A table line: the label, then the cells right-aligned, 22 wide each."""
    print(" " * indent + f"{label:<{44 - indent}}" + "".join(f"{c:>22}" for c in cells))


def ratios(top: list[float], bottom: list[float]) -> list[float]:
    """Per-round ratios."""
    return [a / b for a, b in zip(top, bottom, strict=True)]


def report(args: argparse.Namespace, rounds: list[Round]) -> None:
    n, k = args.executions, args.sample
    print(
        f"waits: {n:,} executions parked on wait: {{signal: approve}}, {k} of them resumed one "
        f"signal at a time beside {k} unparked; {len(rounds)} round(s), median (min-max)"
    )
    print(
        f"cluster: orchestrator ({args.store} store) + 2 engines (CAPACITY={CAPACITY}, "
        f"PARK_AFTER={PARK_AFTER}), fresh processes each round; RSS after {SETTLE:.0f} s idle\n"
    )
    names = ("orchestrator", "e1", "e2")

    def rss(moment: str, name: str) -> list[float]:
        return [r.rss[moment][name] / MB for r in rounds]

    def growth(name: str, since: str) -> list[float]:
        return [(r.rss["parked"][name] - r.rss[since][name]) / MB for r in rounds]

    row("memory (RSS), MB", "orchestrator", "engine e1", "engine e2", indent=0)
    for moment, label in (
        ("before", "before (after the warm-up)"),
        ("half", f"{n // 2:,} parked"),
        ("parked", f"{n:,} parked"),
        ("after", "after every execution completed"),
    ):
        row(label, *(spread(rss(moment, name)) for name in names))
    for since, label in (("before", f"growth, 0 -> {n:,} parked"), ("half", "growth, second half")):
        row(label, *(spread(growth(name, since), 2) for name in names))
    per_parked = [g * MB / n for g in growth("orchestrator", "before")]
    second_half = [g * MB / (n - n // 2) for g in growth("orchestrator", "half")]
    engines = [
        max(pair) for pair in zip(growth("e1", "before"), growth("e2", "before"), strict=True)
    ]
    row("orchestrator, bytes per parked execution", spread(per_parked, 0))
    row("  the same, second half only", spread(second_half, 0))
    if n < NOISY_BELOW:
        print(f"  (N < {NOISY_BELOW:,}: RSS moves by whole MB, so bytes per execution is noise)")

    park = [r.park_seconds for r in rounds]
    resume = [r.resume_seconds for r in rounds]
    print()
    row("throughput", "seconds", "executions/s", indent=0)
    row(f"{n:,} started -> all parked", spread(park), spread([n / s for s in park], 0))
    row(
        f"{n - k:,} signalled -> all completed",
        spread(resume),
        spread([(n - k) / s for s in resume], 0),
    )

    def pct(kind: str, q: float) -> list[float]:
        return [percentile(r.latency[kind], q) * 1e3 for r in rounds]

    print()
    row("resume latency, signal -> done started, ms", "p50", "p99", "max", indent=0)
    for clock, label in (("", "event in hand"), (":stamp", "node's start stamp")):
        for kind in ("parked", "unparked"):
            row(f"{kind}, {label}", *(spread(pct(kind + clock, q), 2) for q in (50, 99, 100)))
        row(
            f"parked / unparked, {label}",
            *(
                spread(ratios(pct("parked" + clock, q), pct("unparked" + clock, q)), 2)
                for q in (50, 99)
            ),
        )
    print(
        "signals sent one at a time, nothing else running; unparked = signalled as soon as its "
        "wait is open (task.scheduled), its engine still holding it"
    )

    bytes_, growth_mb = statistics.median(per_parked), statistics.median(engines)
    ratio = statistics.median(ratios(pct("parked", 50), pct("unparked", 50)))
    print("\ntargets (issue 17):")
    for label, figure, met in (
        (
            f"orchestrator bytes per parked execution <= {TARGET_BYTES:,}",
            f"{bytes_:,.0f}",
            bytes_ <= TARGET_BYTES,
        ),
        (
            f"engines' RSS growth, 0 -> N parked, <= {TARGET_ENGINE_MB:.0f} MB",
            f"{growth_mb:.1f} MB",
            growth_mb <= TARGET_ENGINE_MB,
        ),
        (
            f"parked resume p50 <= {TARGET_RATIO:.0f}x unparked p50",
            f"{ratio:.2f}x",
            ratio <= TARGET_RATIO,
        ),
    ):
        print(f"  {label:<52}{figure:>10}  {'MET' if met else 'MISS'}")


def _where(traceback: tracemalloc.Traceback) -> str:
    """The most recent frame in weir's own code (else the most recent frame), and the frame
    that allocated when it is another one: ``executions/record.py:140 < asyncio/locks.py:168``."""
    frames = list(reversed(traceback))  # a Traceback runs from the oldest frame

    def short(frame: tracemalloc.Frame) -> str:
        return "/".join(Path(frame.filename).parts[-2:]) + f":{frame.lineno}"

    def weir(frame: tracemalloc.Frame) -> bool:
        name = frame.filename
        return name.startswith(str(ROOT)) and "/.venv/" not in name and "/scripts/" not in name

    ours = next((f for f in frames if weir(f)), frames[0])
    return short(ours) if ours is frames[0] else f"{short(ours)} < {short(frames[0])}"


def report_trace(snapshots: list[dict[str, tracemalloc.Snapshot]], n: int) -> None:
    """What each traced server still holds for N parked executions, by weir source line."""
    before, after = snapshots
    for name in TRACED_SERVERS:
        sizes: dict[str, list[int]] = {}
        for sign, snapshot in ((-1, before[name]), (1, after[name])):
            kept = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            for trace in kept.traces:
                entry = sizes.setdefault(_where(trace.traceback), [0, 0])
                entry[0] += sign * trace.size
                entry[1] += sign
        total = sum(size for size, _ in sizes.values())
        blocks = sum(count for _, count in sizes.values())
        print(
            f"\ntracemalloc, {name} (a separate run): {total / n:,.0f} bytes in {blocks / n:,.1f} "
            f"blocks per parked execution still allocated after a full collection; "
            f"top {TRACE_TOP} lines:"
        )
        print(f"{'bytes/exec':>11} {'blocks/exec':>12}  allocated at (weir line < where)")
        top = sorted(sizes.items(), key=lambda kv: kv[1][0], reverse=True)[:TRACE_TOP]
        for where, (size, count) in top:
            print(f"{size / n:>11,.0f} {count / n:>12,.2f}  {where}")


async def measure(
    args: argparse.Namespace, tmp: Path
) -> tuple[list[Round], list[dict[str, tracemalloc.Snapshot]]]:
    rounds = []
    for number in range(args.rounds):
        result, _ = await one_round(args, tmp, number)
        rounds.append(result)
        print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    snapshots: list[dict[str, tracemalloc.Snapshot]] = []
    if args.tracemalloc:
        _, snapshots = await one_round(args, tmp, args.rounds, trace=True)
    return rounds, snapshots


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 round, 300 parked, 30 samples")
    parser.add_argument("--executions", type=int, help="N: executions parked at once (10,000)")
    parser.add_argument("--sample", type=int, help="K: resumes timed, each kind (500)")
    parser.add_argument("--rounds", type=int, help="rounds, each with fresh processes (3)")
    parser.add_argument("--store", choices=("sqlite", "memory", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="with --store postgres: a database URL allowed to create a throwaway database",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="then one more parking run with the orchestrator under tracemalloc: where it went",
    )
    args = parser.parse_args()
    args.executions = args.executions or (300 if args.quick else 10_000)
    args.sample = args.sample or (30 if args.quick else 500)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if not 0 < args.sample <= args.executions:
        parser.error("--sample must be between 1 and --executions")
    with tempfile.TemporaryDirectory(prefix="weir-bench-waits-") as tmp:
        try:
            rounds, traced = asyncio.run(measure(args, Path(tmp)))
        except WrongResult as exc:
            print(f"WRONG RESULT: {exc}", file=sys.stderr)
            return 1
    report(args, rounds)
    if traced:
        report_trace(traced, args.executions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
