"""Store URLs and the one-line causes of store errors, for ``SqlStore`` and ``open_store``."""

from __future__ import annotations

import errno
import socket
import sqlite3
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from orchestrator.store.base import StoreError

ACCEPTED = (
    "memory://, sqlite:///relative/path.db, sqlite:////absolute/path.db, "
    "postgresql://user:password@host:5432/database"
)
_SQLITE = ("sqlite", "sqlite+aiosqlite")
_POSTGRES = ("postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg")


def parse_url(url: str) -> tuple[URL, str]:
    """The SQLAlchemy URL (with its async driver) and the URL to show, password masked.

    Does no I/O; raises ``StoreError`` naming the URL and the accepted forms.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StoreError(f"store URL {url!r} is not valid; use one of: {ACCEPTED}") from None
    shown = url if parsed.password is None else parsed.render_as_string(hide_password=True)
    if parsed.drivername in _SQLITE:
        if parsed.host or not parsed.database or parsed.database == ":memory:":
            raise StoreError(f"store URL {shown!r} names no SQLite file; use one of: {ACCEPTED}")
        return parsed.set(drivername="sqlite+aiosqlite"), shown
    if parsed.drivername in _POSTGRES:
        if not parsed.host:
            raise StoreError(f"store URL {shown!r} names no host; use one of: {ACCEPTED}")
        return parsed.set(drivername="postgresql+asyncpg"), shown
    raise StoreError(
        f"store URL {shown!r}: unknown scheme {parsed.drivername!r}; use one of: {ACCEPTED}"
    )


def describe(exc: BaseException, target: URL, connect_timeout: float) -> str:
    """One line saying why, from the innermost cause that means something to a user."""
    chain = list(_chain(exc))
    where = f"{target.host}:{target.port or 5432}"
    for e in chain:
        if isinstance(e, StoreError):
            return str(e)
        if isinstance(e, ConnectionRefusedError) or (
            isinstance(e, OSError) and e.errno == errno.ECONNREFUSED
        ):
            return f"cannot connect to {where}: connection refused"
        if isinstance(e, socket.gaierror):
            return f"cannot resolve host {target.host!r}: {e.strerror or e}"
        if isinstance(e, TimeoutError):
            return f"no answer from {where} within {connect_timeout:g} s"
        if isinstance(e, asyncpg.InvalidCatalogNameError):
            return f"{_first_line(e)} on {where}"
        if isinstance(
            e, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
        ):
            return f"authentication failed on {where}: {_first_line(e)}"
        if isinstance(e, sqlite3.DatabaseError):
            message = _first_line(e)
            if "not a database" in message:
                return f"{target.database} is not an SQLite database ({message})"
            if "unable to open" in message:
                return f"cannot open {target.database}: {message}"
            return message
    # "Multiple exceptions: [Errno 111] ..." from asyncio's happy-eyeballs connect
    innermost = chain[-1]
    message = _first_line(innermost)
    if "Errno 111" in message or "Connect call failed" in message:
        return f"cannot connect to {where}: connection refused"
    return message or type(innermost).__name__


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes, outermost first (SQLAlchemy's ``.orig`` included)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and id(orig) not in seen:
            current = orig
        else:
            current = current.__cause__ or current.__context__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
