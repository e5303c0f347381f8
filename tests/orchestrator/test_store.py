"""The store contract on every backend: memory, SQLite (a file in tmp_path), PostgreSQL.

PostgreSQL runs in a throwaway database on 127.0.0.1:5432 per test (``tests/support/postgres``);
the suite requires that server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator.store import (
    EventRow,
    ExecutionRow,
    MemoryStore,
    NodeRunRow,
    SqlStore,
    Store,
    StoreError,
    TaskRow,
    TriggerRow,
    WorkflowRow,
    open_store,
)
from tests.support.net import free_port
from tests.support.postgres import throwaway_database


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL of an empty SQL store."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'weir.db'}"
    else:
        async with throwaway_database() as url:
            yield url


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each backend, closed at the end."""
    if request.param == "memory":
        memory = MemoryStore()
        await memory.open()
        yield memory
        await memory.close()
        return
    if request.param == "sqlite":
        async with _opened(SqlStore(f"sqlite:///{tmp_path / 'weir.db'}")) as s:
            yield s
        return
    async with throwaway_database() as url, _opened(SqlStore(url)) as s:
        yield s


class _opened:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def __aenter__(self) -> SqlStore:
        await self.store.open()
        return self.store

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()


def execution(id: str, created_at: float = 1.0, **fields: Any) -> ExecutionRow:
    values: dict[str, Any] = {
        "workflow": "w",
        "version": "1.0.0",
        "status": "running",
        "inputs_json": b'{"x": 1}',
        "created_at": created_at,
    }
    values.update(fields)
    return ExecutionRow(id=id, **values)


def finished(id: str, finished_at: float, status: str = "completed", **fields: Any) -> ExecutionRow:
    fields.setdefault("created_at", finished_at - 1)
    return execution(id, status=status, finished_at=finished_at, **fields)


def run(execution_id: str, position: int, node: str = "a", **fields: Any) -> NodeRunRow:
    values: dict[str, Any] = {"visit": 1, "attempt": 1, "status": "completed"}
    values.update(fields)
    return NodeRunRow(execution_id=execution_id, position=position, node=node, **values)


def task(
    token: str, execution_id: str = "e1", node: str = "a", created_at: float = 1.0, **fields: Any
) -> TaskRow:
    values: dict[str, Any] = {
        "workflow": "w",
        "visit": 1,
        "attempt": 1,
        "queue": "q",
        "args_json": b'{"to": "a@example.com"}',
        "status": "pending",
    }
    values.update(fields)
    return TaskRow(
        token=token, execution_id=execution_id, node=node, created_at=created_at, **values
    )


def event(seq: int, execution_id: str = "", workflow: str = "w", **fields: Any) -> EventRow:
    values: dict[str, Any] = {"type": "node.completed", "at": 100.0 + seq, "severity": 1}
    values.update(fields)
    return EventRow(seq=seq, execution_id=execution_id, workflow=workflow, **values)


# --- contract: every backend ------------------------------------------------------------------


async def test_workflow_versions_round_trip_deprecate_and_delete(store: Store) -> None:
    a = WorkflowRow("w", "1.0.0", "name: w\n", b'{"name": "w"}', "sha256:aa", 10.5)
    b = WorkflowRow("w", "1.1.0", "name: w\n#2\n", b'{"v": 2}', "sha256:bb", 11.25)
    await store.save_workflow(a)
    await store.save_workflow(b)
    with pytest.raises(StoreError, match=r"w 1\.0\.0"):
        await store.save_workflow(a)
    assert sorted(await store.load_workflows(), key=lambda r: r.version) == [a, b]

    await store.set_deprecated("w", "1.0.0", True)
    await store.set_deprecated("w", "9.9.9", True)  # unknown: nothing happens
    assert {r.version: r.deprecated for r in await store.load_workflows()} == {
        "1.0.0": True,
        "1.1.0": False,
    }
    await store.set_deprecated("w", "1.0.0", False)
    await store.delete_workflow("w", "1.1.0")
    assert await store.load_workflows() == [a]


async def test_an_execution_round_trips_every_field(store: Store) -> None:
    full = ExecutionRow(
        id="e1",
        workflow="order",
        version="1.2.0-rc.1",
        status="completed",
        inputs_json=b'{"order": "\xc3\xa9"}',
        created_at=1700000000.123456,
        routing_key="customer-7",
        idempotency_key="order-42",
        parent_id="p1",
        parent_node="charge",
        child_key="p1/charge/1/2",
        depth=3,
        engine="engine-2:7000",
        engine_name="engine-2",
        lease=5,
        placements=2,
        started_at=1700000000.5,
        finished_at=1700000001.75,
        deadline=1700000600.0,
        cancel_reason="by user",
        result_json=b'{"status": "completed", "bytes": "\x00\xff"}',
        retry_of="e0",
        retried_by="e3",
        wake_at=1700000900.5,
    )
    bare = execution("e2")
    store.put_execution(full)
    store.put_execution(bare)
    await store.durable()
    assert await store.get_execution("e1") == full
    assert await store.get_execution("e2") == bare
    assert await store.get_execution("nope") is None


async def test_the_latest_put_wins_within_a_batch_and_across_batches(store: Store) -> None:
    store.put_execution(execution("e1", status="pending"))
    store.put_execution(execution("e1", status="running", engine="x", lease=1))
    store.put_execution(execution("e2", status="pending"))
    await store.durable()
    assert (await store.get_execution("e1")) == execution("e1", engine="x", lease=1)
    done = finished("e1", 5.0, result_json=b"{}", engine="x", lease=1, created_at=1.0)
    store.put_execution(done)
    await store.durable()
    assert await store.get_execution("e1") == done
    assert [r.id for r in await store.unfinished_executions()] == ["e2"]


