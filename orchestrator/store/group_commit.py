"""``GroupCommit``: the writer behind ``SqlStore``'s group-committed writes.

``put_execution``, ``put_task``, ``put_signal``, ``add_node_run`` and ``add_events`` append the
row (an immutable snapshot) to the batch that is gathering; they never wait. One writer task
commits a whole batch in one transaction -- executions as an upsert (the latest put of an id
wins), tasks as an upsert (the latest put of a token wins; see ``_statements``), signals as an
upsert (the latest put of an id wins, changing only its consumption), node runs as an insert that
ignores a key already stored, events as an insert (ignoring a sequence number already stored, so
that a retried commit is idempotent) -- while the next batch gathers. So a signal's consumption
and the completion of the wait task that took it, put together, commit together. There are no
foreign keys, so the order of the statements within the transaction constrains nothing.
``durable()`` waits for the batch holding everything written before it. A failed commit is
retried with backoff for ``retry_window`` seconds; after that the batch is lost, ``durable()``
raises ``StoreError`` for it and for every later call, and later writes are dropped (the
orchestrator stops; a restart resumes from what is durable).

The writer task is supervised: whatever escapes its loop -- a commit that gave up, or a bug (a
row that cannot be converted, a statement that cannot be built) -- is logged and becomes that
same failure, so no waiter of ``durable()`` is left waiting for a writer that is gone.

What a commit costs the orchestrator's process, not the database, is what limits throughput
(the orchestrator is CPU-bound), so the writer keeps that cost per batch small and makes batches
big under load:

* commits start at most every ``commit_interval`` (5 ms): when commits would follow each other
  back to back, writes gather for that long instead, so a busy orchestrator makes a few hundred
  larger commits per second rather than thousands of tiny ones; an idle one commits at once;
* SQLite: aiosqlite hops to its thread and back for every cursor, execute, close and commit
  (about a dozen hops of ~0.1 ms of CPU each per batch), so the group commit runs on a dedicated
  writer thread with SQLAlchemy's synchronous engine (pysqlite, the same dialect and statements):
  one hop per batch. Everything else uses the async engine;
* PostgreSQL: the writer keeps one connection (no pool checkout, ping and reset per batch) and
  sends each statement with asyncpg's pipelined ``executemany`` of one prepared statement;
* each batch statement is compiled once to the driver's SQL, and rows become parameter tuples
  through one ``attrgetter`` (only the latest put of an execution, task or signal is converted), so
  SQLAlchemy does no per-row work. Column types' own conversions are therefore not applied (the
  drivers take the values as they are), except ``tables.Item``'s (None is stored as -1), which
  ``_BatchStatement`` applies itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from itertools import chain
from operator import attrgetter
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.signals import Signal
from orchestrator.store import tables as t
from orchestrator.store.base import (
    TASK_IDENTITY,
    TASK_KEY,
    EventRow,
    ExecutionRow,
    NodeRunRow,
    SignalRow,
    StoreError,
    TaskRow,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Batch:
    """What one group commit writes, in this order."""

    executions: list[ExecutionRow]
    tasks: list[TaskRow]
    signals: list[SignalRow]
    node_runs: list[NodeRunRow]
    events: list[EventRow]

    def parts(self) -> tuple[list[Any], ...]:
        """The rows, in the order of ``_statements``."""
        return self.executions, self.tasks, self.signals, self.node_runs, self.events


_PROGRESS = tuple(f.name for f in fields(TaskRow) if f.name not in TASK_IDENTITY)
"""What a later put of a task changes."""

_VALUES = re.compile(r" VALUES (\([?, ]+\))")
_MAX_ROWS = 256
"""Rows in one multi-row INSERT on SQLite (at most 27 columns: well under its 32,766 variables)."""


@dataclass(frozen=True, slots=True)
class _BatchStatement:
    """A group-commit statement compiled once to the driver's SQL, with a row -> parameters
    getter in its positional order: SQLAlchemy does no per-row work.

    PostgreSQL sends ``sql`` with ``executemany`` of tuples (asyncpg pipelines one prepared
    statement). SQLite gets multi-row ``INSERT ... VALUES (...), (...)`` statements instead
    (``chunks``): pysqlite releases and retakes the GIL around every statement it steps, and
    with one statement per row that hand-off with the busy event loop thread cost more CPU than
    SQLite's own work.
    """

    sql: str
    params: Callable[[Any], tuple[Any, ...]]
    multi: dict[int, str] = field(default_factory=dict)
    """SQLite: the statement for n rows, by n (powers of two up to ``_MAX_ROWS``)."""

    @classmethod
    def compile(cls, statement: sa.Insert, dialect: sa.Dialect) -> _BatchStatement:
        compiled = statement.compile(dialect=dialect)
        names = compiled.positiontup
        assert names, "a batch statement has positional parameters"
        get = attrgetter(*names)
        columns = statement.table.c
        items = [
            i
            for i, name in enumerate(names)
            if name in columns and isinstance(columns[name].type, t.Item)
        ]
        if items:
            return cls(compiled.string, functools.partial(_with_items, get, items))
        return cls(compiled.string, get if len(names) > 1 else lambda row: (get(row),))

    def rows(self, rows: Iterable[Any]) -> list[tuple[Any, ...]]:
        return list(map(self.params, rows))

    def chunks(self, rows: list[Any]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """SQLite: (statement, flat parameters) per chunk, largest powers of two first."""
        params = self.rows(rows)
        start = 0
        while start < len(params):
            n = min(_MAX_ROWS, 1 << ((len(params) - start).bit_length() - 1))
            sql = self.multi.get(n)
            if sql is None:
                match = _VALUES.search(self.sql)
                assert match is not None, self.sql
                values = ", ".join([match.group(1)] * n)
                sql = self.multi[n] = (
                    f"{self.sql[: match.start()]} VALUES {values}" + (self.sql[match.end() :])
                )
            yield sql, tuple(chain.from_iterable(params[start : start + n]))
            start += n


def _with_items(
    get: Callable[[Any], tuple[Any, ...]], items: list[int], row: Any
) -> tuple[Any, ...]:
    """``get(row)`` with the ``tables.Item`` parameters at ``items`` converted (None is -1)."""
    values = list(get(row))
    for i in items:
        values[i] = t.item_to_db(values[i])
    return tuple(values)


def _statements(
    insert: Callable[[sa.Table], Any],
) -> tuple[sa.Insert, ...]:
    """The batch's statements in commit order: executions, tasks, signals, node runs, events."""
    ex = insert(t.executions)
    upsert_executions = ex.on_conflict_do_update(
        index_elements=[t.executions.c.id],
        # Only what changes after creation: the indexes on the rest are left untouched.
        set_={
            c.name: ex.excluded[c.name]
            for c in t.executions.columns
            if c.name not in t.EXECUTION_IDENTITY
        },
    )
    # Tasks conflict on their key (execution, node, visit, item, attempt), not on the token: a
    # put of the token stored under that key updates it, and a put of another token for a key
    # already stored matches no row of the WHERE and is ignored instead of failing the whole
    # batch (PostgreSQL's ON CONFLICT takes one arbiter, so the token cannot be a second one).
    ta = insert(t.tasks)
    upsert_tasks = ta.on_conflict_do_update(
        index_elements=[t.tasks.c[name] for name in TASK_KEY],
        set_={c.name: ta.excluded[c.name] for c in t.tasks.columns if c.name not in TASK_IDENTITY},
        where=t.tasks.c.token == ta.excluded.token,
    )
    si = insert(t.signals)
    upsert_signals = si.on_conflict_do_update(
        index_elements=[t.signals.c.id],
        set_={
            c.name: si.excluded[c.name]
            for c in t.signals.columns
            if c.name not in t.SIGNAL_IDENTITY
        },
    )
    insert_node_runs = insert(t.node_runs).on_conflict_do_nothing(
        index_elements=list(t.node_runs.primary_key.columns)
    )
    insert_events = insert(t.events).on_conflict_do_nothing(index_elements=[t.events.c.seq])
    return upsert_executions, upsert_tasks, upsert_signals, insert_node_runs, insert_events


