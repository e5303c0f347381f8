"""``SqlStore``: SQLite (aiosqlite) or PostgreSQL (asyncpg) through SQLAlchemy 2 Core, async.

Group commit: ``put_execution``, ``add_node_run`` and ``add_events`` append the row (an
immutable snapshot) to the batch that is gathering; they never wait. One writer task commits a whole
batch in one transaction -- executions as an upsert (the latest put of an id wins), node runs
as an insert that ignores a key already stored, events as an insert (ignoring a sequence number
already stored, so that a retried commit is idempotent) -- while the next batch gathers. A
failed commit is retried with backoff for ``retry_window`` seconds; after that the batch is lost,
``durable()`` raises ``StoreError`` for it and for every later call, and later writes are
dropped (the orchestrator stops; a restart resumes from what is durable).

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
  through one ``attrgetter`` (only the latest put of an execution is converted), so SQLAlchemy
  does no per-row work.

``open()`` connects, applies the Alembic migrations shipped in ``migrations/`` and checks the
schema; every failure is one ``StoreError`` line naming the URL (password masked) and the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from orchestrator.store import tables as t
from orchestrator.store.base import (
    CommitHook,
    EventRow,
    ExecutionRow,
    NodeRunRow,
    StoreError,
    TriggerRow,
    WorkflowRow,
)
from orchestrator.store.diagnose import describe, parse_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x77656972  # "weir": serialises migrations of replicas starting together
_CHUNK = 500  # ids per IN (...) list


def _values(table: sa.Table) -> Callable[[Any], dict[str, Any]]:
    """A fast row -> dict of column values (the columns are named after the row's fields)."""
    names = tuple(c.name for c in table.columns)
    get = attrgetter(*names)
    return lambda row: dict(zip(names, get(row), strict=True))


@dataclass(frozen=True, slots=True)
class _Batch:
    """What one group commit writes, in this order."""

    executions: list[ExecutionRow]
    node_runs: list[NodeRunRow]
    events: list[EventRow]


_VALUES = re.compile(r" VALUES (\([?, ]+\))")
_MAX_ROWS = 256
"""Rows in one multi-row INSERT on SQLite (at most 21 columns: well under its 32,766 variables)."""


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


class SqlStore:
    """The store on SQLite or PostgreSQL; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        retry_window: float = 30.0,
        connect_timeout: float = 10.0,
        busy_timeout: float = 10.0,
        commit_interval: float = 0.005,
    ) -> None:
        self._target, self.url = parse_url(url)
        self._sqlite = self._target.drivername.startswith("sqlite")
        self._retry_window = retry_window
        self._connect_timeout = connect_timeout
        self._busy_timeout = busy_timeout
        self._commit_interval = commit_interval
        self.engine: AsyncEngine | None = None
        """The SQLAlchemy engine while open (for diagnostics and tests)."""
        self.commits = 0
        """Batches committed by the group commit so far."""
        self.on_commit: CommitHook | None = None
        """Told (seconds, rows) after each batch committed, retries included (the metrics)."""
        # the batch gathering
        self._executions: dict[str, ExecutionRow] = {}
        """The latest put of each execution; rows are snapshots, converted when committed."""
        self._node_runs: list[NodeRunRow] = []
        self._events: list[EventRow] = []
        self._pending = False
        self._gathering: asyncio.Future[StoreError | None] | None = None
        # the batch being committed
        self._inflight = False
        self._committing: asyncio.Future[StoreError | None] | None = None
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._write_conn: AsyncConnection | None = None
        """PostgreSQL: the writer's own connection."""
        self._sync_engine: sa.Engine | None = None
        self._sync_conn: sa.Connection | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        """SQLite: the writer's synchronous engine, its connection and its thread."""
        self._stopping = False
        self._failure: StoreError | None = None
        self._batch_statements: tuple[_BatchStatement, ...] | None = None
        insert = sqlite.insert if self._sqlite else postgresql.insert
        ex = insert(t.executions)
        self._upsert_executions = ex.on_conflict_do_update(
            index_elements=[t.executions.c.id],
            # Only what changes after creation: the indexes on the rest are left untouched.
            set_={
                c.name: ex.excluded[c.name]
                for c in t.executions.columns
                if c.name not in t.EXECUTION_IDENTITY
            },
        )
        self._insert_node_runs = insert(t.node_runs).on_conflict_do_nothing(
            index_elements=list(t.node_runs.primary_key.columns)
        )
        self._insert_events = insert(t.events).on_conflict_do_nothing(
            index_elements=[t.events.c.seq]
        )
        tr = insert(t.triggers)
        self._insert_trigger = tr.on_conflict_do_nothing(
            index_elements=list(t.triggers.primary_key.columns)
        )
        self._upsert_trigger = tr.on_conflict_do_update(
            index_elements=list(t.triggers.primary_key.columns),
            set_={c.name: tr.excluded[c.name] for c in t.triggers.columns if not c.primary_key},
        )

    def __repr__(self) -> str:
        return f"SqlStore({self.url!r})"

    # --- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        if self.engine is not None:
            return
        if self._sqlite:
            directory = Path(self._target.database or "").parent
            if not directory.is_dir():
                raise StoreError(f"store {self.url}: directory {directory} does not exist")
        engine = self._create_engine()
        try:
            async with engine.begin() as conn:
                await conn.run_sync(self._migrate)
        except StoreError:
            await engine.dispose()
            raise
        except Exception as exc:
            await engine.dispose()
            raise StoreError(
                f"store {self.url}: {describe(exc, self._target, self._connect_timeout)}"
            ) from None
        self.engine = engine
        self._stopping = False
        self._failure = None
        self._wake = asyncio.Event()
        self._open_writer()

    def _create_engine(self) -> AsyncEngine:
        if self._sqlite:
            engine = create_async_engine(self._target)
            sa.event.listen(engine.sync_engine, "connect", self._pragmas)
            return engine
        return create_async_engine(
            self._target,
            pool_pre_ping=True,
            use_insertmanyvalues=False,  # executemany: one prepared statement, pipelined
            connect_args={
                "timeout": self._connect_timeout,
                "server_settings": {"application_name": "weir"},
            },
        )

    def _pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        finally:
            cursor.close()

    def _open_writer(self) -> None:
        if self._sqlite:
            engine = sa.create_engine(self._target.set(drivername="sqlite"))
            sa.event.listen(engine, "connect", self._pragmas)
            self._sync_engine = engine
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="weir-store-writer")
        self._writer = asyncio.create_task(self._write_loop(), name=f"group commit {self.url}")

    async def _close_writer(self) -> None:
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

    def _migrate(self, connection: sa.Connection) -> None:
        """Bring the schema to the latest revision (runs inside ``open``'s transaction)."""
        if not self._sqlite:
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
            )
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
        config.attributes["connection"] = connection
        script = ScriptDirectory.from_config(config)
        head = script.get_current_head()
        current = MigrationContext.configure(connection).get_current_heads()
        for revision in current:
            try:
                script.get_revision(revision)
            except CommandError:
                raise StoreError(
                    f"store {self.url}: the database schema is at revision {revision!r}, newer "
                    f"than this weir knows (latest {head}); upgrade weir to use it"
                ) from None
        if tuple(current) != (head,):
            with _quiet("alembic"):
                command.upgrade(config, "head")
            log.info("store %s: schema migrated from %s to %s", self.url, current or "empty", head)
        missing = set(t.TABLES) - set(sa.inspect(connection).get_table_names())
        if missing:
            raise StoreError(
                f"store {self.url}: the schema says revision {head} but tables "
                f"{', '.join(sorted(missing))} are missing"
            )

    async def close(self) -> None:
        """Commit what is queued, stop the writer, disconnect; idempotent."""
        self._stopping = True
        self._wake.set()
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                await writer  # it commits what is queued, then returns
        finally:
            self._abandon(self._failure or StoreError(f"store {self.url} is closed"))
            await self._close_writer()
            engine, self.engine = self.engine, None
            if engine is not None:
                await engine.dispose()

    # --- group commit -------------------------------------------------------------------------

    def put_execution(self, row: ExecutionRow) -> None:
        if self._writer is None:
            return  # closed or failed: durable() says so
        self._executions[row.id] = row
        if not self._pending:
            self._pending = True
            self._wake.set()

    def add_node_run(self, row: NodeRunRow) -> None:
        if self._writer is None:
            return  # closed or failed: durable() says so
        self._node_runs.append(row)
        if not self._pending:
            self._pending = True
            self._wake.set()

    def add_events(self, rows: Sequence[EventRow]) -> None:
        if rows and self._writer is not None:
            self._events.extend(rows)
            if not self._pending:
                self._pending = True
                self._wake.set()

    async def durable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._pending:
            if self._writer is None:
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

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = -self._commit_interval
        while True:
            if not self._pending:
                if self._stopping or self._failure is not None:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            gather = last + self._commit_interval - loop.time()
            if gather > 0 and not self._stopping:
                await asyncio.sleep(gather)  # back to back: let the batch grow
            last = loop.time()
            batch = _Batch(list(self._executions.values()), self._node_runs, self._events)
            self._executions, self._node_runs, self._events = {}, [], []
            self._pending = False
            self._committing, self._gathering = self._gathering, None
            self._inflight = True
            try:
                error = await self._commit_retrying(batch)
            except Exception as exc:  # a bug here must still release every waiter
                log.exception("store %s: the group commit failed", self.url)
                error = StoreError(f"store {self.url}: the group commit failed: {exc!r}")
            waiter, self._committing = self._committing, None
            self._inflight = False
            if error is None and self.on_commit is not None:
                rows = len(batch.executions) + len(batch.node_runs) + len(batch.events)
                try:
                    self.on_commit(loop.time() - last, rows)
                except Exception:  # metrics must never stop the writer
                    log.exception("store %s: the commit hook failed", self.url)
            if waiter is not None:
                waiter.set_result(error)
            if error is not None:
                self._failure = error
                self._abandon(error)
                self._writer = None  # later writes are dropped; durable() raises the failure
                return

    def _abandon(self, error: StoreError) -> None:
        """Drop what is queued and release its waiters with ``error``."""
        self._executions, self._node_runs, self._events = {}, [], []
        self._pending = False
        for waiter in (self._gathering, self._committing):
            if waiter is not None and not waiter.done():
                waiter.set_result(error)
        self._gathering = self._committing = None

    async def _commit_retrying(self, batch: _Batch) -> StoreError | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_window
        delay = 0.05
        while True:
            try:
                await self._commit(batch)
            except (SQLAlchemyError, OSError, asyncpg.PostgresError) as exc:
                cause = describe(exc, self._target, self._connect_timeout)
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
        assert self.engine is not None
        conn = self._write_conn
        if conn is None:
            conn = self._write_conn = await self.engine.connect()
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
                _BatchStatement.compile(statement, dialect)
                for statement in (
                    self._upsert_executions,
                    self._insert_node_runs,
                    self._insert_events,
                )
            )
        parts: tuple[list[Any], ...] = (batch.executions, batch.node_runs, batch.events)
        return [
            (statement, rows)
            for statement, rows in zip(self._batch_statements, parts, strict=True)
            if rows
        ]

    # --- direct operations --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connect(self, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
        engine = self.engine
        if engine is None:
            raise StoreError(f"store {self.url} is not open")
        try:
            async with engine.begin() if write else engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, OSError, asyncpg.PostgresError) as exc:
            raise StoreError(
                f"store {self.url}: {describe(exc, self._target, self._connect_timeout)}"
            ) from exc

    async def save_workflow(self, row: WorkflowRow) -> None:
        try:
            async with self._connect(write=True) as conn:
                await conn.execute(sa.insert(t.workflows), _values(t.workflows)(row))
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise StoreError(
                    f"store {self.url}: workflow {row.name} {row.version} is already stored"
                ) from None
            raise

    async def set_deprecated(self, name: str, version: str, deprecated: bool) -> None:
        w = t.workflows.c
        async with self._connect(write=True) as conn:
            await conn.execute(
                sa.update(t.workflows)
                .where(w.name == name, w.version == version)
                .values(deprecated=deprecated)
            )

    async def delete_workflow(self, name: str, version: str) -> None:
        w = t.workflows.c
        async with self._connect(write=True) as conn:
            await conn.execute(sa.delete(t.workflows).where(w.name == name, w.version == version))

    async def load_workflows(self) -> list[WorkflowRow]:
        async with self._connect() as conn:
            result = await conn.execute(sa.select(t.workflows))
            return [WorkflowRow(**r._mapping) for r in result]

    async def get_execution(self, execution_id: str) -> ExecutionRow | None:
        async with self._connect() as conn:
            result = await conn.execute(
                sa.select(t.executions).where(t.executions.c.id == execution_id)
            )
            r = result.first()
        return None if r is None else ExecutionRow(**r._mapping)

    async def find_execution(
        self, *, idempotency_key: str | None = None, child_key: str | None = None
    ) -> ExecutionRow | None:
        e = t.executions.c
        query = sa.select(t.executions)
        if idempotency_key is None and child_key is None:
            return None
        if idempotency_key is not None:
            query = query.where(e.idempotency_key == idempotency_key)
        if child_key is not None:
            query = query.where(e.child_key == child_key)
        async with self._connect() as conn:
            r = (await conn.execute(query)).first()
        return None if r is None else ExecutionRow(**r._mapping)

    async def list_executions(
        self,
        *,
        workflow: str = "",
        version: str = "",
        status: str = "",
        parent_id: str = "",
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[ExecutionRow]:
        e = t.executions.c
        query = sa.select(t.executions)
        if workflow:
            query = query.where(e.workflow == workflow)
        if version:
            query = query.where(e.version == version)
        if status:
            query = query.where(e.status == status)
        if parent_id:
            query = query.where(e.parent_id == parent_id)
        if before is not None:
            at, ident = before
            query = query.where(
                sa.or_(e.created_at < at, sa.and_(e.created_at == at, e.id < ident))
            )
        query = query.order_by(e.created_at.desc(), e.id.desc()).limit(limit)
        async with self._connect() as conn:
            return [ExecutionRow(**r._mapping) for r in await conn.execute(query)]

    async def unfinished_executions(self) -> list[ExecutionRow]:
        e = t.executions.c
        query = (
            sa.select(t.executions).where(e.status.not_in(t.FINISHED)).order_by(e.created_at, e.id)
        )
        async with self._connect() as conn:
            return [ExecutionRow(**r._mapping) for r in await conn.execute(query)]

    async def node_runs(self, execution_ids: Sequence[str]) -> dict[str, list[NodeRunRow]]:
        n = t.node_runs.c
        journals: dict[str, list[NodeRunRow]] = {}
        ids = list(dict.fromkeys(execution_ids))
        async with self._connect() as conn:
            for chunk in _chunks(ids):
                result = await conn.execute(
                    sa.select(t.node_runs)
                    .where(n.execution_id.in_(chunk))
                    .order_by(n.execution_id, n.position)
                )
                for r in result:
                    row = NodeRunRow(**r._mapping)
                    journals.setdefault(row.execution_id, []).append(row)
        return journals

    async def prune(self, finished_before: float, batch: int) -> int:
        e = t.executions.c
        doomed = (
            sa.select(e.id)
            .where(e.status.in_(t.FINISHED), e.finished_at < finished_before)
            .order_by(e.finished_at)
            .limit(batch)
        )
        if not self._sqlite:
            doomed = doomed.with_for_update(skip_locked=True)
        async with self._connect(write=True) as conn:
            result = await conn.execute(
                sa.delete(t.executions).where(e.id.in_(doomed)).returning(e.id)
            )
            ids = list(result.scalars())
            for chunk in _chunks(ids):
                await conn.execute(
                    sa.delete(t.node_runs).where(t.node_runs.c.execution_id.in_(chunk))
                )
                await conn.execute(sa.delete(t.events).where(t.events.c.execution_id.in_(chunk)))
            v = t.events.c
            unattached = (
                sa.select(v.seq)
                .where(v.execution_id == "", v.at < finished_before)
                .order_by(v.seq)
                .limit(batch)
            )
            await conn.execute(sa.delete(t.events).where(v.seq.in_(unattached)))
        return len(ids)

    # --- events -------------------------------------------------------------------------------

    async def last_event_seq(self) -> int:
        async with self._connect() as conn:
            seq = (await conn.execute(sa.select(sa.func.max(t.events.c.seq)))).scalar()
        return int(seq or 0)

    async def events(
        self,
        *,
        after: int = 0,
        execution_id: str = "",
        workflow: str = "",
        limit: int = 1000,
        newest: bool = False,
        before: int | None = None,
    ) -> list[EventRow]:
        v = t.events.c
        query = sa.select(t.events).where(v.seq > after)
        if before is not None:
            query = query.where(v.seq < before)
        if execution_id:
            query = query.where(v.execution_id == execution_id)
        if workflow:
            query = query.where(v.workflow == workflow)
        query = query.order_by(v.seq.desc() if newest else v.seq).limit(limit)
        async with self._connect() as conn:
            rows = [EventRow(**r._mapping) for r in await conn.execute(query)]
        if newest:
            rows.reverse()
        return rows

    # --- triggers -----------------------------------------------------------------------------

    async def trigger_states(self, workflow: str = "") -> list[TriggerRow]:
        c = t.triggers.c
        query = sa.select(t.triggers).order_by(c.workflow, c.trigger)
        if workflow:
            query = query.where(c.workflow == workflow)
        async with self._connect() as conn:
            return [TriggerRow(**r._mapping) for r in await conn.execute(query)]

    async def save_trigger_state(self, row: TriggerRow) -> None:
        async with self._connect(write=True) as conn:
            await conn.execute(self._upsert_trigger, _values(t.triggers)(row))

    async def claim_trigger(
        self,
        workflow: str,
        trigger: str,
        *,
        expected_next: float | None,
        new_next: float,
        schedule: str,
        owner: str,
        fired_at: float | None = None,
    ) -> bool:
        c = t.triggers.c
        values: dict[str, Any] = {"next_fire_at": new_next, "schedule": schedule, "owner": owner}
        if fired_at is not None:
            values["last_fire_at"] = fired_at
        # The WHERE clause is the compare-and-set: of replicas racing for the same cursor, the
        # first UPDATE to commit changes it and every other one then matches no row.
        cursor = (
            c.next_fire_at.is_(None) if expected_next is None else c.next_fire_at == expected_next
        )
        async with self._connect(write=True) as conn:
            if expected_next is None:
                await conn.execute(
                    self._insert_trigger, _values(t.triggers)(TriggerRow(workflow, trigger))
                )
            result = await conn.execute(
                sa.update(t.triggers)
                .where(c.workflow == workflow, c.trigger == trigger, cursor)
                .values(values)
            )
            return bool(result.rowcount == 1)

    async def set_trigger_execution(self, workflow: str, trigger: str, execution_id: str) -> None:
        c = t.triggers.c
        async with self._connect(write=True) as conn:
            await conn.execute(
                sa.update(t.triggers)
                .where(c.workflow == workflow, c.trigger == trigger)
                .values(last_execution_id=execution_id)
            )

    async def delete_trigger_state(self, workflow: str, trigger: str) -> bool:
        c = t.triggers.c
        async with self._connect(write=True) as conn:
            result = await conn.execute(
                sa.delete(t.triggers).where(c.workflow == workflow, c.trigger == trigger)
            )
            return bool(result.rowcount)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Alembic logs each step at INFO; weir logs one line of its own instead."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
