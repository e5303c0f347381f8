"""Listing indexes: every filter of the execution list pages its rows straight off an index.

The list (REST, gRPC, the web UI) is newest first, ``ORDER BY created_at DESC, id DESC LIMIT
n``, pages by the keyset ``(created_at, id) < (at, id)``, and filters on workflow, workflow and
version, status, workflow and status, parent, and a range of ``created_at``. Each filter gets
an index whose columns are its equality columns followed by ``created_at, id``, so that a page
is a short walk of one index in order, however deep, with no sort of the matching rows:

* ``ix_executions_workflow`` was (workflow, version, created_at): a workflow alone sorted all
  its executions for every page (50 ms at 56,000 on SQLite). It is (workflow, created_at, id)
  now, and (workflow, version, created_at, id) is ``ix_executions_version``.
* ``ix_executions_workflow_status``, (workflow, status, created_at, id), is new: with the status
  index alone, a rare workflow's failures meant walking every failure.
* ``ix_executions_status`` and ``ix_executions_parent`` get ``created_at, id`` (the parent one
  had neither).

On PostgreSQL ``CREATE INDEX`` holds off writes to ``executions`` while it builds (seconds for
a million rows); it runs in the transaction of the orchestrator's start-up, like every
migration.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

KEY = ["created_at", "id"]


def upgrade() -> None:
    for name in ("ix_executions_workflow", "ix_executions_status", "ix_executions_parent"):
        op.drop_index(name, "executions")
    op.create_index("ix_executions_workflow", "executions", ["workflow", *KEY])
    op.create_index("ix_executions_version", "executions", ["workflow", "version", *KEY])
    op.create_index("ix_executions_workflow_status", "executions", ["workflow", "status", *KEY])
    op.create_index("ix_executions_status", "executions", ["status", *KEY])
    op.create_index("ix_executions_parent", "executions", ["parent_id", *KEY])


def downgrade() -> None:
    for name in (
        "ix_executions_workflow",
        "ix_executions_version",
        "ix_executions_workflow_status",
        "ix_executions_status",
        "ix_executions_parent",
    ):
        op.drop_index(name, "executions")
    op.create_index("ix_executions_parent", "executions", ["parent_id"])
    op.create_index("ix_executions_workflow", "executions", ["workflow", "version", "created_at"])
    op.create_index("ix_executions_status", "executions", ["status", "created_at"])
