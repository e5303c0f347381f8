"""Listing and counting executions on every backend (what the web UI's list pages ask): every
filter, a range of creation times, keyset pages, ``summary`` rows, counts by status, and on
SQLite that each filter's query walks an index in the list's order (migration ``0007``).

The backends, helpers and PostgreSQL databases are ``test_store.py``'s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.store import ExecutionRow, SqlStore, Store
from orchestrator.store.diagnose import parse_url
from tests.orchestrator import test_store as base
from tests.orchestrator.test_store import _at_revision, _opened, execution

# The fixtures of test_store.py: ``store`` is each backend, ``sql_url`` each SQL database.
store = base.store
sql_url = base.sql_url

STATUSES = ("completed", "failed", "cancelled", "running", "pending", "waiting")


def history() -> list[ExecutionRow]:
    """60 executions of two workflows (two versions of one), every status, two parents, three
    to each creation time (ties break on id), the finished ones with inputs and a result."""
    rows = []
    for i in range(60):
        status = STATUSES[i % len(STATUSES)] if i % 4 else "completed"
        rows.append(
            execution(
                f"e{i:02}",
                created_at=100.0 + i // 3,
                workflow="a" if i % 3 else "b",
                version="2.0.0" if i % 5 == 0 else "1.0.0",
                status=status,
                parent_id="p1" if i % 7 == 0 else ("p2" if i % 11 == 0 else None),
                inputs_json=b'{"i": %d}' % i,
                result_json=b'{"outputs": {"i": %d}}' % i if status == "completed" else None,
            )
        )
    return rows


async def stored(store: Store) -> list[ExecutionRow]:
    rows = history()
    for row in rows:
        store.put_execution(row)
    await store.durable()
    return sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)


FILTERS: list[dict[str, Any]] = [
    {},
    {"workflow": "a"},
    {"version": "2.0.0"},
    {"workflow": "a", "version": "1.0.0"},
    {"status": "failed"},
    {"workflow": "b", "status": "completed"},
    {"parent_id": "p1"},
    {"created_after": 105.0},
    {"created_before": 112.0},
    {"created_after": 103.0, "created_before": 115.0},
    {"created_after": 108.5, "created_before": 108.7},  # between two creation times: none
    {"workflow": "a", "status": "completed", "created_after": 101.0, "created_before": 118.0},
    {"parent_id": "p2", "created_before": 119.0},
    {"workflow": "none"},
]


def matches(row: ExecutionRow, f: dict[str, Any]) -> bool:
    return (
        all(getattr(row, k) == v for k, v in f.items() if not k.startswith("created"))
        and ("created_after" not in f or row.created_at > f["created_after"])
        and ("created_before" not in f or row.created_at < f["created_before"])
    )


async def pages(store: Store, limit: int, **filters: Any) -> list[list[ExecutionRow]]:
    found: list[list[ExecutionRow]] = []
    before: tuple[float, str] | None = None
    while len(found) < 100:
        page = await store.list_executions(limit=limit, before=before, **filters)
        if not page:
            return found
        found.append(page)
        before = (page[-1].created_at, page[-1].id)
    raise AssertionError("the pages never end")


async def test_every_filter_and_time_range_pages_newest_first(store: Store) -> None:
    newest_first = await stored(store)
    for f in FILTERS:
        expected = [r for r in newest_first if matches(r, f)]
        assert [r.id for r in await store.list_executions(limit=100, **f)] == [
            r.id for r in expected
        ], f
        # keyset pages of 4 (ties on created_at fall across pages), the full rows
        found = await pages(store, 4, **f)
        assert [r for page in found for r in page] == expected, f
        assert all(len(page) == 4 for page in found[:-1]), f


async def test_bounds_are_strict_and_combine_with_a_keyset_inside_or_outside_them(
    store: Store,
) -> None:
    newest_first = await stored(store)
    at_110 = [r.id for r in newest_first if r.created_at == 110.0]
    assert len(at_110) == 3
    listed = await store.list_executions(created_after=109.0, created_before=111.0)
    assert [r.id for r in listed] == at_110
    assert await store.list_executions(created_after=110.0, created_before=110.0) == []
    # a keyset at the upper bound: the keyset's ties (at 110.0, smaller ids) stay out too
    below = await store.list_executions(
        created_before=110.0, before=(110.0, at_110[0]), created_after=108.0
    )
    assert {r.created_at for r in below} == {109.0}
    # a keyset above the range starts at the range's top; one below it continues inside it
    above = await store.list_executions(created_before=111.0, before=(200.0, "z"), limit=2)
    assert [r.created_at for r in above] == [110.0, 110.0]
    inside = await store.list_executions(
        created_after=100.0, created_before=111.0, before=(105.0, at_110[0])
    )
    assert [r.id for r in inside] == [
        r.id
        for r in newest_first
        if 100.0 < r.created_at < 111.0 and (r.created_at, r.id) < (105.0, at_110[0])
    ]
    assert {r.created_at for r in inside} == {101.0, 102.0, 103.0, 104.0, 105.0}


async def test_summary_rows_leave_out_the_inputs_and_the_result(store: Store) -> None:
    newest_first = await stored(store)
    full = await store.list_executions(status="completed", limit=10)
    summary = await store.list_executions(status="completed", limit=10, summary=True)
    assert summary == [replace(r, inputs_json=b"", result_json=None) for r in full]
    assert full == [r for r in newest_first if r.status == "completed"][:10]
    assert all(r.result_json for r in full)
    # the rows stored keep them
    assert await store.get_execution(full[0].id) == full[0]


async def test_counts_by_status_since_a_time_per_workflow(store: Store) -> None:
    rows = await stored(store)
    assert await store.count_executions(since=0.0) == Counter(r.status for r in rows)
    since = 110.0  # at or after: the three created at 110.0 count
    for workflow in ("", "a", "b"):
        expected = Counter(
            r.status
            for r in rows
            if r.created_at >= since and (not workflow or r.workflow == workflow)
        )
        counts = await store.count_executions(since=since, workflow=workflow)
        assert counts == expected and all(counts.values()), workflow
    assert await store.count_executions(since=119.0, workflow="b") == {"running": 1}  # e57
    assert await store.count_executions(since=120.0) == {}
    assert await store.count_executions(since=0.0, workflow="none") == {}


# --- the query plans -------------------------------------------------------------------------

PLANNED: list[tuple[str, dict[str, Any]]] = [
    ("ix_executions_created", {}),
    ("ix_executions_workflow", {"workflow": "a"}),
    ("ix_executions_version", {"workflow": "a", "version": "1.0.0"}),
    ("ix_executions_status", {"status": "failed"}),
    ("ix_executions_workflow_status", {"workflow": "a", "status": "failed"}),
    ("ix_executions_parent", {"parent_id": "p1"}),
    ("ix_executions_created", {"created_after": 101.0, "created_before": 110.0}),
    ("ix_executions_workflow", {"workflow": "a", "created_after": 101.0}),
    (
        "ix_executions_workflow_status",
        {"workflow": "b", "status": "completed", "created_before": 118.0},
    ),
]


async def _plans(store: SqlStore, statements: list[tuple[str, Any]]) -> list[list[str]]:
    """SQLite's EXPLAIN QUERY PLAN of each (statement, parameters): its steps' details."""
    assert store.engine is not None
    plans = []
    async with store.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        for statement, parameters in statements:
            cursor = await raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plans.append([row[3] for row in await cursor.fetchall()])
    return plans


class _Statements:
    """The SELECT statements a store runs inside ``with``, with their parameters."""

    def __init__(self, store: SqlStore) -> None:
        assert store.engine is not None
        self.engine = store.engine.sync_engine
        self.seen: list[tuple[str, Any]] = []

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.seen.append((statement, parameters))

    def __enter__(self) -> list[tuple[str, Any]]:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)


@pytest.mark.parametrize(("index", "filters"), PLANNED, ids=[str(f) for _, f in PLANNED])
async def test_on_sqlite_each_filter_walks_its_index_in_order_on_every_page(
    tmp_path: Path, index: str, filters: dict[str, Any]
) -> None:
    async with _opened(SqlStore(f"sqlite:///{tmp_path / 'weir.db'}")) as s:
        await stored(s)
        with _Statements(s) as seen:
            first = await s.list_executions(limit=2, summary=True, **filters)
            last = (first[-1].created_at, first[-1].id)
            await s.list_executions(limit=2, before=last, **filters)
        for plan in await _plans(s, seen):
            # one walk of the index, in the list's order (no sort of the rows that matched),
            # bounded by the filter and the keyset; only the first page of all starts a
            # walk at the top without a bound
            [step] = plan
            unbounded = f"SCAN executions USING INDEX {index}"
            assert step.startswith(f"SEARCH executions USING INDEX {index} (") or (
                not filters and step == unbounded
            ), plan


async def test_on_sqlite_counts_read_ranges_of_an_index_only(tmp_path: Path) -> None:
    async with _opened(SqlStore(f"sqlite:///{tmp_path / 'weir.db'}")) as s:
        await stored(s)
        for workflow, index in (
            ("", "ix_executions_status"),
            ("a", "ix_executions_workflow_status"),
        ):
            with _Statements(s) as seen:
                await s.count_executions(since=110.0, workflow=workflow)
            [steps] = await _plans(s, seen)
            walks = [step for step in steps if "executions" in step]
            assert len(walks) == len(STATUSES), steps
            for step in walks:
                assert step.startswith(f"SEARCH executions USING COVERING INDEX {index} ("), steps


# --- the migration ----------------------------------------------------------------------------

OLD_INDEXES = {
    "ix_executions_parent": ["parent_id"],
    "ix_executions_workflow": ["workflow", "version", "created_at"],
    "ix_executions_status": ["status", "created_at"],
}


async def _indexes(sql_url: str) -> dict[str, list[str]]:
    """The indexes of ``executions``, read without opening a store (that would migrate)."""
    engine = create_async_engine(parse_url(sql_url)[0])
    try:
        async with engine.connect() as conn:

            def read(connection: sa.Connection) -> dict[str, list[str]]:
                found = sa.inspect(connection).get_indexes("executions")
                return {i["name"] or "": [str(c) for c in i["column_names"]] for i in found}

            return await conn.run_sync(read)
    finally:
        await engine.dispose()


async def test_0007_replaces_the_list_indexes_and_a_downgrade_restores_the_old_ones(
    sql_url: str,
) -> None:
    async with _opened(SqlStore(sql_url)) as s:
        for row in history():
            s.put_execution(row)
    indexes = await _indexes(sql_url)
    key = ["created_at", "id"]
    assert {
        name: indexes[name]
        for name in sorted(indexes)
        if name.startswith("ix_") and "unfinished" not in name
    } == {
        "ix_executions_created": key,
        "ix_executions_finished": ["finished_at"],
        "ix_executions_parent": ["parent_id", *key],
        "ix_executions_status": ["status", *key],
        "ix_executions_version": ["workflow", "version", *key],
        "ix_executions_workflow": ["workflow", *key],
        "ix_executions_workflow_status": ["workflow", "status", *key],
    }
    await _at_revision(sql_url, "0006")
    old = await _indexes(sql_url)
    assert {name: old[name] for name in OLD_INDEXES} == OLD_INDEXES
    assert not {"ix_executions_version", "ix_executions_workflow_status"} & set(old)
    async with _opened(SqlStore(sql_url)) as s:
        assert len(await s.list_executions(limit=100)) == 60
    assert await _indexes(sql_url) == indexes
