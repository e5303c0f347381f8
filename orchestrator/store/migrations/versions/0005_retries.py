"""Retries: an execution names the execution it retries and the retry made of it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("retry_of", sa.Text, nullable=True))
    op.add_column("executions", sa.Column("retried_by", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("retried_by")
        batch.drop_column("retry_of")