async def test_a_later_put_records_the_retry_of_a_finished_execution(store: Store) -> None:
    store.put_execution(finished("e1", 5.0, result_json=b"{}"))
    store.put_execution(execution("e2", retry_of="e1"))
    await store.durable()
    store.put_execution(finished("e1", 5.0, result_json=b"{}", retried_by="e2"))
    await store.durable()
    assert (await store.get_execution("e1")) == finished(
        "e1", 5.0, result_json=b"{}", retried_by="e2"
    )
    retry = await store.get_execution("e2")
    assert retry is not None and (retry.retry_of, retry.retried_by) == ("e1", None)
    listed = {r.id: (r.retry_of, r.retried_by) for r in await store.list_executions()}
    assert listed == {"e1": (None, "e2"), "e2": ("e1", None)}


async def test_node_runs_ignore_duplicates_and_come_back_in_position_order(store: Store) -> None:
    store.put_execution(execution("e1"))
    store.put_execution(execution("e2"))
    first = run("e1", 0, "a", output_json=b'{"ok": true}', outcome="SUCCESS", started_at=1.5)
    store.add_node_run(first)
    store.add_node_run(run("e1", 2, "b", visit=2, attempt=1, route="c"))
    store.add_node_run(replace(first, output_json=b'{"ok": false}'))  # same key, same batch
    store.add_node_run(run("e1", 1, "b", attempt=1, status="failed", error="boom", retryable=True))
    store.add_node_run(run("e2", 0, "z"))
    await store.durable()
    store.add_node_run(replace(first, position=9, status="failed"))  # same key, later batch
    store.add_node_run(run("e1", 3, "b", visit=2, attempt=2))
    await store.durable()

    journals = await store.node_runs(["e1", "e2", "unknown"])
    assert set(journals) == {"e1", "e2"}
    assert [(r.position, r.node, r.visit, r.attempt) for r in journals["e1"]] == [
        (0, "a", 1, 1),
        (1, "b", 1, 1),
        (2, "b", 2, 1),
        (3, "b", 2, 2),
    ]
    assert journals["e1"][0] == first
    assert journals["e1"][1].retryable is True
    assert journals["e1"][1].error == "boom"
    assert journals["e1"][2].route == "c"
    assert [r.node for r in journals["e2"]] == ["z"]
    assert await store.node_runs([]) == {}


async def test_node_runs_of_a_mapped_node_are_keyed_by_item_and_keep_reused_from(
    store: Store,
) -> None:
    store.put_execution(execution("e1"))
    expansion = run("e1", 0, "m", attempt=0, status="running", output_json=b'["x", "y"]')
    item0 = run("e1", 1, "m", item=0, output_json=b'"X"')
    item1 = run("e1", 2, "m", item=1, status="failed", error="boom", retryable=True)
    item1_again = run("e1", 3, "m", item=1, attempt=2, output_json=b'"Y"')
    final = run("e1", 4, "m", output_json=b'["X", "Y"]')  # attempt 1 too, but of the node
    reused = run("e1", 5, "n", reused_from="e0", output_json=b"{}")
    for row in (expansion, item0, item1, item1_again, final, reused):
        store.add_node_run(row)
    store.add_node_run(replace(item0, position=9, status="failed"))  # same key, same batch
    await store.durable()
    store.add_node_run(replace(item1, position=10))  # same key, later batch
    store.add_node_run(replace(final, position=11, item=None))
    await store.durable()
    journal = (await store.node_runs(["e1"]))["e1"]
    assert journal == [expansion, item0, item1, item1_again, final, reused]
    assert [(r.item, r.attempt) for r in journal[:5]] == [
        (None, 0),
        (0, 1),
        (1, 1),
        (1, 2),
        (None, 1),
    ]
    assert journal[5].reused_from == "e0"


async def test_durable_makes_writes_visible_and_returns_at_once_when_nothing_is_queued(
    store: Store,
) -> None:
    await asyncio.wait_for(store.durable(), 1)
    store.put_execution(execution("e1"))
    store.add_node_run(run("e1", 0))
    store.add_events([event(1, "e1")])
    await store.durable()
    assert await store.get_execution("e1") is not None
    assert len((await store.node_runs(["e1"]))["e1"]) == 1
    assert await store.last_event_seq() == 1
    await asyncio.wait_for(store.durable(), 1)


async def test_writes_made_during_a_commit_are_durable_after_the_next_durable(
    store: Store,
) -> None:
    store.put_execution(execution("e1"))
    first = asyncio.create_task(store.durable())
    # One step of the event loop, not a wait for time: a SQL store's writer, woken by
    # put_execution, runs before this task does again and takes the first batch; e2 then
    # arrives during its commit.
    await asyncio.sleep(0)
    store.put_execution(execution("e2"))
    await store.durable()
    await first
    assert {r.id for r in await store.unfinished_executions()} == {"e1", "e2"}


async def test_many_concurrent_durables(store: Store) -> None:
    async def one(i: int) -> None:
        store.put_execution(execution(f"e{i:03}", created_at=float(i)))
        store.add_events([event(i + 1, f"e{i:03}")])
        await store.durable()
        assert await store.get_execution(f"e{i:03}") is not None

    await asyncio.gather(*(one(i) for i in range(200)))
    assert len(await store.unfinished_executions()) == 200
    assert await store.last_event_seq() == 200


