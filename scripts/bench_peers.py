"""Run weir's benchmark workloads on a peer system: Dask distributed or Prefect 3 (not a test).

Usage, under the peers' virtualenv (never weir's; this imports nothing from weir)::

    .venv-peers/bin/python scripts/bench_peers.py dask|prefect

``dask`` starts a ``LocalCluster`` (2 worker processes x 1 thread, loopback, no dashboard) and
an asynchronous ``Client``; ``prefect`` starts a real ``prefect server start`` on a free
loopback port, with a fresh ``PREFECT_HOME`` (SQLite) in a temporary directory, and runs flows
against it from this process. Another process drives the runner over JSON lines:

* startup: ``{"ready": true, "system": "dask", "version": "..."}``;
* then one command per stdin line, one answer per stdout line (``{"error": "Type: msg"}`` if a
  command fails; the runner keeps serving):

  - ``{"op": "dag", "shape": "fanout"|"chain", "tasks": N}`` -> ``{"seconds", "tasks"}``: one
    DAG of N no-op tasks (fanout: root -> N-2 middles -> sink; chain: N tasks in a line), timed
    from handing it to the system until the checked final result is back here;
  - ``{"op": "throughput", "seconds": D, "warmup": W, "window": K}`` ->
    ``{"completed", "failed", "seconds", "rate"}``: K executions of a -> b -> c (x + 1 each,
    from 1) kept in flight for W + D seconds; executions finishing in the last D count;
  - ``{"op": "latency", "rate": R, "seconds": D}`` -> ``{"latencies_ms", "started", "failed"}``:
    open loop, execution i starts at t0 + i / R for D seconds; each latency runs from its start
    call to its result arriving;
  - ``{"op": "quit"}`` or EOF: shut down (no answer) and exit 0. SIGINT/SIGTERM do the same.

Only protocol lines reach stdout: file descriptor 1 is pointed at stderr at startup (so peer
libraries and child processes cannot write to it) and answers go to a private duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Protocol

log = logging.getLogger("bench_peers")

SERVER_START_TIMEOUT = 120.0  # seconds for the Prefect server to answer /api/health
SERVER_STOP_TIMEOUT = 15.0  # seconds between SIGTERM and SIGKILL for the Prefect server
DRAIN_TIMEOUT = 60.0  # seconds to wait for in-flight executions after a measurement
FLOW_THREADS = 64  # Prefect flow runs in flight at once (throughput window, latency backlog)
# For the Prefect server and client: quiet, no analytics, no UI, no prompts or colours.
PREFECT_QUIET = {
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_CLI_PROMPT": "false",
    "PREFECT_CLI_COLORS": "false",
}


# The workload, as plain functions: Dask ships them to its workers; Prefect wraps them in tasks.
def root() -> int:
    """The fan-out's first task."""
    return 1


def middle(x: int) -> int:
    """One of the fan-out's N-2 middle tasks."""
    return x


def sink(xs: list[int]) -> int:
    """The fan-in: how many middle results arrived."""
    return len(xs)


def step(x: int) -> int:
    """A chain link, and each of a, b, c in an execution."""
    return x + 1


def expected(shape: str, tasks: int) -> int:
    """The final result a complete run of ``shape`` must produce."""
    if tasks < 3:
        raise ValueError(f"tasks must be >= 3, got {tasks}")
    if shape == "fanout":
        return tasks - 2
    if shape == "chain":
        return tasks
    raise ValueError(f"unknown shape {shape!r}")


class Peer(Protocol):
    """What the drivers need from a system."""

    version: str

    async def dag(self, shape: str, tasks: int) -> int:
        """Run one DAG; return its final result."""

    async def execute(self) -> int:
        """Run one a -> b -> c execution from 1; return its result."""

    async def aclose(self) -> None:
        """Stop everything this peer started."""


