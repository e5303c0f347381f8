"""Waits: task kinds and deadlines, parked executions' wake time, signals.

``tasks`` gets ``kind`` (``worker``, ``callback``, ``signal``, ``timer``; every existing row is a
``worker`` task), ``deadline_at`` and ``outcome``; ``executions`` gets ``wake_at`` (when a parked
execution's timer wakes it); ``signals`` holds the signals sent to executions, consumed by a
``wait`` node or kept until one is reached.

Revision ID: 0006
Revises: 0005
Create Date: 2026-04-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Adding a column is done in place on both databases (SQLite fills a NOT NULL column from
    # its default), so no batch copy is needed.
    op.add_column("tasks", sa.Column("kind", sa.Text, nullable=False, server_default="worker"))
    op.add_column("tasks", sa.Column("deadline_at", sa.Double, nullable=True))
    op.add_column("tasks", sa.Column("outcome", sa.Text, nullable=True))
    op.add_column("executions", sa.Column("wake_at", sa.Double, nullable=True))
    op.create_table(
        "signals",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("execution_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("data_json", sa.LargeBinary, nullable=False),
        sa.Column("sent_at", sa.Double, nullable=False),
        sa.Column("consumed_by", sa.Text, nullable=True),
        sa.Column("consumed_at", sa.Double, nullable=True),
    )
    op.create_index("ix_signals_execution", "signals", ["execution_id", "sent_at"])


def downgrade() -> None:
    # What the old schema cannot express goes or becomes what it can: callbacks, signal waits
    # and timers are deleted (the old code would hand them to workers), and a parked execution
    # becomes pending, so that the old code places it again from its checkpoint.
    op.drop_table("signals")
    op.execute("DELETE FROM tasks WHERE kind <> 'worker'")
    op.execute("UPDATE executions SET status = 'pending' WHERE status = 'waiting'")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("wake_at")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("outcome")
        batch.drop_column("deadline_at")
        batch.drop_column("kind")