class GroupCommit:
    """The group-commit writer of one open ``SqlStore``; see the module docstring.

    ``url`` is the store's URL as shown in messages (password masked); ``engine`` its async
    engine. ``sqlite_engine`` is given on SQLite only: it makes the synchronous engine (same
    file, same pragmas) the writer thread commits with; without it the writer keeps one
    connection of ``engine`` (PostgreSQL). ``describe`` says in one line why a commit failed.
    ``committed`` is emitted (seconds, rows) after each batch committed, retries included.
    """

    def __init__(
        self,
        url: str,
        engine: AsyncEngine,
        *,
        sqlite_engine: Callable[[], sa.Engine] | None,
        describe: Callable[[BaseException], str],
        committed: Signal[[float, int]],
        retry_window: float,
        commit_interval: float,
    ) -> None:
        self.url = url
        self._engine = engine
        self._sqlite_engine = sqlite_engine
        self._describe = describe
        self._committed = committed
        self._retry_window = retry_window
        self._commit_interval = commit_interval
        self.commits = 0
        """Batches committed so far."""
        # the batch gathering
        self._executions: dict[str, ExecutionRow] = {}
        """The latest put of each execution; rows are snapshots, converted when committed."""
        self._task_rows: dict[str, TaskRow] = {}
        """The latest put of each task, by token, likewise."""
        self._signals: dict[str, SignalRow] = {}
        """The latest put of each signal, by id, likewise."""
        self._node_runs: list[NodeRunRow] = []
        self._events: list[EventRow] = []
        self._pending = False
        self._gathering: asyncio.Future[StoreError | None] | None = None
        # the batch being committed
        self._inflight = False
        self._committing: asyncio.Future[StoreError | None] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        """The write loop while it runs; None before ``start()``, once stopped or failed."""
        self._started = False
        self._stopping = False
        self._failure: StoreError | None = None
        self._write_conn: AsyncConnection | None = None
        """PostgreSQL: the writer's own connection."""
        self._sync_engine: sa.Engine | None = None
        self._sync_conn: sa.Connection | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        """SQLite: the writer's synchronous engine, its connection and its thread."""
        insert = sqlite.insert if sqlite_engine is not None else postgresql.insert
        self._statements = _statements(insert)
        self._batch_statements: tuple[_BatchStatement, ...] | None = None

    def __repr__(self) -> str:
        return f"GroupCommit({self.url!r})"

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task (and on SQLite its thread); idempotent, once per writer."""
        if self._started:
            return
        self._started = True
        if self._sqlite_engine is not None:
            self._sync_engine = self._sqlite_engine()
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="weir-store-writer")
        self._task = asyncio.create_task(self._supervised(), name=f"group commit {self.url}")
        self._task.add_done_callback(self._ended)

    async def stop(self) -> None:
        """Commit what is queued, end the task, release its connection or thread; idempotent."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        try:
            if task is not None:
                await task  # it commits what is queued, then returns
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is None or current.cancelling():
                raise  # stop() itself is cancelled (and the writer with it)
            # someone else cancelled the writer: its failure (``_ended``), not stop()'s
        finally:
            self._abandon(self._failure or StoreError(f"store {self.url} is closed"))
            await self._release()

    async def __aenter__(self) -> GroupCommit:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _release(self) -> None:
        conn, self._write_conn = self._write_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        engine, self._sync_engine = self._sync_engine, None
        thread, self._write_thread = self._write_thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, self._close_sync, engine)
            thread.shutdown(wait=False)

    def _close_sync(self, engine: sa.Engine | None) -> None:
        """On the writer thread, which owns them: close its connection and engine."""
        conn, self._sync_conn = self._sync_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        if engine is not None:
            engine.dispose()

    # --- writes -------------------------------------------------------------------------------

    def put_execution(self, row: ExecutionRow) -> None:
        if self._task is None:
            return  # stopped or failed: durable() says so
        self._executions[row.id] = row
        if not self._pending:
            self._pending = True
            self._wake.set()

    def put_task(self, row: TaskRow) -> None:
        if self._task is None:
            return  # stopped or failed: durable() says so
        queued = self._task_rows.get(row.token)
        if queued is not None and queued is not row:
            # The first put's identity stays, as the upsert keeps a stored row's.
            row = replace(queued, **{name: getattr(row, name) for name in _PROGRESS})
        self._task_rows[row.token] = row
        if not self._pending:
            self._pending = True
            self._wake.set()

    def put_signal(self, row: SignalRow) -> None:
        if self._task is None:
            return  # stopped or failed: durable() says so
        queued = self._signals.get(row.id)
        if queued is not None and queued is not row:
            # The first put's identity stays, as the upsert keeps a stored row's.
            row = replace(queued, consumed_by=row.consumed_by, consumed_at=row.consumed_at)
        self._signals[row.id] = row
        if not self._pending:
            self._pending = True
            self._wake.set()

    def add_node_run(self, row: NodeRunRow) -> None:
        if self._task is None:
            return  # stopped or failed: durable() says so
        self._node_runs.append(row)
        if not self._pending:
            self._pending = True
            self._wake.set()

    def add_events(self, rows: Sequence[EventRow]) -> None:
        if rows and self._task is not None:
            self._events.extend(rows)
            if not self._pending:
                self._pending = True
                self._wake.set()

    async def durable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._pending:
            if self._task is None:
                raise StoreError(f"store {self.url} is not open")
            if self._gathering is None:
                self._gathering = asyncio.get_running_loop().create_future()
            waiter = self._gathering
        elif self._inflight:
            if self._committing is None:
                self._committing = asyncio.get_running_loop().create_future()
            waiter = self._committing
        else:
            return
        error = await asyncio.shield(waiter)
        if error is not None:
            raise error

    # --- the writer task ----------------------------------------------------------------------

    async def _supervised(self) -> None:
        """The write loop, supervised: an exception escaping it (a bug) fails the writer like
        a commit that gave up, so that no waiter of ``durable()`` waits for a task that is gone.
        """
        try:
            await self._write_loop()
        except Exception as exc:
            log.exception("store %s: the group commit failed", self.url)
            self._fail(StoreError(f"store {self.url}: the group commit failed: {exc!r}"))

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The task's done callback: a task cancelled (even before its first step) or ended by
        a ``BaseException`` fails the writer too; the task itself still ends cancelled."""
        if task.cancelled():
            reason = "was cancelled"
        elif (exc := task.exception()) is not None:
            reason = f"stopped: {exc!r}"
        else:
            return  # stopped, or failed already
        if not self._stopping:
            log.error("store %s: the group commit %s", self.url, reason)
        self._fail(StoreError(f"store {self.url}: the group commit {reason}"))

    def _fail(self, error: StoreError) -> None:
        """From now on ``durable()`` raises ``error`` and writes are dropped."""
        self._failure = error
        self._abandon(error)
        self._task = None

    def _abandon(self, error: StoreError) -> None:
        """Drop what is queued and release its waiters (and the batch committing's) with
        ``error``."""
        self._executions, self._task_rows, self._signals = {}, {}, {}
        self._node_runs, self._events = [], []
        self._pending = self._inflight = False
        for waiter in (self._gathering, self._committing):
            if waiter is not None and not waiter.done():
                waiter.set_result(error)
        self._gathering = self._committing = None

    async def _write_loop(self) -> None:
        """Commit batches until stopped or a commit gives up."""
        loop = asyncio.get_running_loop()
        last = -self._commit_interval
        while True:
            if not self._pending:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            gather = last + self._commit_interval - loop.time()
            if gather > 0 and not self._stopping:
                await asyncio.sleep(gather)  # back to back: let the batch grow
            last = loop.time()
            batch = _Batch(
                list(self._executions.values()),
                list(self._task_rows.values()),
                list(self._signals.values()),
                self._node_runs,
                self._events,
            )
            self._executions, self._task_rows, self._signals = {}, {}, {}
            self._node_runs, self._events = [], []
            self._pending = False
            self._committing, self._gathering = self._gathering, None
            self._inflight = True
            error = await self._commit_retrying(batch)
            if error is not None:
                self._fail(error)  # its waiters too
                return
            waiter, self._committing = self._committing, None
            self._inflight = False
            if self._committed:
                rows = sum(len(part) for part in batch.parts())
                self._committed(loop.time() - last, rows)
            if waiter is not None:
                waiter.set_result(None)

    async def _commit_retrying(self, batch: _Batch) -> StoreError | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_window
        delay = 0.05
        while True:
            try:
                await self._commit(batch)
            except (SQLAlchemyError, OSError, asyncpg.PostgresError) as exc:
                cause = self._describe(exc)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.error("store %s: commit failed, giving up: %s", self.url, cause)
                    return StoreError(
                        f"store {self.url}: cannot commit ({cause}); gave up after "
                        f"{self._retry_window:g} s"
                    )
                log.warning("store %s: commit failed (%s); retrying", self.url, cause)
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, 2.0)
            else:
                self.commits += 1
                return None

    async def _commit(self, batch: _Batch) -> None:
        if self._write_thread is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._write_thread, self._commit_sync, batch
            )
            return
        conn = self._write_conn
        if conn is None:
            conn = self._write_conn = await self._engine.connect()
        try:
            async with conn.begin():
                for statement, rows in self._batch(batch, conn.dialect):
                    await conn.exec_driver_sql(statement.sql, statement.rows(rows))
        except BaseException:
            self._write_conn = None  # a retry starts on a fresh connection
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise

    def _commit_sync(self, batch: _Batch) -> None:
        """SQLite, on the writer thread: the whole batch in one transaction."""
        conn = self._sync_conn
        if conn is None:
            assert self._sync_engine is not None
            conn = self._sync_conn = self._sync_engine.connect()
        try:
            with conn.begin():
                for statement, rows in self._batch(batch, conn.dialect):
                    for sql, params in statement.chunks(rows):
                        conn.exec_driver_sql(sql, params)
        except BaseException:
            self._sync_conn = None  # a retry starts on a fresh connection
            with contextlib.suppress(Exception):
                conn.invalidate()
            raise

    def _batch(self, batch: _Batch, dialect: sa.Dialect) -> list[tuple[_BatchStatement, list[Any]]]:
        """The batch's statements in commit order, each with its rows."""
        if self._batch_statements is None:
            self._batch_statements = tuple(
                _BatchStatement.compile(statement, dialect) for statement in self._statements
            )
        return [
            (statement, rows)
            for statement, rows in zip(self._batch_statements, batch.parts(), strict=True)
            if rows
        ]
