"""The store's part of waits (issue 17) on every backend: task kinds and deadlines, parked
executions (status ``waiting``, ``wake_at``), signals, and migration ``0006``.

The backends, helpers and PostgreSQL databases are ``test_store.py``'s.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator.store import SignalRow, SqlStore, Store, StoreError
from orchestrator.store.base import TASK_KINDS
from tests.orchestrator import test_store as base
from tests.orchestrator.test_store import _at_revision, _opened, execution, finished, task

# The fixtures of test_store.py: ``store`` is each backend, ``sql_url`` each SQL database.
store = base.store
sql_url = base.sql_url


def signal(id: str, execution_id: str = "e1", sent_at: float = 1.0, **fields: Any) -> SignalRow:
    values: dict[str, Any] = {"name": "approve", "outcome": "", "data_json": b'{"by": "ann"}'}
    values.update(fields)
    return SignalRow(id=id, execution_id=execution_id, sent_at=sent_at, **values)


def ids(rows: list[SignalRow]) -> list[str]:
    return [row.id for row in rows]


# --- task kinds -------------------------------------------------------------------------------


async def test_a_task_of_each_kind_round_trips_and_is_unfinished_until_it_ends(
    store: Store,
) -> None:
    rows = [
        task(f"t-{kind}", node=kind, kind=kind, queue=queue, deadline_at=deadline)
        for kind, queue, deadline in zip(
            TASK_KINDS,
            ("email", "http", "approve", ""),
            (None, 86400.0, 259200.0, None),
            strict=True,
        )
    ]
    for row in rows:
        store.put_task(row)
    await store.durable()
    assert [await store.get_task(row.token) for row in rows] == rows
    assert await store.unfinished_tasks() == sorted(rows, key=lambda r: r.token)
    assert [r.token for r in await store.list_tasks(queue="approve")] == ["t-signal"]
    # the answer of a signal wait: its outcome and data
    answered = replace(rows[2], status="completed", outcome="AGREE", output_json=b'{"by": "ann"}')
    store.put_task(answered)
    await store.durable()
    assert await store.find_task("e1", "signal", 1, 1) == answered
    assert "t-signal" not in {r.token for r in await store.unfinished_tasks()}


async def test_a_task_keeps_the_kind_and_deadline_of_its_first_put_in_a_batch_and_after(
    store: Store,
) -> None:
    first = task("t1", kind="callback", deadline_at=100.0)
    store.put_task(first)
    store.put_task(replace(first, kind="worker", deadline_at=None, status="running"))
    await store.durable()
    assert await store.get_task("t1") == replace(first, status="running")
    store.put_task(replace(first, kind="timer", deadline_at=5.0, status="failed", outcome="FAIL"))
    await store.durable()
    assert await store.get_task("t1") == replace(first, status="failed", outcome="FAIL")


# --- parked executions ------------------------------------------------------------------------


async def test_a_parked_execution_is_unfinished_listed_as_waiting_and_never_pruned(
    store: Store,
) -> None:
    store.put_execution(execution("run", created_at=1.0))
    store.put_execution(execution("parked", created_at=2.0, status="waiting", wake_at=500.0))
    store.put_execution(execution("signal", created_at=3.0, status="waiting"))  # no timer
    store.put_execution(finished("done", 4.0))
    await store.durable()
    assert ids_of(await store.unfinished_executions()) == ["run", "parked", "signal"]
    assert ids_of(await store.list_executions(status="waiting")) == ["signal", "parked"]
    parked = await store.get_execution("parked")
    assert parked is not None and (parked.status, parked.wake_at) == ("waiting", 500.0)
    assert await store.prune(1e12, 10) == 1  # "done" only
    # resumed: running again, no wake time; a later put changes both
    store.put_execution(execution("parked", created_at=2.0, engine="x", lease=2))
    await store.durable()
    assert await store.get_execution("parked") == execution(
        "parked", created_at=2.0, engine="x", lease=2
    )
    assert ids_of(await store.list_executions(status="waiting")) == ["signal"]


def ids_of(rows: list[Any]) -> list[str]:
    return [row.id for row in rows]


# --- signals ----------------------------------------------------------------------------------


async def test_a_signal_round_trips_and_a_later_put_changes_only_its_consumption(
    store: Store,
) -> None:
    store.put_execution(execution("e1"))
    full = signal(
        "s-\u00e9-1",
        sent_at=1700000000.123456,
        name="approve",
        outcome="AGREE",
        data_json=b'{"note": "\xc3\xa9", "bytes": "\x00\xff"}',
    )
    bare = signal("s2", sent_at=1700000001.0, name="reject")
    store.put_signal(full)
    store.put_signal(bare)
    await store.durable()
    assert await store.list_signals("e1") == [full, bare]
    assert await store.unconsumed_signals() == [full, bare]
    changed_identity: dict[str, Any] = {
        "execution_id": "e1",
        "name": "other",
        "outcome": "DISAGREE",
        "data_json": b"{}",
        "sent_at": 0.5,
    }
    consumed = replace(full, consumed_by="tok-1", consumed_at=1700000002.5)
    # a later batch: only the consumption changes
    store.put_signal(replace(bare, **changed_identity))
    store.put_signal(replace(consumed, **changed_identity))
    await store.durable()
    assert await store.list_signals("e1") == [consumed, bare]
    assert await store.unconsumed_signals() == [bare]
    # within one batch: the first put's identity, the latest put's consumption
    third = signal("s3", sent_at=2e9)
    store.put_signal(third)
    store.put_signal(replace(third, consumed_by="tok-3", consumed_at=2e9, **changed_identity))
    store.put_signal(replace(bare, consumed_by="tok-2", consumed_at=9.0))
    await store.durable()
    assert await store.list_signals("e1") == [
        consumed,
        replace(bare, consumed_by="tok-2", consumed_at=9.0),
        replace(third, consumed_by="tok-3", consumed_at=2e9),
    ]
    assert await store.unconsumed_signals() == []


async def test_unconsumed_signals_are_the_kept_ones_of_unfinished_executions_oldest_first(
    store: Store,
) -> None:
    store.put_execution(execution("run"))
    store.put_execution(execution("parked", status="waiting", wake_at=9.0))
    store.put_execution(execution("queued", status="pending"))
    for i, status in enumerate(("completed", "failed", "cancelled")):
        store.put_execution(finished(f"ended-{i}", 5.0, status))
    rows = [
        signal("b", "run", sent_at=2.0),
        signal("a", "parked", sent_at=2.0),  # same time: by id
        signal("c", "queued", sent_at=1.0),
        signal("d", "run", sent_at=3.0, consumed_by="tok", consumed_at=3.5),
        signal("e", "ended-0", sent_at=0.1),
        signal("f", "ended-1", sent_at=0.2),
        signal("g", "ended-2", sent_at=0.3),
        signal("h", "parked", sent_at=0.5, name="reject"),
    ]
    for row in rows:
        store.put_signal(row)
    await store.durable()
    assert ids(await store.unconsumed_signals()) == ["h", "c", "a", "b"]
    # its execution ends: its signals are no longer kept for anyone
    store.put_execution(finished("parked", 6.0, created_at=1.0))
    await store.durable()
    assert ids(await store.unconsumed_signals()) == ["c", "b"]
    # consumed
    store.put_signal(replace(rows[2], consumed_by="tok-c", consumed_at=7.0))
    await store.durable()
    assert ids(await store.unconsumed_signals()) == ["b"]


async def test_list_signals_gives_one_executions_signals_consumed_or_not_oldest_first(
    store: Store,
) -> None:
    store.put_execution(execution("e1"))
    store.put_execution(finished("e2", 5.0))
    rows = [
        signal("s3", sent_at=3.0),
        signal("s1", sent_at=1.0, consumed_by="tok", consumed_at=1.5),
        signal("s2b", sent_at=2.0),
        signal("s2a", sent_at=2.0, name="reject", outcome="FAIL"),
        signal("x", "e2", sent_at=0.0),
    ]
    for row in rows:
        store.put_signal(row)
    await store.durable()
    assert await store.list_signals("e1") == [rows[1], rows[3], rows[2], rows[0]]
    assert await store.list_signals("e2") == [rows[4]]  # finished: still listed
    assert await store.list_signals("unknown") == []


async def test_prune_deletes_the_signals_of_the_executions_it_deletes_only(store: Store) -> None:
    store.put_execution(finished("old", 10.0))
    store.put_execution(finished("recent", 100.0))
    store.put_execution(execution("parked", created_at=0.0, status="waiting"))
    for execution_id in ("old", "recent", "parked"):
        store.put_signal(signal(f"{execution_id}-1", execution_id))
        store.put_signal(
            signal(f"{execution_id}-2", execution_id, consumed_by="tok", consumed_at=2.0)
        )
    await store.durable()
    assert await store.prune(50.0, 10) == 1
    assert await store.list_signals("old") == []
    assert ids(await store.list_signals("recent")) == ["recent-1", "recent-2"]
    assert ids(await store.list_signals("parked")) == ["parked-1", "parked-2"]
    assert ids(await store.unconsumed_signals()) == ["parked-1"]


# --- SQL backends -----------------------------------------------------------------------------


async def test_a_signal_commits_in_the_same_transaction_as_the_task_it_completes(
    sql_url: str,
) -> None:
    wait = task("w1", kind="signal", queue="approve", status="running")
    sent = signal("s1")
    async with _opened(SqlStore(sql_url, retry_window=0.3)) as store:
        store.put_execution(execution("e1"))
        store.put_task(wait)
        store.put_signal(sent)
        await store.durable()
        told: list[int] = []
        store.committed.connect(lambda _seconds, rows: told.append(rows))
        before = store.commits
        done = replace(wait, status="completed", outcome="AGREE", output_json=sent.data_json)
        store.put_task(done)
        store.put_signal(replace(sent, consumed_by="w1", consumed_at=2.0))
        await store.durable()
        assert (store.commits, told) == (before + 1, [2])
        assert await store.get_task("w1") == done
        assert await store.unconsumed_signals() == []
        # one transaction: when the signal's write fails, the task's completion is not stored
        assert store.engine is not None
        store.put_task(task("w2", node="b", kind="signal", queue="approve", status="running"))
        store.put_signal(signal("s2"))
        await store.durable()
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("DROP TABLE signals"))
        store.put_task(task("w2", node="b", status="completed", outcome="AGREE"))
        store.put_signal(signal("s2", consumed_by="w2", consumed_at=3.0))
        started = time.monotonic()
        with pytest.raises(StoreError, match="cannot commit"):
            await store.durable()
        assert time.monotonic() - started < 10
        stored = await store.get_task("w2")
        assert stored is not None and (stored.status, stored.outcome) == ("running", None)


async def test_kept_signals_and_parked_executions_survive_a_restart(sql_url: str) -> None:
    parked = execution("e1", status="waiting", wake_at=1e10)
    timer = task("t1", kind="timer", queue="", timeout_s=259200.0, deadline_at=1e10)
    kept = signal("s1", name="approve", outcome="AGREE")
    async with _opened(SqlStore(sql_url)) as store:
        store.put_execution(parked)
        store.put_task(timer)
        store.put_signal(kept)
        store.put_signal(signal("s0", sent_at=0.5, consumed_by="tok", consumed_at=0.75))
        # no durable(): close() commits what is queued
    async with _opened(SqlStore(sql_url)) as store:
        assert await store.unfinished_executions() == [parked]
        assert await store.unfinished_tasks() == [timer]
        assert await store.unconsumed_signals() == [kept]


_INSERT_EXECUTION_0005 = (
    "INSERT INTO executions (id, workflow, version, status, inputs_json, created_at, routing_key,"
    " depth, engine, engine_name, lease, placements) VALUES (:id, 'w', '1.0.0', :status,"
    " :inputs, 1.0, '', 0, '', '', 0, 0)"
)


async def test_a_database_of_revision_0005_gets_worker_tasks_and_no_signals_when_upgraded(
    sql_url: str,
) -> None:
    await _at_revision(
        sql_url,
        "0005",
        *(
            (_INSERT_EXECUTION_0005, {"id": id, "status": status, "inputs": b'{"x": 1}'})
            for id, status in (("e1", "running"), ("e2", "pending"))
        ),
        *(
            (base._INSERT_TASK_0003, {"token": token, "node": node, "args": b"{}", **values})
            for token, node, values in (
                ("t1", "a", {"status": "pending", "retryable": False}),
                ("t2", "b", {"status": "failed", "retryable": True}),
            )
        ),
    )
    async with _opened(SqlStore(sql_url)) as store:
        assert store.engine is not None
        async with store.engine.connect() as conn:
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).one()
        assert version == ("0007",)
        assert await store.unfinished_executions() == [
            execution("e1"),
            execution("e2", status="pending"),
        ]
        first = await store.get_task("t1")
        assert first is not None
        assert first == task("t1", args_json=b"{}")
        assert (first.kind, first.deadline_at, first.outcome) == ("worker", None, None)
        assert await store.get_task("t2") == task(
            "t2", node="b", args_json=b"{}", status="failed", retryable=True
        )
        assert await store.unconsumed_signals() == []
        # the new columns and table take writes
        store.put_execution(execution("e1", status="waiting", wake_at=9.0))
        store.put_task(task("t3", node="c", kind="callback", deadline_at=9.0))
        store.put_signal(signal("s1"))
        await store.durable()
        assert await store.list_executions(status="waiting") == [
            execution("e1", status="waiting", wake_at=9.0)
        ]
        assert await store.get_task("t3") == task("t3", node="c", kind="callback", deadline_at=9.0)
        assert await store.list_signals("e1") == [signal("s1")]


async def test_a_downgrade_to_0005_drops_the_waits_and_keeps_the_rest(sql_url: str) -> None:
    async with _opened(SqlStore(sql_url)) as store:
        store.put_execution(execution("e1", status="waiting", wake_at=9.0))
        store.put_execution(execution("e2"))
        store.put_task(task("t1"))
        store.put_task(task("t2", node="b", kind="timer", deadline_at=9.0))
        store.put_signal(signal("s1"))
    await _at_revision(sql_url, "0005")
    await _at_revision(sql_url, "0006")
    async with _opened(SqlStore(sql_url)) as store:
        # a parked execution becomes pending: the old code places it again from its checkpoint
        assert await store.unfinished_executions() == [
            execution("e1", status="pending"),
            execution("e2"),
        ]
        assert [t.token for t in await store.list_tasks()] == ["t1"]
        assert await store.list_signals("e1") == []
