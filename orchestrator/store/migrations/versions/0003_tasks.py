"""Durable tasks: one row per attempt of a ``task`` node, completed by a worker by its token.

Revision ID: 0003
Revises: 0002
Create Date: 2026-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
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
        sa.UniqueConstraint("execution_id", "node", "visit", "attempt", name="uq_tasks_key"),
    )
    op.create_index("ix_tasks_created", "tasks", ["created_at", "token"])
    op.create_index("ix_tasks_queue", "tasks", ["queue", "status", "created_at"])
    op.create_index("ix_tasks_status", "tasks", ["status", "created_at"])


def downgrade() -> None:
    op.drop_table("tasks")