async def test_list_executions_filters_and_pages_newest_first(store: Store) -> None:
    rows = []
    for i in range(25):
        row = execution(
            f"e{i:02}",
            created_at=float(i // 3),  # three share each created_at: ties break on id
            workflow="a" if i % 2 else "b",
            version="2.0.0" if i % 5 == 0 else "1.0.0",
            status="completed" if i % 3 == 0 else "running",
            parent_id="p" if i in (4, 7) else None,
        )
        rows.append(row)
        store.put_execution(row)
    await store.durable()
    newest_first = sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)

    pages: list[list[ExecutionRow]] = []
    before: tuple[float, str] | None = None
    while True:
        page = await store.list_executions(limit=7, before=before)
        if not page:
            break
        pages.append(page)
        before = (page[-1].created_at, page[-1].id)
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    assert [r for p in pages for r in p] == newest_first

    assert [r.id for r in await store.list_executions(workflow="a", limit=100)] == [
        r.id for r in newest_first if r.workflow == "a"
    ]
    assert [r.id for r in await store.list_executions(workflow="b", version="2.0.0")] == [
        r.id for r in newest_first if r.workflow == "b" and r.version == "2.0.0"
    ]
    assert [r.id for r in await store.list_executions(status="completed", limit=3)] == [
        r.id for r in newest_first if r.status == "completed"
    ][:3]
    assert [r.id for r in await store.list_executions(parent_id="p")] == ["e07", "e04"]
    assert await store.list_executions(workflow="none") == []


async def test_unfinished_executions_oldest_first(store: Store) -> None:
    store.put_execution(execution("c", created_at=3.0, status="pending"))
    store.put_execution(execution("a", created_at=1.0, status="running"))
    store.put_execution(finished("x", 2.0, "failed"))
    store.put_execution(finished("y", 2.0, "cancelled"))
    store.put_execution(execution("b", created_at=1.0, status="pending"))
    await store.durable()
    assert [r.id for r in await store.unfinished_executions()] == ["a", "b", "c"]


async def test_find_execution_by_idempotency_key_or_child_key(store: Store) -> None:
    store.put_execution(execution("e1", idempotency_key="k1"))
    store.put_execution(execution("e2", parent_id="e1", parent_node="n", child_key="e1/n/1/1"))
    await store.durable()
    found = await store.find_execution(idempotency_key="k1")
    assert found is not None and found.id == "e1"
    child = await store.find_execution(child_key="e1/n/1/1")
    assert child is not None and child.id == "e2"
    assert await store.find_execution(idempotency_key="k2") is None
    assert await store.find_execution(child_key="k1") is None
    assert await store.find_execution() is None


async def test_prune_deletes_old_finished_executions_in_batches_with_their_rows(
    store: Store,
) -> None:
    for i in range(7):
        store.put_execution(
            finished(f"old{i}", 10.0 + i, ("completed", "failed", "cancelled")[i % 3])
        )
        store.add_node_run(run(f"old{i}", 0))
        store.add_events([event(i + 1, f"old{i}")])
    store.put_execution(finished("recent", 100.0))
    store.add_node_run(run("recent", 0))
    store.add_events([event(50, "recent")])
    store.put_execution(execution("stuck", created_at=0.0, status="running"))
    store.put_execution(execution("queued", created_at=0.0, status="pending"))
    store.add_node_run(run("stuck", 0))
    store.add_events([event(60, "stuck"), event(61, "", type="engine.joined")])
    # Events of no execution (engines, workflows) go once they are older than the cutoff.
    store.add_events([event(62, "", type="workflow.registered", at=5.0)])
    await store.durable()

    assert await store.prune(50.0, 3) == 3
    assert await store.prune(50.0, 3) == 3
    assert await store.prune(50.0, 3) == 1
    assert await store.prune(50.0, 3) == 0

    left = {r.id for r in await store.list_executions(limit=100)}
    assert left == {"recent", "stuck", "queued"}
    assert set(await store.node_runs([f"old{i}" for i in range(7)])) == set()
    assert set(await store.node_runs(["recent", "stuck"])) == {"recent", "stuck"}
    assert [e.seq for e in await store.events()] == [50, 60, 61]


async def test_prune_takes_the_oldest_first(store: Store) -> None:
    for i in (5, 3, 9, 1):
        store.put_execution(finished(f"e{i}", float(i)))
    await store.durable()
    assert await store.prune(100.0, 2) == 2
    assert {r.id for r in await store.list_executions()} == {"e5", "e9"}


async def test_events_query_and_last_seq(store: Store) -> None:
    assert await store.last_event_seq() == 0
    assert await store.events() == []
    rich = event(
        1,
        "e1",
        "w",
        version="1.0.0",
        node="a",
        visit=2,
        attempt=3,
        engine_id="engine-1",
        message="done",
        data_json=b'{"output": 1}',
        severity=2,
    )
    store.add_events([rich, event(2, "e2", "v"), event(3, "e1", "w")])
    store.add_events([])
    await store.durable()
    store.add_events([event(4, "", "", type="engine.left"), event(5, "e2", "v")])
    await store.durable()

    assert await store.last_event_seq() == 5
    assert (await store.events())[0] == rich
    assert [e.seq for e in await store.events()] == [1, 2, 3, 4, 5]
    assert [e.seq for e in await store.events(after=2)] == [3, 4, 5]
    assert [e.seq for e in await store.events(after=1, limit=2)] == [2, 3]
    assert [e.seq for e in await store.events(execution_id="e1")] == [1, 3]
    assert [e.seq for e in await store.events(workflow="v", after=2)] == [5]
    assert await store.events(after=5) == []


