"""The SQL schema as SQLAlchemy Core tables: what ``SqlStore`` queries.

The migrations under ``migrations/versions/`` create the same schema; they are the source of
truth for the database, this module for the queries. Column names equal the row dataclasses'
field names in ``base.py``, so a result row converts with ``Row(**mapping)``.

There are no foreign keys on purpose: node runs and events reach the database through the group
commit, and a stray row (a late duplicate result of a pruned execution) must never fail a batch.
``SqlStore.prune`` deletes an execution's node runs, tasks, signals and events with it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.state.events import ExecutionStatus

FINISHED = tuple(str(status) for status in ExecutionStatus if status.terminal)
"""The statuses of ended executions (``TERMINAL_EXECUTION_STATUSES``), in the order the
migrations wrote them into the partial index."""
"""Execution statuses that are final."""

metadata = sa.MetaData()

NO_ITEM = -1
"""What the ``item`` columns hold for None (a node without ``map``, or a mapped node's own
record): a column of a primary key or a unique constraint cannot be NULL usefully, since NULLs
are never equal to each other."""


def item_to_db(item: int | None) -> int:
    return NO_ITEM if item is None else item


class Item(sa.types.TypeDecorator[int | None]):
    """The ``item`` columns: None in Python is ``NO_ITEM`` in the database.

    SQLAlchemy applies it to every query and result of ``SqlStore``; the group commit, which
    sends its compiled statements' parameters itself, converts with ``item_to_db``. Compare
    with ``item_to_db(item)``, never with None (``column == None`` is ``IS NULL``).
    """

    impl = sa.Integer
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: sa.Dialect) -> int:
        return item_to_db(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> int | None:
        return None if value is None or value == NO_ITEM else int(value)


# SQLite makes an ``INTEGER PRIMARY KEY`` the rowid; BIGINT would not be.
_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("version", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("document_json", sa.LargeBinary, nullable=False),
    sa.Column("digest", sa.Text, nullable=False),
    sa.Column("registered_at", sa.Double, nullable=False),
    sa.Column("deprecated", sa.Boolean, nullable=False),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("workflow", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("inputs_json", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("routing_key", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=True),
    sa.Column("parent_id", sa.Text, nullable=True),
    sa.Column("parent_node", sa.Text, nullable=True),
    sa.Column("child_key", sa.Text, nullable=True),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Column("engine", sa.Text, nullable=False),
    sa.Column("engine_name", sa.Text, nullable=False),
    sa.Column("lease", sa.Integer, nullable=False),
    sa.Column("placements", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Double, nullable=True),
    sa.Column("finished_at", sa.Double, nullable=True),
    sa.Column("deadline", sa.Double, nullable=True),
    sa.Column("cancel_reason", sa.Text, nullable=True),
    sa.Column("result_json", sa.LargeBinary, nullable=True),
    sa.Column("retry_of", sa.Text, nullable=True),
    sa.Column("retried_by", sa.Text, nullable=True),
    sa.Column("wake_at", sa.Double, nullable=True),
    sa.UniqueConstraint("idempotency_key", name="uq_executions_idempotency_key"),
    sa.UniqueConstraint("child_key", name="uq_executions_child_key"),
)

EXECUTION_IDENTITY = frozenset(
    {
        "id",
        "workflow",
        "version",
        "inputs_json",
        "created_at",
        "routing_key",
        "idempotency_key",
        "parent_id",
        "parent_node",
        "child_key",
        "depth",
        "retry_of",
    }
)
"""Columns of an execution fixed when it is created: an upsert never rewrites them."""

node_runs = sa.Table(
    "node_runs",
    metadata,
    sa.Column("execution_id", sa.Text, primary_key=True),
    sa.Column("node", sa.Text, primary_key=True),
    sa.Column("visit", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column(
        "item", Item, primary_key=True, autoincrement=False, server_default=sa.text(str(NO_ITEM))
    ),
    sa.Column("attempt", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("output_json", sa.LargeBinary, nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("retryable", sa.Boolean, nullable=False),
    sa.Column("route", sa.Text, nullable=True),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("finished_at", sa.Double, nullable=False),
    sa.Column("reused_from", sa.Text, nullable=True),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", _Seq, primary_key=True, autoincrement=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("severity", sa.Integer, nullable=False),
    sa.Column("workflow", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("execution_id", sa.Text, nullable=False),
    sa.Column("node", sa.Text, nullable=True),
    sa.Column("visit", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("engine_id", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data_json", sa.LargeBinary, nullable=True),
)

triggers = sa.Table(
    "triggers",
    metadata,
    sa.Column("workflow", sa.Text, primary_key=True),
    sa.Column("trigger", sa.Text, primary_key=True),
    sa.Column("last_fire_at", sa.Double, nullable=True),
    sa.Column("next_fire_at", sa.Double, nullable=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("last_execution_id", sa.Text, nullable=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("spec_json", sa.LargeBinary, nullable=True),
    sa.Column("schedule", sa.Text, nullable=False),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("token", sa.Text, primary_key=True),
    sa.Column("execution_id", sa.Text, nullable=False),
    sa.Column("workflow", sa.Text, nullable=False),
    sa.Column("node", sa.Text, nullable=False),
    sa.Column("visit", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("queue", sa.Text, nullable=False),
    sa.Column("args_json", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("worker", sa.Text, nullable=False),
    sa.Column("deliveries", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Double, nullable=True),
    sa.Column("finished_at", sa.Double, nullable=True),
    sa.Column("heartbeat_at", sa.Double, nullable=True),
    sa.Column("schedule_to_start_s", sa.Double, nullable=False),
    sa.Column("timeout_s", sa.Double, nullable=False),
    sa.Column("heartbeat_s", sa.Double, nullable=False),
    sa.Column("output_json", sa.LargeBinary, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("retryable", sa.Boolean, nullable=False),
    sa.Column("details_json", sa.LargeBinary, nullable=True),
    sa.Column("item", Item, nullable=False, server_default=sa.text(str(NO_ITEM))),
    sa.Column("kind", sa.Text, nullable=False, server_default="worker"),
    sa.Column("deadline_at", sa.Double, nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),
    # The key of find_task; its index also serves lookups and prune's deletes by execution.
    sa.UniqueConstraint("execution_id", "node", "visit", "item", "attempt", name="uq_tasks_key"),
)

signals = sa.Table(
    "signals",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("execution_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("data_json", sa.LargeBinary, nullable=False),
    sa.Column("sent_at", sa.Double, nullable=False),
    sa.Column("consumed_by", sa.Text, nullable=True),
    sa.Column("consumed_at", sa.Double, nullable=True),
)

SIGNAL_IDENTITY = frozenset({"id", "execution_id", "name", "outcome", "data_json", "sent_at"})
"""Columns of a signal fixed by its first put: an upsert only changes its consumption."""

TABLES = ("workflows", "executions", "node_runs", "events", "triggers", "tasks", "signals")

_unfinished = executions.c.status.not_in(FINISHED)
_newest = (executions.c.created_at, executions.c.id)

INDEXES = (
    # unfinished_executions(): a partial index, small however long the history grows
    sa.Index(
        "ix_executions_unfinished",
        executions.c.created_at,
        executions.c.id,
        sqlite_where=_unfinished,
        postgresql_where=_unfinished,
    ),
    # list_executions(): newest first (created_at, id), and the same order after each
    # filter's equality columns, so that a page is a walk of one index (migration 0007)
    sa.Index("ix_executions_created", *_newest),
    sa.Index("ix_executions_parent", executions.c.parent_id, *_newest),
    sa.Index("ix_executions_workflow", executions.c.workflow, *_newest),
    sa.Index("ix_executions_version", executions.c.workflow, executions.c.version, *_newest),
    sa.Index("ix_executions_workflow_status", executions.c.workflow, executions.c.status, *_newest),
    sa.Index("ix_executions_status", executions.c.status, *_newest),
    sa.Index("ix_executions_finished", executions.c.finished_at),
    sa.Index("ix_events_execution", events.c.execution_id, events.c.seq),
    sa.Index("ix_events_workflow", events.c.workflow, events.c.seq),
    # list_tasks(): newest first, unfiltered, by queue (and status), by status; the status
    # index serves unfinished_tasks() too (two ranges: pending, running)
    sa.Index("ix_tasks_created", tasks.c.created_at, tasks.c.token),
    sa.Index("ix_tasks_queue", tasks.c.queue, tasks.c.status, tasks.c.created_at),
    sa.Index("ix_tasks_status", tasks.c.status, tasks.c.created_at),
    # list_signals(), and prune's deletes by execution
    sa.Index("ix_signals_execution", signals.c.execution_id, signals.c.sent_at),
)
