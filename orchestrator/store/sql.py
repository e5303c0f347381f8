"""``SqlStore``: SQLite (aiosqlite) or PostgreSQL (asyncpg) through SQLAlchemy 2 Core, async.

The store is two parts. The group-committed writes (``put_execution``, ``put_task``, ``put_signal``,
``add_node_run``, ``add_events``) and ``durable()`` go to a ``GroupCommit`` (``group_commit.py``:
the batching, the retrying commit, the SQLite writer thread and the PostgreSQL writer connection,
and why they are built that way), which ``open()`` starts and ``close()`` drains. This module holds
the rest: opening, migrating and closing, and the direct operations (workflows, executions, node
runs, pruning, tasks, signals, events, triggers), each on a connection of the async engine's pool.

``open()`` connects, applies the Alembic migrations shipped in ``migrations/`` and checks the
schema; every failure is one ``StoreError`` line naming the URL (password masked) and the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from engine.state.events import ExecutionStatus
from orchestrator.signals import Signal
from orchestrator.store import tables as t
from orchestrator.store.base import (
    UNFINISHED_TASK_STATUSES,
    EventRow,
    ExecutionRow,
    NodeRunRow,
    SignalRow,
    StoreError,
    TaskRow,
    TriggerRow,
    WorkflowRow,
)
from orchestrator.store.claim import FileClaim
from orchestrator.store.diagnose import describe, parse_url
from orchestrator.store.group_commit import GroupCommit
from orchestrator.store.schema import migrate

log = logging.getLogger(__name__)

_CHUNK = 500  # ids per IN (...) list
_SUMMARY = [c for c in t.executions.c if c.name not in ("inputs_json", "result_json")]
"""The columns of ``list_executions(summary=True)``: all but the two that can be large."""
_STATUSES = tuple(str(status) for status in ExecutionStatus)


def _values(table: sa.Table) -> Callable[[Any], dict[str, Any]]:
    """A fast row -> dict of column values (the columns are named after the row's fields)."""
    names = tuple(c.name for c in table.columns)
    get = attrgetter(*names)
    return lambda row: dict(zip(names, get(row), strict=True))


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
        self.committed: Signal[[float, int]] = Signal("committed")
        """Emitted (seconds, rows) after each batch committed, retries included (the metrics)."""
        self._claim: FileClaim | None = None
        self._writer: GroupCommit | None = None
        """The group commit of the latest ``open()``; kept once stopped, so that ``durable()``
        still raises the failure it ended with."""
        tr = (sqlite.insert if self._sqlite else postgresql.insert)(t.triggers)
        self._insert_trigger = tr.on_conflict_do_nothing(
            index_elements=list(t.triggers.primary_key.columns)
        )
        self._upsert_trigger = tr.on_conflict_do_update(
            index_elements=list(t.triggers.primary_key.columns),
            set_={c.name: tr.excluded[c.name] for c in t.triggers.columns if not c.primary_key},
        )

    def __repr__(self) -> str:
        return f"SqlStore({self.url!r})"

    @property
    def commits(self) -> int:
        """Batches committed by the group commit since the store was last opened."""
        return 0 if self._writer is None else self._writer.commits

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
            raise StoreError(f"store {self.url}: {self._cause(exc)}") from None
        self.engine = engine
        self._writer = GroupCommit(
            self.url,
            engine,
            sqlite_engine=self._create_sync_engine if self._sqlite else None,
            describe=self._cause,
            committed=self.committed,
            retry_window=self._retry_window,
            commit_interval=self._commit_interval,
        )
        self._writer.start()

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

    def _create_sync_engine(self) -> sa.Engine:
        """SQLite: the group commit's synchronous engine (pysqlite) on the same file."""
        engine = sa.create_engine(self._target.set(drivername="sqlite"))
        sa.event.listen(engine, "connect", self._pragmas)
        return engine

    def _pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        finally:
            cursor.close()

    def _cause(self, exc: BaseException) -> str:
        """One line saying why an operation failed."""
        return describe(exc, self._target, self._connect_timeout)

    def _migrate(self, connection: sa.Connection) -> None:
        """Bring the schema to the latest revision (runs inside ``open``'s transaction)."""
        migrate(connection, self.url, sqlite=self._sqlite)

    async def claim(self, owner: str) -> None:
        """On SQLite, claim the file for this orchestrator alone (``FileClaim``); on PostgreSQL
        nothing yet (several replicas on one database are issue 19's)."""
        if self._sqlite and self._claim is None:
            database = self._target.database or ""
            self._claim = await asyncio.to_thread(FileClaim.of, database, owner, self.url)

    async def close(self) -> None:
        """Commit what is queued, stop the writer, disconnect, end the claim; idempotent."""
        try:
            if self._writer is not None:
                await self._writer.stop()  # it commits what is queued first
        finally:
            engine, self.engine = self.engine, None
            if engine is not None:
                await engine.dispose()
            claim, self._claim = self._claim, None
            if claim is not None:
                claim.release()

    # --- group-committed writes (GroupCommit's) -----------------------------------------------

    def put_execution(self, row: ExecutionRow) -> None:
        if self._writer is not None:
            self._writer.put_execution(row)

    def put_task(self, row: TaskRow) -> None:
        if self._writer is not None:
            self._writer.put_task(row)

    def put_signal(self, row: SignalRow) -> None:
        if self._writer is not None:
            self._writer.put_signal(row)

    def add_node_run(self, row: NodeRunRow) -> None:
        if self._writer is not None:
            self._writer.add_node_run(row)

    def add_events(self, rows: Sequence[EventRow]) -> None:
        if self._writer is not None:
            self._writer.add_events(rows)

    async def durable(self) -> None:
        if self._writer is not None:
            await self._writer.durable()

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
            raise StoreError(f"store {self.url}: {self._cause(exc)}") from exc

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
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
        summary: bool = False,
    ) -> list[ExecutionRow]:
        # Each filter has an index of its equality columns then (created_at, id) (tables.py,
        # migration 0007): a page is a walk of one index in order, whatever its depth.
        e = t.executions.c
        query = sa.select(*_SUMMARY) if summary else sa.select(t.executions)
        if workflow:
            query = query.where(e.workflow == workflow)
        if version:
            query = query.where(e.version == version)
        if status:
            query = query.where(e.status == status)
        if parent_id:
            query = query.where(e.parent_id == parent_id)
        if created_after is not None:
            query = query.where(e.created_at > created_after)
        if before is not None:
            # A row value, not "a < x OR (a = x AND b < y)": both databases then bound the
            # index walk with it (PostgreSQL only filters with the OR form, from the top).
            query = query.where(sa.tuple_(e.created_at, e.id) < sa.tuple_(*before))
        if created_before is not None and (before is None or before[0] >= created_before):
            # Left out when the keyset implies it: given both, SQLite bounds its walk with
            # this one and filters the keyset, from the top of the range on every page.
            query = query.where(e.created_at < created_before)
        query = query.order_by(e.created_at.desc(), e.id.desc()).limit(limit)
        async with self._connect() as conn:
            result = await conn.execute(query)
            if summary:
                return [ExecutionRow(**r._mapping, inputs_json=b"") for r in result]
            return [ExecutionRow(**r._mapping) for r in result]

    async def count_executions(self, *, since: float, workflow: str = "") -> dict[str, int]:
        # One count per status, not GROUP BY status: each is a range of the status index (or
        # the workflow and status one), read without the table, so the time is that of the
        # rows counted. GROUP BY read every row of the index on SQLite, and the whole table
        # (or a bitmap of it) on PostgreSQL, even for the last minute.
        e = t.executions.c
        counts = []
        for status in _STATUSES:
            query = sa.select(sa.literal(status), sa.func.count()).select_from(t.executions)
            query = query.where(e.status == status, e.created_at >= since)
            if workflow:
                query = query.where(e.workflow == workflow)
            counts.append(query)
        async with self._connect() as conn:
            result = await conn.execute(sa.union_all(*counts))
            return {status: int(n) for status, n in result if n}

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
                await conn.execute(sa.delete(t.tasks).where(t.tasks.c.execution_id.in_(chunk)))
                await conn.execute(sa.delete(t.signals).where(t.signals.c.execution_id.in_(chunk)))
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

    # --- tasks --------------------------------------------------------------------------------

    async def get_task(self, token: str) -> TaskRow | None:
        return await self._one_task(sa.select(t.tasks).where(t.tasks.c.token == token))

    async def find_task(
        self, execution_id: str, node: str, visit: int, attempt: int, *, item: int | None = None
    ) -> TaskRow | None:
        k = t.tasks.c
        key = (k.execution_id == execution_id, k.node == node, k.visit == visit)
        at = (k.item == t.item_to_db(item), k.attempt == attempt)
        return await self._one_task(sa.select(t.tasks).where(*key, *at))

    async def _one_task(self, query: sa.Select[Any]) -> TaskRow | None:
        async with self._connect() as conn:
            r = (await conn.execute(query)).first()
        return None if r is None else TaskRow(**r._mapping)

    async def list_tasks(
        self, *, queue: str = "", status: str = "", execution_id: str = "", limit: int = 100
    ) -> list[TaskRow]:
        k = t.tasks.c
        query = sa.select(t.tasks)
        if queue:
            query = query.where(k.queue == queue)
        if status:
            query = query.where(k.status == status)
        if execution_id:
            query = query.where(k.execution_id == execution_id)
        query = query.order_by(k.created_at.desc(), k.token.desc()).limit(limit)
        async with self._connect() as conn:
            return [TaskRow(**r._mapping) for r in await conn.execute(query)]

    async def unfinished_tasks(self) -> list[TaskRow]:
        k = t.tasks.c
        query = (
            sa.select(t.tasks)
            .where(k.status.in_(sorted(UNFINISHED_TASK_STATUSES)))
            .order_by(k.created_at, k.token)
        )
        async with self._connect() as conn:
            return [TaskRow(**r._mapping) for r in await conn.execute(query)]

    # --- signals ------------------------------------------------------------------------------

    async def unconsumed_signals(self) -> list[SignalRow]:
        s, e = t.signals.c, t.executions.c
        query = (
            sa.select(t.signals)
            .join(t.executions, e.id == s.execution_id)
            .where(s.consumed_by.is_(None), e.status.not_in(t.FINISHED))
            .order_by(s.sent_at, s.id)
        )
        async with self._connect() as conn:
            return [SignalRow(**r._mapping) for r in await conn.execute(query)]

    async def list_signals(self, execution_id: str) -> list[SignalRow]:
        s = t.signals.c
        query = sa.select(t.signals).where(s.execution_id == execution_id).order_by(s.sent_at, s.id)
        async with self._connect() as conn:
            return [SignalRow(**r._mapping) for r in await conn.execute(query)]

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