async def test_trigger_state_is_an_upsert(store: Store) -> None:
    await store.save_trigger_state(TriggerRow("w", "0", 10.0, 70.0, "orch-1"))
    await store.save_trigger_state(TriggerRow("w", "nightly"))
    await store.save_trigger_state(TriggerRow("v", "0", 1.0, 2.0, "orch-1"))
    await store.save_trigger_state(TriggerRow("w", "0", 70.0, 130.0, "orch-2"))
    assert await store.trigger_states("w") == [
        TriggerRow("w", "0", 70.0, 130.0, "orch-2"),
        TriggerRow("w", "nightly", None, None, ""),
    ]
    assert [(r.workflow, r.trigger) for r in await store.trigger_states()] == [
        ("v", "0"),
        ("w", "0"),
        ("w", "nightly"),
    ]


async def test_claim_trigger_is_a_compare_and_set(store: Store) -> None:
    claim = store.claim_trigger
    # first sight: no row yet; exactly one "expected None" claim wins
    assert await claim("w", "t", expected_next=None, new_next=60.0, schedule="s", owner="a")
    assert not await claim("w", "t", expected_next=None, new_next=61.0, schedule="s", owner="b")
    assert not await claim("w", "t", expected_next=59.0, new_next=120.0, schedule="s", owner="b")
    assert await claim(
        "w", "t", expected_next=60.0, new_next=120.0, schedule="s2", owner="b", fired_at=60.0
    )
    assert not await claim("w", "t", expected_next=60.0, new_next=120.0, schedule="s", owner="a")
    await store.set_trigger_execution("w", "t", "e1")
    assert await store.trigger_states() == [
        TriggerRow("w", "t", 60.0, 120.0, "b", "e1", "definition", None, "s2")
    ]
    # a moved cursor without a fire keeps last_fire_at
    assert await claim("w", "t", expected_next=120.0, new_next=180.0, schedule="s2", owner="a")
    [row] = await store.trigger_states("w")
    assert (row.last_fire_at, row.next_fire_at, row.owner) == (60.0, 180.0, "a")
    # an API trigger's row without a cursor is claimed with expected None, keeping its spec
    api = TriggerRow("w", "api", source="api", spec_json=b'{"cron":"@daily"}', schedule="x")
    await store.save_trigger_state(api)
    assert await claim("w", "api", expected_next=None, new_next=5.0, schedule="x", owner="a")
    [row, _] = await store.trigger_states("w")
    assert (row.source, row.spec_json, row.next_fire_at) == ("api", b'{"cron":"@daily"}', 5.0)
    assert await store.delete_trigger_state("w", "api")
    assert not await store.delete_trigger_state("w", "api")
    assert [r.trigger for r in await store.trigger_states()] == ["t"]


async def test_concurrent_claims_of_one_cursor_have_one_winner(store: Store) -> None:
    await store.claim_trigger("w", "t", expected_next=None, new_next=0.0, schedule="", owner="")
    for cursor in range(20):
        wins = await asyncio.gather(
            *(
                store.claim_trigger(
                    "w",
                    "t",
                    expected_next=float(cursor),
                    new_next=float(cursor + 1),
                    schedule="",
                    owner=f"o{i}",
                )
                for i in range(4)
            )
        )
        assert sum(wins) == 1


# --- contract: tasks --------------------------------------------------------------------------


async def test_a_task_round_trips_every_field(store: Store) -> None:
    full = TaskRow(
        token="tok-\u00e9-1",
        execution_id="e1",
        workflow="order",
        node="send",
        visit=2,
        attempt=3,
        queue="email",
        args_json=b'{"to": "\xc3\xa9", "bytes": "\x00\xff"}',
        status="failed",
        created_at=1700000000.123456,
        idempotency_key="order-42/send",
        worker="worker-7",
        deliveries=4,
        started_at=1700000000.5,
        finished_at=1700000001.75,
        heartbeat_at=1700000001.25,
        schedule_to_start_s=30.5,
        timeout_s=60.25,
        heartbeat_s=5.125,
        output_json=b'{"sent": false}',
        error="smtp: 421",
        retryable=True,
        details_json=b'{"progress": 0.5}',
        kind="callback",
        deadline_at=1700003600.5,
        outcome="APPROVED",
    )
    bare = task("tok-2")
    store.put_task(full)
    store.put_task(bare)
    await store.durable()
    assert await store.get_task("tok-\u00e9-1") == full
    assert await store.get_task("tok-2") == bare
    assert (bare.kind, bare.deadline_at, bare.outcome) == ("worker", None, None)
    assert await store.find_task("e1", "send", 2, 3) == full
    assert await store.find_task("e1", "a", 1, 1) == bare
    assert await store.get_task("nope") is None
    for other in (
        ("e2", "send", 2, 3),
        ("e1", "x", 2, 3),
        ("e1", "send", 1, 3),
        ("e1", "send", 2, 1),
    ):
        assert await store.find_task(*other) is None
    assert (full.finished, bare.finished) == (True, False)
    assert [task("t", status=s).finished for s in ("pending", "running", "timed_out")] == [
        False,
        False,
        True,
    ]


async def test_a_later_put_of_a_task_updates_its_progress_and_keeps_its_identity(
    store: Store,
) -> None:
    first = task("t1", idempotency_key="k", timeout_s=10.0, heartbeat_s=2.0, kind="callback")
    changed_identity = {
        "workflow": "other",
        "queue": "other",
        "args_json": b"{}",
        "created_at": 99.0,
        "idempotency_key": "other",
        "schedule_to_start_s": 1.0,
        "timeout_s": 1.0,
        "heartbeat_s": 1.0,
        "kind": "timer",
        "deadline_at": 50.0,  # the first put had none: it keeps none
    }
    running = replace(
        first, status="running", worker="w1", deliveries=1, started_at=2.0, heartbeat_at=2.5
    )
    # within one batch: the first put's identity, the latest put's progress
    store.put_task(first)
    store.put_task(replace(running, **changed_identity))
    await store.durable()
    assert await store.get_task("t1") == running
    # across batches likewise
    done = replace(
        running,
        status="completed",
        finished_at=3.0,
        output_json=b'{"ok": true}',
        details_json=b"[1]",
        error="",
        retryable=True,
        outcome="AGREE",
    )
    store.put_task(replace(done, **changed_identity))
    await store.durable()
    assert await store.get_task("t1") == done
    assert await store.find_task("e1", "a", 1, 1) == done


