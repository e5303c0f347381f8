"""``migrate``: bring a SQL store's schema to the latest Alembic revision, when it opens.

The migrations ship inside the package (``MIGRATIONS``). On PostgreSQL an advisory lock held for
the migration's transaction serialises replicas starting together. A database whose schema is
newer than this code, or that claims the latest revision but lacks a table, is refused with a
``StoreError`` saying so (docs/state.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from orchestrator.store import tables as t
from orchestrator.store.base import StoreError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x77656972  # "weir": serialises migrations of replicas starting together


def migrate(connection: sa.Connection, url: str, *, sqlite: bool) -> None:
    """Bring the schema of ``connection``'s database to the latest revision, inside the
    caller's transaction; ``url`` (password masked) names the store in errors and the log."""
    if not sqlite:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    current = MigrationContext.configure(connection).get_current_heads()
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            raise StoreError(
                f"store {url}: the database schema is at revision {revision!r}, newer "
                f"than this weir knows (latest {head}); upgrade weir to use it"
            ) from None
    if tuple(current) != (head,):
        with _quiet("alembic"):
            command.upgrade(config, "head")
        log.info("store %s: schema migrated from %s to %s", url, current or "empty", head)
    missing = set(t.TABLES) - set(sa.inspect(connection).get_table_names())
    if missing:
        raise StoreError(
            f"store {url}: the schema says revision {head} but tables "
            f"{', '.join(sorted(missing))} are missing"
        )


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Alembic logs each step at INFO; weir logs one line of its own instead."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
