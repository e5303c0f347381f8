"""``LuaSandbox``: side-effect-free Lua runs inline when it is cheap, in a thread pool if not.

A thread-pool round trip costs ~160 µs while a trivial Lua call costs a few µs, so every call is
first tried on the caller's thread (:meth:`LuaSandbox.run_inline`) with a small slice of
instructions and memory and with the heavy functions (pattern matching, big ``string.rep``)
replaced by stubs. Lua code in the sandbox cannot do I/O, so abandoning such an attempt is
harmless: when the slice runs out or a heavy function is called, ``run_inline`` returns
``ESCALATE`` and :meth:`LuaSandbox.run` re-runs the code in the pool with the full limits.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from types import TracebackType
from typing import Any, Final

from engine.errors import LuaLimitError
from engine.lua.api import ESCALATE, LuaCode, LuaLimits, Scope
from engine.lua.pool import Job, WorkerPool
from engine.lua.runtime import Runtime, Stopped

__all__ = ["LuaSandbox"]

log = logging.getLogger(__name__)

INLINE_RESULT_BYTES: Final = 1024 * 1024  # larger results are encoded in the pool
TIMEOUT_MARGIN: Final = 0.1  # seconds the awaiting side grants past the deadline the hook enforces
CANCEL_GRACE: Final = 1.0  # seconds a cancelled call may keep its worker before it is replaced


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n:,} bytes"


def limit_error(code: LuaCode, reason: str, limits: LuaLimits) -> LuaLimitError:
    """The ``LuaLimitError`` for a call of ``code`` stopped for ``reason``."""
    name = code.chunkname
    if reason == "instructions":
        message = f"{name}: exceeded its instruction budget of {limits.instructions:,} instructions"
    elif reason == "memory":
        message = f"{name}: exceeded its memory limit of {_size(limits.memory)}"
    elif reason == "timeout":
        message = f"{name}: timed out after {limits.timeout:g}s"
    elif reason == "cancelled":
        message = f"{name}: cancelled"
    else:
        message = f"{name}: stopped by the sandbox ({reason})"
    return LuaLimitError(message)


class LuaSandbox:
    """Sandboxed Lua 5.4: an inline lane on the caller's thread plus a pool of worker threads.

    ``workers`` is the number of pool threads (started on first use), ``inline_instructions``
    and ``inline_memory`` the slice an inline attempt gets (capped by the call's own limits).
    Each thread that calls :meth:`run_inline` or :meth:`syntax_error` gets its own inline
    runtime. Use it as a context manager or call :meth:`close`.
    """

    __slots__ = ("_closed", "_inline_instructions", "_inline_memory", "_local", "_pool")

    def __init__(
        self,
        *,
        workers: int = 2,
        inline_instructions: int = 20_000,
        inline_memory: int = 16 * 1024 * 1024,
    ) -> None:
        self._inline_instructions = inline_instructions
        self._inline_memory = inline_memory
        self._local = threading.local()
        self._pool = WorkerPool(workers, self._execute)
        self._closed = False

    def syntax_error(self, code: LuaCode) -> str | None:
        """None if ``code`` compiles, else a message such as ``line 3: '=' expected near 'x'``.

        Compiles without running (and caches the result for later calls on this thread).
        """
        return self._inline_runtime().syntax_error(code)

    def run_inline(self, code: LuaCode, scope: Scope, limits: LuaLimits) -> Any:
        """Try ``code`` on the calling thread within the inline slice.

        Returns the converted result, or ``ESCALATE`` when the code needs more than the slice (the
        caller then runs it in the pool). Raises ``LuaError`` for an error in the code and
        ``LuaLimitError`` when the call's own limits (not just the slice) were exceeded.
        """
        try:
            runtime: Runtime = self._local.runtime
        except AttributeError:
            runtime = self._inline_runtime()
        instructions = self._inline_instructions
        if limits.instructions < instructions:
            instructions = limits.instructions
        memory = self._inline_memory
        if limits.memory < memory:
            memory = limits.memory
        result = runtime.run(code, scope, instructions, memory, INLINE_RESULT_BYTES)
        if type(result) is not Stopped:
            return result
        reason = result.reason
        if (
            reason in ("heavy", "toolarge")
            or (reason == "instructions" and limits.instructions > instructions)
            or (reason == "memory" and limits.memory > memory)
        ):
            return ESCALATE
        raise limit_error(code, reason, limits)

    async def run(self, code: LuaCode, scope: Scope, limits: LuaLimits) -> Any:
        """Run ``code`` inline if it fits the slice, else in the pool with the full ``limits``."""
        result = self.run_inline(code, scope, limits)
        if result is ESCALATE:
            log.debug("%s: escalated to the pool", code.chunkname)
            return await self.run_pooled(code, scope, limits)
        return result

    async def run_pooled(self, code: LuaCode, scope: Scope, limits: LuaLimits) -> Any:
        """Run ``code`` on a worker thread with the full ``limits``.

        The wall clock starts when a worker takes the call. If it has not returned by
        ``limits.timeout`` (plus a small margin) this raises ``LuaLimitError`` and, if the worker
        is stuck in a C call, replaces it. Cancelling the awaiting task stops the call too.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        job = Job(code, scope, limits, loop, future)
        self._pool.submit(job)
        try:
            while True:
                started = job.started
                if started is None:  # still queued: the clock has not started
                    wait = limits.timeout + TIMEOUT_MARGIN
                else:
                    wait = started + limits.timeout + TIMEOUT_MARGIN - time.monotonic()
                    if wait <= 0:
                        break
                done, _ = await asyncio.wait((future,), timeout=wait)
                if done:
                    return future.result()
        except asyncio.CancelledError:
            job.cancelled = True
            loop.call_later(CANCEL_GRACE, self._pool.abandon, job)
            raise
        job.cancelled = True
        self._pool.abandon(job)
        raise limit_error(code, "timeout", limits)

    def close(self) -> None:
        """Release the runtimes and stop the workers. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._local = threading.local()
        self._pool.close()

    def __enter__(self) -> LuaSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _inline_runtime(self) -> Runtime:
        if self._closed:
            raise RuntimeError("the Lua sandbox is closed")
        runtime: Runtime | None = getattr(self._local, "runtime", None)
        if runtime is None:
            runtime = Runtime(inline=True)
            self._local.runtime = runtime
        return runtime

    def _execute(self, runtime: Runtime, job: Job) -> Any:
        """Run one job on a worker thread (called by the pool)."""
        limits = job.limits
        started = job.started if job.started is not None else time.monotonic()
        result = runtime.call(
            job.code,
            job.scope,
            instructions=limits.instructions,
            memory=limits.memory,
            deadline=started + limits.timeout,
            cancel=job,
        )
        if type(result) is Stopped:
            raise limit_error(job.code, result.reason, limits)
        return result
