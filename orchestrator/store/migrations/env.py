"""Alembic's environment for weir's store: runs on the connection ``SqlStore.open`` passes in.

``SqlStore`` calls ``alembic.command.upgrade`` with ``config.attributes["connection"]`` set to a
synchronous connection that is already inside a transaction; the migrations run in it and the
store commits it. No logging configuration is read (no ``fileConfig``): weir's own logging
decides what is shown.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("weir's migrations run through SqlStore.open(), not the alembic CLI")

context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
