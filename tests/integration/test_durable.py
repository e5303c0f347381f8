"""Durable state with real processes: kill -9 the orchestrator, restart, nothing is lost.

Runs on both stores: SQLite (a file in the test's directory) and PostgreSQL (a throwaway
database on 127.0.0.1:5432).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.api.convert import execution_from_pb
from tests.integration.cluster import WEIR, Cluster
from tests.integration.workloads import hits_server, long_workflow
from tests.support.poll import eventually
from tests.support.postgres import throwaway_database_sync

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def durable_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    if request.param == "sqlite":
        store_url = f"sqlite:///{tmp_path / 'weir.db'}"
        yield from _cluster(tmp_path, store_url)
    else:
        with throwaway_database_sync() as store_url:
            yield from _cluster(tmp_path, store_url)


def _cluster(tmp_path: Path, store_url: str) -> Iterator[Cluster]:
    c = Cluster(tmp_path, store_url)
    try:
        yield c
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.stop()


async def test_kill_9_the_orchestrator_every_execution_completes_and_no_node_runs_twice(
    durable_cluster: Cluster,
) -> None:
    cluster = durable_cluster
    for name in ("e1", "e2", "e3"):
        cluster.start_engine(name)
    cluster.start_orchestrator()
    with hits_server() as hits:
        async with cluster.client() as client:
            await cluster.wait_ready(client, 3)
            await client.register(long_workflow(steps=5, pause="500ms"))
            started = [await client.start("long", {"url": hits.url}) for _ in range(8)]
            keyed = await client.start("long", {"url": hits.url}, idempotency_key="order-42")
            started.append(keyed)
            await eventually(
                lambda: sum(hits.counts.values()) >= 18,
                within=20,
                what="two rounds of side effects",
            )
        orchestrator = cluster.orchestrator
        assert orchestrator is not None
        orchestrator.signal(signal.SIGKILL)
        assert orchestrator.wait(10) == -signal.SIGKILL
        # The engines go on without it; their results wait, unacknowledged, for a new one.
        await eventually(
            lambda: sum(hits.counts.values()) >= 27,
            within=20,
            what="a third round while it is down",
        )
        cluster.start_orchestrator()
        async with cluster.client() as client:
            again = await client.start("long", {"url": hits.url}, idempotency_key="order-42")
            assert again.id == keyed.id
            results = [execution_from_pb(await client.wait(s.id)) for s in started]
            listed = await client.executions(workflow="long", limit=100)
    assert [r["status"] for r in results] == ["completed"] * 9, [r["error"] for r in results]
    # Re-attached, not re-placed: each execution ran on one engine, each node exactly once.
    assert [r["placements"] for r in results] == [1] * 9
    assert len(hits.counts) == 9 * 5
    assert set(hits.counts.values()) == {1}, {k: n for k, n in hits.counts.items() if n != 1}
    assert {e.id for e in listed} == {s.id for s in started}
    log = cluster.orchestrators[-1].output()
    assert "resumed 9 unfinished executions" in log, log


async def test_an_engine_gone_during_the_restart_gets_its_executions_re_placed(
    durable_cluster: Cluster,
) -> None:
    cluster = durable_cluster
    for name in ("e1", "e2"):
        cluster.start_engine(name)
    cluster.start_orchestrator()
    with hits_server() as hits:
        async with cluster.client() as client:
            await cluster.wait_ready(client, 2)
            await client.register(long_workflow(steps=4, pause="400ms"))
            started = [await client.start("long", {"url": hits.url}) for _ in range(6)]
            await eventually(
                lambda: sum(hits.counts.values()) >= 12,
                within=20,
                what="two rounds of side effects",
            )
            placed = {s.id: (await client.execution(s.id)).engine_id for s in started}
        assert cluster.orchestrator is not None
        cluster.orchestrator.signal(signal.SIGKILL)
        cluster.orchestrator.wait(10)
        victim = sorted(set(placed.values()))[0]
        cluster.engines[victim].signal(signal.SIGKILL)
        cluster.engines[victim].wait(10)
        cluster.start_orchestrator(reattach_timeout="2s")
        async with cluster.client() as client:
            results = [execution_from_pb(await client.wait(s.id)) for s in started]
    assert [r["status"] for r in results] == ["completed"] * 6, [r["error"] for r in results]
    moved = [r for r in results if placed[r["id"]] == victim]
    assert moved and all(r["placements"] == 2 and r["engine"] != victim for r in moved)
    assert all(r["placements"] == 1 for r in results if placed[r["id"]] != victim)
    assert len(hits.counts) == 6 * 4 and max(hits.counts.values()) <= 2


# --- the store cannot be used --------------------------------------------------------------------


def _orchestrator_exit(tmp_path: Path, store_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WEIR, "orchestrator", "--port", "0", "--store", store_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "DISCOVERY": "static", "ENGINES": ""},
    )


@pytest.mark.parametrize(
    ("make_url", "expected"),
    [
        (lambda tmp: _garbage(tmp), "not a database"),
        (lambda tmp: f"sqlite:///{tmp / 'missing' / 'dir' / 'weir.db'}", "missing"),
        (lambda tmp: "postgresql://postgres@127.0.0.1:1/weir", "127.0.0.1:1"),
        (lambda tmp: "postgresql://postgres@127.0.0.1:5432/no_such_weir_db", "no_such_weir_db"),
        (lambda tmp: "mysql://x@y/z", "mysql"),
    ],
    ids=["corrupt-sqlite", "missing-directory", "unreachable-postgres", "no-database", "scheme"],
)
def test_an_unusable_store_is_a_clear_error_and_a_non_zero_exit(
    tmp_path: Path, make_url: object, expected: str
) -> None:
    url = make_url(tmp_path)  # type: ignore[operator]
    done = _orchestrator_exit(tmp_path, url)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert expected in done.stderr, done.stderr


def _garbage(tmp: Path) -> str:
    path = tmp / "corrupt.db"
    path.write_bytes(b"this is not an sqlite database, just some bytes" * 100)
    return f"sqlite:///{path}"


async def test_executions_and_workflows_survive_a_graceful_restart(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        cluster.start_engine("e1")
        cluster.start_orchestrator()
        async with cluster.client() as client:
            await cluster.wait_ready(client, 1)
            await client.register(long_workflow(steps=1, pause="10ms"))
            with hits_server() as hits:
                done = await client.wait((await client.start("long", {"url": hits.url})).id)
        assert cluster.orchestrator is not None
        cluster.orchestrator.stop()
        cluster.start_orchestrator()
        async with cluster.client() as client:
            again = await client.execution(done.id)
            assert execution_from_pb(again) == execution_from_pb(done)
            assert [w.name for w in await client.workflows()] == ["long"]
            events = [e.type async for e in client.events(execution_id=done.id)]
            assert events[0] == "execution.queued" and events[-1] == "execution.completed"
            await eventually(
                lambda: _ready(client),
                within=10,
                what="the engine to be ready again after the restart",
            )
    finally:
        cluster.stop()


async def _ready(client: object) -> bool:
    engines = await client.engines()  # type: ignore[attr-defined]
    return any(e.healthy for e in engines)