class DaskPeer:
    """A LocalCluster with two single-threaded worker processes and an async Client."""

    def __init__(self, cluster: Any, client: Any, version: str) -> None:
        self._cluster, self._client, self.version = cluster, client, version
        self._runs = itertools.count()

    @classmethod
    async def start(cls) -> DaskPeer:
        """Start the cluster and connect a client."""
        import dask
        import distributed

        logging.getLogger("distributed").setLevel(logging.ERROR)  # its own handler, at INFO
        # Scheduler-side queuing (worker-saturation 1.1) hands 998 root-ish no-ops to the workers
        # a few at a time: fanout 1000 took 1.6 s with it, 0.53 s without. The dask docs name
        # this knob for workloads of many tiny tasks; an expert would turn it off here.
        dask.config.set({"distributed.scheduler.worker-saturation": float("inf")})
        cluster = await distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # No dashboard, but the scheduler's HTTP server (health, metrics) still binds;
            # keep it on loopback and off :8787.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL,
            asynchronous=True,
        )
        client = await distributed.Client(cluster, asynchronous=True)
        return cls(cluster, client, distributed.__version__)

    async def dag(self, shape: str, tasks: int) -> int:
        """Submit a low-level graph dict in one ``Client.get`` and gather the final key.

        Measured here (1000 tasks): ``get`` beat a ``client.submit`` per task for both shapes
        (fanout 0.53 s vs 1.05 s; chain 5.8 s vs 5.9 s). ``get(..., sync=False)`` keeps the
        futures alive: an async ``await client.get(...)`` drops them and the key is cancelled.
        """
        run = f"r{next(self._runs)}"
        graph: dict[str, tuple[Any, ...]]
        if shape == "fanout":
            graph = {f"{run}-root": (root,)}
            graph.update({f"{run}-m{i}": (middle, f"{run}-root") for i in range(tasks - 2)})
            graph[f"{run}-sink"] = (sink, [f"{run}-m{i}" for i in range(tasks - 2)])
            key = f"{run}-sink"
        else:
            graph = {f"{run}-c0": (step, 0)}
            graph.update({f"{run}-c{i}": (step, f"{run}-c{i - 1}") for i in range(1, tasks)})
            key = f"{run}-c{tasks - 1}"
        futures = self._client.get(graph, [key], sync=False)
        (result,) = await self._client.gather(futures)
        return int(result)

    async def execute(self) -> int:
        """Three chained ``submit`` calls (pure=False: fresh keys); await the last future."""
        fa = self._client.submit(step, 1, pure=False)
        fb = self._client.submit(step, fa, pure=False)
        fc = self._client.submit(step, fb, pure=False)
        return int(await fc)

    async def aclose(self) -> None:
        """Close the client, then the cluster (its workers)."""
        await self._client.close()
        await self._cluster.close()


