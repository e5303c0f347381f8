"""The orchestrator's store: workflows, executions, node runs, tasks, signals, events, triggers.

``open_store(url)`` picks the backend from ``STORE_URL``:

=====================================  ===================================================
``memory://``                          ``MemoryStore``: dictionaries, nothing survives
``sqlite:///relative/path.db``         ``SqlStore`` on SQLite (aiosqlite), WAL mode
``sqlite:////absolute/path.db``
``postgresql://user:pw@host:5432/db``  ``SqlStore`` on PostgreSQL (asyncpg); ``postgres://``
=====================================  ===================================================

Errors::

    StoreError          the store cannot be opened, migrated or written; one line naming
                        the URL (password masked) and the cause
"""

from __future__ import annotations

from orchestrator.store.base import (
    TASK_STATUSES,
    UNFINISHED_TASK_STATUSES,
    EventRow,
    ExecutionRow,
    NodeRunRow,
    SignalRow,
    Store,
    StoreError,
    TaskRow,
    TriggerRow,
    WorkflowRow,
)
from orchestrator.store.memory import MemoryStore
from orchestrator.store.sql import SqlStore

__all__ = [
    "TASK_STATUSES",
    "UNFINISHED_TASK_STATUSES",
    "EventRow",
    "ExecutionRow",
    "MemoryStore",
    "NodeRunRow",
    "SignalRow",
    "SqlStore",
    "Store",
    "StoreError",
    "TaskRow",
    "TriggerRow",
    "WorkflowRow",
    "open_store",
]


def open_store(url: str) -> Store:
    """The store for ``url``, not yet opened (no I/O here: ``await store.open()`` connects).

    Raises ``StoreError`` naming the URL and the accepted forms when it is not one of them.
    """
    if url.strip().lower() in ("memory://", "memory:"):
        return MemoryStore()
    return SqlStore(url)
