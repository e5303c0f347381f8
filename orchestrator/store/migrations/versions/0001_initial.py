"""The initial schema: workflows, executions, node_runs, events, triggers.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

FINISHED = ("completed", "failed", "cancelled")
# SQLite makes an INTEGER PRIMARY KEY the rowid; BIGINT would not be.
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("document_json", sa.LargeBinary, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("registered_at", sa.Double, nullable=False),
        sa.Column("deprecated", sa.Boolean, nullable=False),
    )
    op.create_table(
        "executions",
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
        sa.UniqueConstraint("idempotency_key", name="uq_executions_idempotency_key"),
        sa.UniqueConstraint("child_key", name="uq_executions_child_key"),
    )
    unfinished = sa.column("status").not_in(FINISHED)
    op.create_index(
        "ix_executions_unfinished",
        "executions",
        ["created_at", "id"],
        sqlite_where=unfinished,
        postgresql_where=unfinished,
    )
    op.create_index("ix_executions_created", "executions", ["created_at", "id"])
    op.create_index("ix_executions_parent", "executions", ["parent_id"])
    op.create_index("ix_executions_workflow", "executions", ["workflow", "version", "created_at"])
    op.create_index("ix_executions_status", "executions", ["status", "created_at"])
    op.create_index("ix_executions_finished", "executions", ["finished_at"])
    op.create_table(
        "node_runs",
        sa.Column("execution_id", sa.Text, primary_key=True),
        sa.Column("node", sa.Text, primary_key=True),
        sa.Column("visit", sa.Integer, primary_key=True, autoincrement=False),
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
    )
    op.create_table(
        "events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
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
    op.create_index("ix_events_execution", "events", ["execution_id", "seq"])
    op.create_index("ix_events_workflow", "events", ["workflow", "seq"])
    op.create_table(
        "triggers",
        sa.Column("workflow", sa.Text, primary_key=True),
        sa.Column("trigger", sa.Text, primary_key=True),
        sa.Column("last_fire_at", sa.Double, nullable=True),
        sa.Column("next_fire_at", sa.Double, nullable=True),
        sa.Column("owner", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("triggers", "events", "node_runs", "executions", "workflows"):
        op.drop_table(table)