def free_port() -> int:
    """A free TCP port on loopback (racy, as any such probe)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrefectServer:
    """``prefect server start`` in its own process group, state in a temporary PREFECT_HOME."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="bench-prefect-"))
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait (bounded) until /api/health answers."""
        env = {**os.environ, **PREFECT_QUIET, "PREFECT_HOME": str(self.home)}
        env.pop("PREFECT_API_URL", None)
        prefect = Path(sys.executable).with_name("prefect")
        argv = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        log_path = self.home / "server.log"
        log.info("prefect server log: %s", log_path)
        with log_path.open("wb") as out:
            self._proc = subprocess.Popen(
                [*argv, "--no-ui", "--analytics-off"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our own group: a terminal's Ctrl-C reaches us only
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"prefect server exited with {self._proc.returncode}: {tail}")
            health = f"{self.api_url}/health"
            with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=2) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.25)
        raise TimeoutError(f"prefect server not healthy after {SERVER_START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it after a bounded wait; remove home."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("prefect server ignored SIGTERM; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.home, ignore_errors=True)


class PrefectPeer:
    """Flows run in this process against a local Prefect server."""

    def __init__(self, server: PrefectServer) -> None:
        self._server = server
        import prefect
        from prefect import flow, task
        from prefect.cache_policies import NO_CACHE

        self.version = prefect.__version__
        # No caching, no result persistence: every task run really runs, nothing is written.
        opts: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
        t_root, t_middle, t_sink = (task(name=f.__name__, **opts)(f) for f in (root, middle, sink))

        async def astep(x: int) -> int:
            return x + 1

        t_a, t_b, t_c = (task(name=name, **opts)(step) for name in ("a", "b", "c"))
        t_link = task(name="link", **opts)(astep)

        # A sync flow with .submit() (default ThreadPoolTaskRunner): fanout 1000 took 4.7 s,
        # an async flow gathering awaited async tasks 8.3 s (.submit() in an async flow: worse).
        @flow(name="bench-fanout", persist_result=False)
        def fanout(n: int) -> int:
            first = t_root.submit()
            middles = [t_middle.submit(first) for _ in range(n - 2)]
            return int(t_sink.submit(middles).result())

        # An async flow awaiting async tasks in turn: chain 300 took 3.1 s, where sequential
        # calls of sync tasks in a sync flow took 7.4 s and .submit(previous) chains longer.
        @flow(name="bench-chain", persist_result=False)
        async def chain(n: int) -> int:
            x = 0
            for _ in range(n):
                x = await t_link(x)
            return x

        # Sync flows run in threads: window 4 gave 2.6 executions/s, where async flows of async
        # tasks awaited concurrently on this loop gave 1.9-2.1 (windows 1-8), despite the up to
        # 1 s join of its heartbeat thread that ends each sync flow run.
        @flow(name="bench-abc", persist_result=False)
        def abc(x: int) -> int:
            return int(t_c(t_b(t_a(x))))

        self._fanout, self._chain, self._abc = fanout, chain, abc
        self._pool = ThreadPoolExecutor(FLOW_THREADS, thread_name_prefix="flow")

    @classmethod
    async def start(cls) -> PrefectPeer:
        """Start the server, then point Prefect at it before importing it."""
        server = PrefectServer()
        try:
            await asyncio.to_thread(server.start)
            os.environ.update(PREFECT_QUIET)
            os.environ.update(PREFECT_HOME=str(server.home), PREFECT_API_URL=server.api_url)
            return cls(server)
        except BaseException:
            server.stop()
            raise

    async def dag(self, shape: str, tasks: int) -> int:
        """Run the shape's flow once (fanout: a sync flow, in a thread)."""
        if shape == "fanout":
            return int(await asyncio.to_thread(self._fanout, tasks))
        return int(await self._chain(tasks))

    async def execute(self) -> int:
        """One flow run of a -> b -> c, in a thread of our pool."""
        loop = asyncio.get_running_loop()
        return int(await loop.run_in_executor(self._pool, self._abc, 1))

    async def aclose(self) -> None:
        """Drop queued flow runs, stop the server and remove its home."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._server.stop)


async def run_dag(peer: Peer, shape: str, tasks: int) -> dict[str, Any]:
    """Time one DAG and check its result."""
    want = expected(shape, tasks)
    start = time.perf_counter()
    got = await peer.dag(shape, tasks)
    seconds = time.perf_counter() - start
    if got != want:
        raise RuntimeError(f"{shape} of {tasks} returned {got}, expected {want}")
    return {"seconds": seconds, "tasks": tasks}


async def checked(execute: Callable[[], Awaitable[int]]) -> bool:
    """Run one execution; True if it returned 4 (failures are logged, not raised)."""
    try:
        result = await execute()
    except Exception as exc:
        log.warning("execution failed: %s: %s", type(exc).__name__, exc)
        return False
    if result != 4:
        log.warning("execution returned %r, expected 4", result)
    return result == 4


async def run_throughput(peer: Peer, seconds: float, warmup: float, window: int) -> dict[str, Any]:
    """Closed loop: ``window`` lanes, each starting a new execution when its last one ends."""
    begin = time.perf_counter() + warmup
    end = begin + seconds
    completed = failed = 0

    async def lane() -> None:
        nonlocal completed, failed
        while time.perf_counter() < end:
            ok = await checked(peer.execute)
            if begin <= time.perf_counter() < end:
                completed += ok
                failed += not ok

    await asyncio.wait_for(
        asyncio.gather(*(lane() for _ in range(window))), warmup + seconds + DRAIN_TIMEOUT
    )
    rate = completed / seconds
    return {"completed": completed, "failed": failed, "seconds": seconds, "rate": rate}


async def run_latency(peer: Peer, rate: float, seconds: float) -> dict[str, Any]:
    """Open loop: start execution i at t0 + i / rate, whatever has finished; then drain."""
    latencies: list[float | None] = []

    async def one(i: int) -> None:
        start = time.perf_counter()
        if await checked(peer.execute):
            latencies[i] = (time.perf_counter() - start) * 1000.0

    runs: list[asyncio.Task[None]] = []
    t0 = time.perf_counter()
    for i in itertools.count():
        at = t0 + i / rate
        if at >= t0 + seconds:
            break
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        latencies.append(None)
        runs.append(asyncio.create_task(one(i)))
    if runs:
        _, pending = await asyncio.wait(runs, timeout=DRAIN_TIMEOUT)
        for run in pending:
            run.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    done = [ms for ms in latencies if ms is not None]
    return {"latencies_ms": done, "started": len(runs), "failed": len(runs) - len(done)}


async def handle(peer: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    """Answer one command."""
    op = cmd.get("op")
    if op == "dag":
        return await run_dag(peer, str(cmd["shape"]), int(cmd["tasks"]))
    if op == "throughput":
        return await run_throughput(
            peer, float(cmd["seconds"]), float(cmd.get("warmup", 0)), int(cmd["window"])
        )
    if op == "latency":
        return await run_latency(peer, float(cmd["rate"]), float(cmd["seconds"]))
    raise ValueError(f"unknown op {op!r}")


def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str]:
    """Lines of stdin ('' at EOF) from a daemon thread: works for pipes, files and ttys."""
    queue: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


async def serve(system: str, start: Callable[[], Awaitable[Peer]], out: IO[str]) -> None:
    """Start the peer, announce it, answer commands until quit/EOF, stop the peer."""

    def emit(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    started = time.perf_counter()
    peer = await start()
    try:
        log.info("%s %s ready in %.2f s", system, peer.version, time.perf_counter() - started)
        emit({"ready": True, "system": system, "version": peer.version})
        lines = stdin_lines(asyncio.get_running_loop())
        while line := await lines.get():
            if not line.strip():
                continue
            try:
                cmd = json.loads(line)
                if cmd.get("op") == "quit":
                    break
                reply = await handle(peer, cmd)
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            emit(reply)
    finally:
        await peer.aclose()


async def amain(system: str, start: Callable[[], Awaitable[Peer]], out: IO[str]) -> None:
    """Run ``serve``; the first SIGINT/SIGTERM cancels it (cleanup runs), a second exits."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    signalled = False

    def on_signal() -> None:
        nonlocal signalled
        if signalled:
            os._exit(1)
        signalled = True
        main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await serve(system, start, out)
    except asyncio.CancelledError:
        if not signalled:
            raise


def run(system: str, start: Callable[[], Awaitable[Peer]]) -> int:
    """Serve ``system`` (started by ``start``) over stdin/stdout; the exit status.

    Also what ``scripts/bench_weir_worker.py`` runs, so that weir in one process is measured
    by the very same loops as the peers."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    # Answers go to a duplicate of the real stdout; fd 1 (and sys.stdout) now lead to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    asyncio.run(amain(system, start, out))
    return 0


def main() -> int:
    """Entry point: ``bench_peers.py dask|prefect``."""
    peers: dict[str, Callable[[], Awaitable[Peer]]] = {
        "dask": DaskPeer.start,
        "prefect": PrefectPeer.start,
    }
    if len(sys.argv) != 2 or sys.argv[1] not in peers:
        print("usage: bench_peers.py dask|prefect", file=sys.stderr)
        return 2
    return run(sys.argv[1], peers[sys.argv[1]])


if __name__ == "__main__":
    sys.exit(main())
