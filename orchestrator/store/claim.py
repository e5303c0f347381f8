"""``FileClaim``: one orchestrator per SQLite file, enforced with an exclusive ``flock``.

SQLite is the embedded, single-replica store: two orchestrators on one file would each resume
every execution and number events apart (docs/state.md). The orchestrator therefore claims the
file when it starts: an exclusive, non-blocking ``flock`` on ``<file>.orchestrator.lock``,
held while it runs. The kernel drops the lock when the process ends however it ends
(``kill -9`` included), so a crashed orchestrator never leaves a stale claim behind. The lock
file holds the holder's id and pid, for the message a second orchestrator stops with.

Other readers of the file (``weir`` tools, benchmarks, backups) do not claim it: only a
serving orchestrator does (``Store.claim``).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from orchestrator.store.base import StoreError


class FileClaim:
    """An exclusive claim of a SQLite file by one orchestrator; ``release()`` ends it."""

    def __init__(self, database: Path, owner: str, url: str) -> None:
        self.path = database.with_name(database.name + ".orchestrator.lock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise StoreError(
                f"store {url}: another orchestrator ({holder}) is serving this SQLite file; "
                "SQLite is for one orchestrator -- run several replicas on a postgresql:// "
                "store, or give this one its own STORE_URL"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{owner}, pid {os.getpid()}".encode(), 0)
        self._fd: int | None = fd

    @classmethod
    def of(cls, database: str, owner: str, url: str) -> FileClaim:
        """Claim the SQLite file ``database`` (a path as the URL gives it; symlinks resolved,
        so two names of one file are one claim)."""
        return cls(Path(database).resolve(), owner, url)

    def release(self) -> None:
        """End the claim (idempotent); the lock file stays, empty of meaning once unlocked."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock
