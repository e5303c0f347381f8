"""Throwaway PostgreSQL databases on 127.0.0.1:5432 (user ``postgres``, trust authentication).

The test suite requires that server: when it is not reachable these helpers raise
``PostgresUnavailable`` (the test errors; it is never skipped).

* ``throwaway_database()``: ``async with throwaway_database() as url`` in async tests.
* ``throwaway_database_sync()``: ``with throwaway_database_sync() as url`` in sync fixtures; it
  runs asyncpg in a helper thread, so it works while an event loop runs in the caller's thread.

Each yields ``postgresql://postgres@127.0.0.1:5432/weir_test_<random>``, created empty first
and dropped (``WITH (FORCE)``, closing any connection left) at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import asyncpg

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"
CONNECT_TIMEOUT = 5.0

T = TypeVar("T")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server the tests need is not there."""


def database_url(name: str) -> str:
    return f"postgresql://{USER}@{HOST}:{PORT}/{name}"


async def _admin(statement: str) -> None:
    try:
        conn = await asyncpg.connect(
            host=HOST, port=PORT, user=USER, database="postgres", timeout=CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise PostgresUnavailable(
            f"the tests need PostgreSQL on {HOST}:{PORT} (user {USER}, trust authentication, "
            f"no password) and cannot reach it: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_database(name: str) -> None:
    await _admin(f'CREATE DATABASE "{name}"')


async def drop_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _new_name() -> str:
    return f"weir_test_{secrets.token_hex(6)}"


@contextlib.asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    """A fresh, empty database's URL; dropped on exit."""
    name = _new_name()
    await create_database(name)
    try:
        yield database_url(name)
    finally:
        await drop_database(name)


def _in_thread(make: Callable[[], Awaitable[T]]) -> T:
    async def run() -> T:
        return await make()

    with ThreadPoolExecutor(1, thread_name_prefix="throwaway-postgres") as pool:
        return pool.submit(lambda: asyncio.run(run())).result()


@contextlib.contextmanager
def throwaway_database_sync() -> Iterator[str]:
    """``throwaway_database`` for synchronous code (safe under a running event loop)."""
    name = _new_name()
    _in_thread(lambda: create_database(name))
    try:
        yield database_url(name)
    finally:
        _in_thread(lambda: drop_database(name))