async def test_a_second_token_for_a_stored_key_is_ignored_and_its_batch_commits(
    store: Store,
) -> None:
    store.put_task(task("t1", status="running"))
    await store.durable()
    store.put_task(task("t2"))  # the key of t1 (e1, a, 1, 1)
    store.put_task(task("t3", attempt=2))
    store.put_execution(execution("e1"))
    await store.durable()
    assert await store.get_task("t2") is None
    found = await store.find_task("e1", "a", 1, 1)
    assert found is not None and (found.token, found.status) == ("t1", "running")
    assert await store.get_task("t3") == task("t3", attempt=2)
    assert await store.get_execution("e1") == execution("e1")
    # within one batch: the first token of the key wins
    store.put_task(task("t4", node="b"))
    store.put_task(task("t5", node="b", status="running"))
    await store.durable()
    found = await store.find_task("e1", "b", 1, 1)
    assert found is not None and found.token == "t4"
    assert await store.get_task("t5") is None
    assert {t.token for t in await store.list_tasks()} == {"t1", "t3", "t4"}


async def test_the_tasks_of_two_items_of_one_node_attempt_are_two_tasks(store: Store) -> None:
    node = task("t0")
    first = task("t1", item=0, idempotency_key="e1/a/1/0")
    second = task("t2", item=1, idempotency_key="e1/a/1/1")
    for row in (node, first, second):
        store.put_task(row)
    store.put_task(task("t3", item=1))  # the key of t2 (e1, a, 1, item 1, 1): ignored
    await store.durable()
    assert await store.find_task("e1", "a", 1, 1) == node
    assert await store.find_task("e1", "a", 1, 1, item=0) == first
    assert await store.find_task("e1", "a", 1, 1, item=1) == second
    assert await store.find_task("e1", "a", 1, 1, item=2) is None
    assert await store.find_task("e1", "a", 1, 2, item=0) is None
    assert await store.get_task("t3") is None
    # a later put updates the task of its item only
    done = replace(second, status="completed", finished_at=3.0, output_json=b"1")
    store.put_task(done)
    await store.durable()
    assert await store.find_task("e1", "a", 1, 1, item=1) == done
    assert await store.get_task("t1") == first
    assert {(t.token, t.item) for t in await store.unfinished_tasks()} == {("t0", None), ("t1", 0)}


