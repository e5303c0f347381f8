"""The pool lane: daemon worker threads, each owning one pool :class:`Runtime`.

Workers are plain daemon threads fed from one queue, so the process can exit even while a worker is
stuck inside a long C call (a slow pattern match). When a call overruns its deadline while its
worker is still busy, :meth:`WorkerPool.abandon` retires that worker (it exits once the C call
returns, dropping its runtime) and starts a replacement, so the pool keeps its capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.lua.api import LuaCode, LuaLimits, Scope
from engine.lua.runtime import Runtime

__all__ = ["Job", "WorkerPool"]

log = logging.getLogger(__name__)

_names = itertools.count(1)


class Job:
    """One pooled call, shared between the awaiting coroutine and the worker running it."""

    __slots__ = ("cancelled", "code", "future", "limits", "loop", "scope", "started", "worker")

    def __init__(
        self,
        code: LuaCode,
        scope: Scope,
        limits: LuaLimits,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.code = code
        self.scope = scope
        self.limits = limits
        self.loop = loop
        self.future = future
        self.cancelled = False  # polled by the instruction hook
        self.started: float | None = None  # time.monotonic() when a worker took it
        self.worker: _Worker | None = None  # the worker running it right now

    def deliver(self, ok: bool, value: Any) -> None:
        """Hand the outcome to the awaiting coroutine (from the worker thread)."""
        if self.cancelled:
            return

        def settle() -> None:
            if self.cancelled or self.future.done():
                return
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)

        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self.loop.call_soon_threadsafe(settle)


Executor = Callable[[Runtime, Job], Any]


class _Worker:
    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.retired = False
        self.thread = threading.Thread(
            target=self._main, name=f"weir-lua-{next(_names)}", daemon=True
        )

    @property
    def name(self) -> str:
        return self.thread.name

    def _main(self) -> None:
        pool = self.pool
        runtime: Runtime | None = None
        failure: Exception | None = None
        try:
            runtime = Runtime(inline=False)
        except Exception as exc:  # fail the jobs rather than leave them waiting
            log.exception("could not create a Lua runtime in %s", self.name)
            failure = exc
        while True:
            job = pool.queue.get()
            if job is None:
                return
            if not pool.begin(job, self):
                continue
            ok, value = False, failure
            if runtime is not None:
                try:
                    ok, value = True, pool.executor(runtime, job)
                except Exception as exc:
                    ok, value = False, exc
            retired = not pool.end(job, self)
            job.deliver(ok, value)
            if retired:
                return


class WorkerPool:
    """A fixed number of live workers; ``executor(runtime, job)`` runs each job."""

    def __init__(self, size: int, executor: Executor) -> None:
        if size < 1:
            raise ValueError("a Lua worker pool needs at least one worker")
        self.size = size
        self.executor = executor
        self.queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._closed = False

    def submit(self, job: Job) -> None:
        """Queue ``job``; starts the workers on first use."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the Lua sandbox is closed")
            while len(self._workers) < self.size:
                self._spawn()
        self.queue.put(job)

    def begin(self, job: Job, worker: _Worker) -> bool:
        """Called by a worker taking ``job``: False if it was cancelled while queued."""
        with self._lock:
            if job.cancelled:
                return False
            job.worker = worker
            job.started = time.monotonic()
            return True

    def end(self, job: Job, worker: _Worker) -> bool:
        """Called by a worker done with ``job``: False if the worker was retired meanwhile."""
        with self._lock:
            job.worker = None
            return not worker.retired

    def abandon(self, job: Job) -> None:
        """``job`` overran: if a worker is still on it, retire that worker and replace it."""
        with self._lock:
            worker = job.worker
            if worker is None or worker.retired:
                return
            worker.retired = True
            self._workers.remove(worker)
            if not self._closed:
                self._spawn()
        log.warning(
            "Lua worker %s is still busy with %s past its deadline (stuck in a C call?);"
            " abandoned it and started a replacement",
            worker.name,
            job.code.chunkname,
        )

    def close(self) -> None:
        """Stop the live workers once they finish their current job. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            count = len(self._workers)
            self._workers.clear()
        for _ in range(count):
            self.queue.put(None)

    def _spawn(self) -> None:
        worker = _Worker(self)
        self._workers.append(worker)
        worker.thread.start()
