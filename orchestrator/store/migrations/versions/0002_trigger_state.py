"""Trigger state for cron triggers: the last execution, API triggers, the cursor's schedule.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): SQLite accepts NOT NULL columns with a default.
    op.add_column("triggers", sa.Column("last_execution_id", sa.Text, nullable=True))
    op.add_column(
        "triggers",
        sa.Column("source", sa.Text, nullable=False, server_default="definition"),
    )
    op.add_column("triggers", sa.Column("spec_json", sa.LargeBinary, nullable=True))
    op.add_column("triggers", sa.Column("schedule", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        for column in ("schedule", "spec_json", "source", "last_execution_id"):
            batch.drop_column(column)