async def test_list_tasks_filters_newest_first_with_a_limit(store: Store) -> None:
    rows = []
    for i in range(24):
        row = task(
            f"t{i:02}",
            execution_id=f"e{i % 3}",
            node=f"n{i}",
            created_at=float(i // 4),  # four share each created_at: ties break on token
            queue="email" if i % 2 else "sms",
            status=("pending", "running", "completed", "timed_out")[i % 4],
        )
        rows.append(row)
        store.put_task(row)
    await store.durable()
    newest = sorted(rows, key=lambda r: (r.created_at, r.token), reverse=True)

    def tokens(found: list[TaskRow]) -> list[str]:
        return [r.token for r in found]

    assert await store.list_tasks() == newest
    assert tokens(await store.list_tasks(limit=5)) == tokens(newest)[:5]
    assert await store.list_tasks(limit=0) == []
    assert tokens(await store.list_tasks(queue="email")) == [
        r.token for r in newest if r.queue == "email"
    ]
    assert tokens(await store.list_tasks(status="running")) == [
        r.token for r in newest if r.status == "running"
    ]
    assert (
        tokens(await store.list_tasks(execution_id="e2", limit=3))
        == [r.token for r in newest if r.execution_id == "e2"][:3]
    )
    assert tokens(await store.list_tasks(queue="sms", status="pending", execution_id="e0")) == [
        r.token for r in newest if (r.queue, r.status, r.execution_id) == ("sms", "pending", "e0")
    ]
    assert await store.list_tasks(queue="none") == []


async def test_unfinished_tasks_are_the_pending_and_running_ones_oldest_first(
    store: Store,
) -> None:
    for token, created_at, status in [
        ("c", 3.0, "pending"),
        ("b", 1.0, "running"),
        ("x", 0.5, "completed"),
        ("y", 0.5, "failed"),
        ("z", 0.5, "timed_out"),
        ("w", 0.5, "cancelled"),
        ("a", 1.0, "pending"),
    ]:
        store.put_task(task(token, node=token, created_at=created_at, status=status))
    await store.durable()
    assert [r.token for r in await store.unfinished_tasks()] == ["a", "b", "c"]
    store.put_task(task("b", node="b", created_at=1.0, status="completed"))
    await store.durable()
    assert [r.token for r in await store.unfinished_tasks()] == ["a", "c"]


async def test_prune_deletes_the_tasks_of_the_executions_it_deletes_only(store: Store) -> None:
    store.put_execution(finished("old", 10.0))
    store.put_execution(finished("recent", 100.0))
    store.put_execution(execution("live", created_at=0.0))
    for execution_id in ("old", "recent", "live", "unknown"):
        for attempt in (1, 2):
            store.put_task(
                task(f"{execution_id}-{attempt}", execution_id, attempt=attempt, status="failed")
            )
    await store.durable()
    assert await store.prune(50.0, 10) == 1  # executions, not tasks
    assert sorted(r.token for r in await store.list_tasks()) == [
        "live-1",
        "live-2",
        "recent-1",
        "recent-2",
        "unknown-1",
        "unknown-2",
    ]
    assert await store.find_task("old", "a", 1, 1) is None
    # the key of a pruned task is free again
    store.put_task(task("old-again", "old"))
    await store.durable()
    assert await store.find_task("old", "a", 1, 1) == task("old-again", "old")


# --- SQL backends -----------------------------------------------------------------------------


async def test_group_commit_takes_one_transaction_for_many_writes(sql_url: str) -> None:
    async with _opened(SqlStore(sql_url)) as store:
        told: list[tuple[float, int]] = []
        store.committed.connect(lambda seconds, rows: told.append((seconds, rows)))
        before = store.commits
        for i in range(100):
            store.put_execution(execution(f"e{i}"))
            store.add_node_run(run(f"e{i}", 0))
            store.add_events([event(i * 8 + k + 1, f"e{i}") for k in range(8)])
        await store.durable()
        assert store.commits == before + 1
        assert [rows for _, rows in told] == [100 + 100 + 800]
        assert 0 <= told[0][0] < 10
        await store.durable()  # nothing queued: no commit
        assert store.commits == before + 1

        async def one(i: int) -> None:
            store.put_execution(execution(f"c{i}"))
            await store.durable()

        await asyncio.gather(*(one(i) for i in range(100)))
        assert store.commits <= before + 3


async def test_a_reopened_store_keeps_everything_and_migrating_again_is_a_no_op(
    sql_url: str,
) -> None:
    wf = WorkflowRow("w", "1.0.0", "src", b"{}", "d", 1.0)
    async with _opened(SqlStore(sql_url)) as store:
        await store.save_workflow(wf)
        await store.save_trigger_state(TriggerRow("w", "0", 1.0, 2.0, "o"))
        store.put_execution(execution("e1", idempotency_key="k"))
        store.add_node_run(run("e1", 0))
        store.add_events([event(7, "e1")])
        # no durable(): close() commits what is queued
    async with _opened(SqlStore(sql_url)) as store:
        assert store.engine is not None
        async with store.engine.connect() as conn:
            versions = (
                await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).all()
        assert [v[0] for v in versions] == ["0007"]
        assert await store.load_workflows() == [wf]
        assert await store.trigger_states() == [TriggerRow("w", "0", 1.0, 2.0, "o")]
        assert await store.get_execution("e1") == execution("e1", idempotency_key="k")
        assert [r.node for r in (await store.node_runs(["e1"]))["e1"]] == ["a"]
        assert await store.last_event_seq() == 7


async def test_a_task_commits_in_the_same_group_commit_as_its_execution(sql_url: str) -> None:
    async with _opened(SqlStore(sql_url)) as store:
        told: list[int] = []
        store.committed.connect(lambda _seconds, rows: told.append(rows))
        before = store.commits
        store.put_execution(execution("e1"))
        store.put_task(task("t1"))
        store.put_task(replace(task("t1"), status="running", worker="w"))
        store.put_execution(execution("e1", status="running", engine="x"))
        await store.durable()
        assert (store.commits, told) == (before + 1, [2])
        assert await store.get_execution("e1") == execution("e1", engine="x")
        assert await store.get_task("t1") == replace(task("t1"), status="running", worker="w")


async def test_unfinished_tasks_survive_a_restart(sql_url: str) -> None:
    pending = task("t1", created_at=2.0, schedule_to_start_s=30.0)
    running = task("t2", node="b", created_at=1.0, status="running", worker="w", deliveries=1)
    async with _opened(SqlStore(sql_url)) as store:
        store.put_task(pending)
        store.put_task(running)
        store.put_task(task("t3", node="c", status="completed", output_json=b"{}"))
        # no durable(): close() commits what is queued
    async with _opened(SqlStore(sql_url)) as store:
        assert await store.unfinished_tasks() == [running, pending]
        store.put_task(replace(running, status="timed_out", finished_at=9.0))
    async with _opened(SqlStore(sql_url)) as store:
        assert await store.unfinished_tasks() == [pending]
        assert await store.get_task("t2") == replace(running, status="timed_out", finished_at=9.0)


async def test_the_migrations_create_the_schema_the_queries_are_written_for(
    sql_url: str,
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from orchestrator.store import tables

    def differences(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, tables.metadata))

    async with _opened(SqlStore(sql_url)) as store:
        assert store.engine is not None
        async with store.engine.connect() as conn:
            assert await conn.run_sync(differences) == []
            assert "tasks" in tables.TABLES


async def _at_revision(sql_url: str, revision: str, *statements: tuple[str, Any]) -> None:
    """Migrate the database at ``sql_url`` up (or down) to ``revision`` with Alembic, then run
    ``statements`` (SQL text, parameters) in the same transaction."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

    from orchestrator.store.diagnose import parse_url
    from orchestrator.store.schema import MIGRATIONS

    def migrate(connection: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and current > revision:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    engine = create_async_engine(parse_url(sql_url)[0])
    try:
        async with engine.begin() as conn:
            await conn.run_sync(migrate)
            for sql, params in statements:
                await conn.execute(sa.text(sql), params)
    finally:
        await engine.dispose()


async def test_a_database_of_revision_0001_is_upgraded(sql_url: str) -> None:
    await _at_revision(
        sql_url,
        "0001",
        (
            "INSERT INTO triggers (workflow, trigger, last_fire_at, next_fire_at, owner) "
            "VALUES ('w', 'nightly', 1.0, 2.0, 'o')",
            {},
        ),
    )
    async with _opened(SqlStore(sql_url)) as store:
        assert await store.trigger_states() == [TriggerRow("w", "nightly", 1.0, 2.0, "o")]
        assert await store.claim_trigger(
            "w", "nightly", expected_next=2.0, new_next=3.0, schedule="s", owner="p"
        )


_INSERT_NODE_RUN_0003 = (
    "INSERT INTO node_runs (execution_id, node, visit, attempt, position, status, output_json,"
    " retryable, started_at, finished_at) VALUES (:e, :node, 1, :attempt, :position, :status,"
    " :output, :retryable, 1.0, 2.0)"
)
_INSERT_TASK_0003 = (
    "INSERT INTO tasks (token, execution_id, workflow, node, visit, attempt, queue, args_json,"
    " status, created_at, idempotency_key, worker, deliveries, schedule_to_start_s, timeout_s,"
    " heartbeat_s, retryable) VALUES (:token, 'e1', 'w', :node, 1, 1, 'q', :args, :status, 1.0,"
    " '', '', 0, 0.0, 0.0, 0.0, :retryable)"
)


async def test_a_database_of_revision_0003_keeps_its_node_runs_and_tasks_when_upgraded(
    sql_url: str,
) -> None:
    await _at_revision(
        sql_url,
        "0003",
        *(
            (_INSERT_NODE_RUN_0003, {"e": "e1", "node": node, "attempt": attempt, **values})
            for node, attempt, values in (
                ("a", 1, {"position": 0, "status": "failed", "output": None, "retryable": True}),
                (
                    "a",
                    2,
                    {"position": 1, "status": "completed", "output": b"1", "retryable": False},
                ),
            )
        ),
        *(
            (_INSERT_TASK_0003, {"token": token, "node": node, "args": b"{}", **values})
            for token, node, values in (
                ("t1", "a", {"status": "pending", "retryable": False}),
                ("t2", "b", {"status": "failed", "retryable": True}),
            )
        ),
    )
    old = [
        run("e1", 0, status="failed", retryable=True, started_at=1.0, finished_at=2.0),
        run("e1", 1, attempt=2, output_json=b"1", started_at=1.0, finished_at=2.0),
    ]
    async with _opened(SqlStore(sql_url)) as store:
        assert (await store.node_runs(["e1"]))["e1"] == old
        assert await store.find_task("e1", "a", 1, 1) == task("t1", args_json=b"{}")
        assert await store.find_task("e1", "b", 1, 1) == task(
            "t2", node="b", args_json=b"{}", status="failed", retryable=True
        )
        assert await store.find_task("e1", "a", 1, 1, item=0) is None
        # the new keys: an item's records and tasks beside the node's own
        store.add_node_run(run("e1", 2, item=0))
        store.add_node_run(run("e1", 3, item=0, reused_from="e0"))  # same key: ignored
        store.put_task(task("t3", item=0))
        await store.durable()
        assert (await store.node_runs(["e1"]))["e1"] == [*old, run("e1", 2, item=0)]
        assert await store.find_task("e1", "a", 1, 1, item=0) == task("t3", item=0)
        assert store.engine is not None
        async with store.engine.connect() as conn:

            def keys(connection: sa.Connection) -> tuple[list[str], list[list[str]]]:
                inspector = sa.inspect(connection)
                return (
                    inspector.get_pk_constraint("node_runs")["constrained_columns"],
                    [u["column_names"] for u in inspector.get_unique_constraints("tasks")],
                )

            node_run_key, task_keys = await conn.run_sync(keys)
        assert node_run_key == ["execution_id", "node", "visit", "item", "attempt"]
        assert task_keys == [["execution_id", "node", "visit", "item", "attempt"]]


async def test_a_downgrade_to_0003_drops_the_items_and_keeps_the_rest(sql_url: str) -> None:
    async with _opened(SqlStore(sql_url)) as store:
        for row in (run("e1", 0), run("e1", 1, item=0), run("e1", 2, item=1)):
            store.add_node_run(row)
        store.put_task(task("t1"))
        store.put_task(task("t2", item=0))
    await _at_revision(sql_url, "0003")
    await _at_revision(sql_url, "0004")
    async with _opened(SqlStore(sql_url)) as store:
        assert (await store.node_runs(["e1"]))["e1"] == [run("e1", 0)]
        assert [t.token for t in await store.list_tasks()] == ["t1"]


async def test_sqlite_runs_in_wal_mode_with_synchronous_normal(tmp_path: Path) -> None:
    async with _opened(SqlStore(f"sqlite:///{tmp_path / 'weir.db'}")) as store:
        assert store.engine is not None
        async with store.engine.connect() as conn:
            assert (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(sa.text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
            assert (await conn.execute(sa.text("PRAGMA busy_timeout"))).scalar() == 10_000


async def test_open_and_close_are_idempotent(sql_url: str) -> None:
    store = SqlStore(sql_url)
    await store.open()
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.get_execution("x")


async def test_a_schema_newer_than_the_code_is_refused(sql_url: str) -> None:
    async with _opened(SqlStore(sql_url)) as store:
        assert store.engine is not None
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    store = SqlStore(sql_url)
    with pytest.raises(StoreError, match=r"revision '9999_future', newer than this weir") as info:
        await store.open()
    assert store.url in str(info.value)
    await store.close()


async def test_a_failed_commit_surfaces_from_durable_and_keeps_failing(sql_url: str) -> None:
    async with _opened(SqlStore(sql_url, retry_window=0.3)) as store:
        assert store.engine is not None
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("DROP TABLE events"))
        store.put_execution(execution("e1"))
        store.add_events([event(1, "e1")])
        started = time.monotonic()
        with pytest.raises(StoreError, match="cannot commit") as info:
            await store.durable()
        assert time.monotonic() - started < 10
        assert store.url in str(info.value)
        store.put_execution(execution("e2"))
        with pytest.raises(StoreError) as again:
            await store.durable()
        assert again.value is info.value
        # the failed batch was one transaction: nothing of it is stored
        assert await store.get_execution("e1") is None
    await store.close()  # closing a failed store is quiet (and idempotent)


async def test_a_bug_in_the_writer_fails_the_store_instead_of_hanging_durable(
    sql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with _opened(SqlStore(sql_url)) as store:
        broken = run("e1", 0)
        del broken.status  # converting it to parameters raises AttributeError, not a SQL error
        store.put_execution(execution("e1"))
        store.add_node_run(broken)
        waiters = [asyncio.ensure_future(store.durable()) for _ in range(3)]
        done, _ = await asyncio.wait(waiters, timeout=10)
        assert len(done) == 3, "durable() must not wait for a writer that is gone"
        errors = [w.exception() for w in waiters]
        assert all(isinstance(e, StoreError) for e in errors)
        assert len({id(e) for e in errors}) == 1
        assert "the group commit failed: AttributeError" in str(errors[0])
        assert store.url in str(errors[0])
        assert any("the group commit failed" in r.getMessage() for r in caplog.records)
        # the failure is for good: later writes are dropped, durable() keeps raising it
        store.put_execution(execution("e2"))
        with pytest.raises(StoreError) as again:
            await asyncio.wait_for(store.durable(), 10)
        assert again.value is errors[0]
        # the batch was one transaction: its execution, converted before the node run, is not stored
        assert await store.get_execution("e1") is None
        assert await store.get_execution("e2") is None


async def test_a_cancelled_writer_fails_the_store_instead_of_hanging_durable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with _opened(SqlStore(f"sqlite:///{tmp_path / 'weir.db'}")) as store:
        [writer] = [t for t in asyncio.all_tasks() if t.get_name() == f"group commit {store.url}"]
        store.put_execution(execution("e1"))
        writer.cancel()
        with pytest.raises(StoreError, match="the group commit was cancelled"):
            await asyncio.wait_for(store.durable(), 10)
        assert writer.cancelled()
        assert any("the group commit was cancelled" in r.getMessage() for r in caplog.records)
    # closing it is quiet: the cancellation was the writer's, not close()'s


# --- opening errors ---------------------------------------------------------------------------


async def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not an sqlite database, just some bytes" * 100)
    store = SqlStore(f"sqlite:///{path}")
    with pytest.raises(StoreError, match="not a database") as info:
        await store.open()
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    await store.close()


async def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'missing' / 'weir.db'}")
    with pytest.raises(StoreError, match="does not exist") as info:
        await store.open()
    assert str(tmp_path / "missing") in str(info.value)
    assert not (tmp_path / "missing").exists()


async def test_a_relative_sqlite_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with _opened(SqlStore("sqlite:///weir.db")):
        pass
    with contextlib.closing(sqlite3.connect(tmp_path / "weir.db")) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0007",)]


async def test_an_unreachable_postgres_is_refused_quickly() -> None:
    port = free_port()  # nothing listens there
    store = SqlStore(f"postgresql://postgres:secret@127.0.0.1:{port}/weir", connect_timeout=5)
    started = time.monotonic()
    with pytest.raises(StoreError, match="connection refused") as info:
        await store.open()
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert f"postgresql://postgres:***@127.0.0.1:{port}/weir" in message
    assert "secret" not in message
    assert "\n" not in message


async def test_a_postgres_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # the kernel accepts; nobody ever speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        store = SqlStore(f"postgresql://postgres@127.0.0.1:{port}/weir", connect_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"no answer from 127\.0\.0\.1:\d+ within 0\.5 s"):
            await store.open()
        assert time.monotonic() - started < 5


async def test_a_missing_postgres_database_is_refused() -> None:
    store = SqlStore("postgresql://postgres@127.0.0.1:5432/no_such_weir_db")
    with pytest.raises(StoreError, match='database "no_such_weir_db" does not exist'):
        await store.open()


async def test_an_unknown_postgres_role_is_refused() -> None:
    store = SqlStore("postgresql://no_such_weir_role:pw@127.0.0.1:5432/postgres")
    with pytest.raises(StoreError, match="authentication failed") as info:
        await store.open()
    assert "pw@" not in str(info.value)


# --- URLs -------------------------------------------------------------------------------------


def test_open_store_picks_the_backend_without_io(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    sqlite_store = open_store(f"sqlite:///{tmp_path / 'nowhere' / 'weir.db'}")
    assert isinstance(sqlite_store, SqlStore)
    assert sqlite_store.url == f"sqlite:///{tmp_path / 'nowhere' / 'weir.db'}"
    assert not (tmp_path / "nowhere").exists()
    pg = open_store("postgresql://user:hunter2@db.example:5432/weir")
    assert isinstance(pg, SqlStore)
    assert pg.url == "postgresql://user:***@db.example:5432/weir"
    assert open_store("postgres://u@h/d").url == "postgres://u@h/d"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://x@y/z", "unknown scheme 'mysql'"),
        ("nonsense", "'nonsense' is not valid"),
        ("sqlite://", "names no SQLite file"),
        ("postgresql:///weir", "names no host"),
    ],
)
def test_a_url_that_is_not_accepted_names_the_accepted_forms(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as info:
        open_store(url)
    assert "sqlite:////absolute/path.db" in str(info.value)
    assert "postgresql://" in str(info.value)
