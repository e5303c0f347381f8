"""Items of nodes with ``map``: node runs and tasks are keyed by the item too; reused node runs.

``node_runs`` and ``tasks`` get ``item`` (the item's index; -1 for none, which every existing row
gets), part of the node runs' primary key and of the tasks' unique key, and ``node_runs`` gets
``reused_from`` (the execution a record was copied from by a retry).

Revision ID: 0004
Revises: 0003
Create Date: 2026-03-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NODE_RUN_KEY = ["execution_id", "node", "visit", "attempt"]
TASK_KEY = ["execution_id", "node", "visit", "attempt"]
PRIMARY_KEY = "node_runs_pkey"
"""PostgreSQL's name for node_runs' primary key since 0001; SQLite gets it from here on."""


def _with_item(key: list[str]) -> list[str]:
    return [*key[:3], "item", *key[3:]]


def _node_runs(*, items: bool) -> sa.Table:
    """node_runs before (``items`` False) or after this revision, for SQLite's copy: its
    reflection would mark the primary key on the columns, unnamed, and that key could not be
    dropped."""
    columns: list[sa.Column[Any]] = [
        sa.Column("execution_id", sa.Text, nullable=False),
        sa.Column("node", sa.Text, nullable=False),
        sa.Column("visit", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("attempt", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("output_json", sa.LargeBinary, nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("retryable", sa.Boolean, nullable=False),
        sa.Column("route", sa.Text, nullable=True),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double, nullable=False),
    ]
    if items:
        columns.append(sa.Column("item", sa.Integer, nullable=False, server_default=sa.text("-1")))
        columns.append(sa.Column("reused_from", sa.Text, nullable=True))
    key = _with_item(NODE_RUN_KEY) if items else NODE_RUN_KEY
    return sa.Table(
        "node_runs", sa.MetaData(), *columns, sa.PrimaryKeyConstraint(*key, name=PRIMARY_KEY)
    )


def upgrade() -> None:
    # Batch mode: SQLite cannot change a primary key or a constraint in place, so the table is
    # copied into a new one with the new key (existing rows get the default, -1); PostgreSQL
    # alters it in place.
    with op.batch_alter_table("node_runs", copy_from=_node_runs(items=False)) as batch:
        batch.add_column(
            sa.Column("item", sa.Integer, nullable=False, server_default=sa.text("-1"))
        )
        batch.add_column(sa.Column("reused_from", sa.Text, nullable=True))
        batch.drop_constraint(PRIMARY_KEY, type_="primary")
        batch.create_primary_key(PRIMARY_KEY, _with_item(NODE_RUN_KEY))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("item", sa.Integer, nullable=False, server_default=sa.text("-1"))
        )
        batch.drop_constraint("uq_tasks_key", type_="unique")
        batch.create_unique_constraint("uq_tasks_key", _with_item(TASK_KEY))


def downgrade() -> None:
    # Items' records and tasks have no place in the old keys: they go.
    op.execute("DELETE FROM node_runs WHERE item <> -1")
    op.execute("DELETE FROM tasks WHERE item <> -1")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint("uq_tasks_key", type_="unique")
        batch.create_unique_constraint("uq_tasks_key", TASK_KEY)
        batch.drop_column("item")
    with op.batch_alter_table("node_runs", copy_from=_node_runs(items=True)) as batch:
        batch.drop_constraint(PRIMARY_KEY, type_="primary")
        batch.create_primary_key(PRIMARY_KEY, NODE_RUN_KEY)
        batch.drop_column("reused_from")
        batch.drop_column("item")
