"""``Worker``: the public face of a task worker; registration, configuration and lifecycle.

A ``serve()`` assembles its parts and owns them until it returns: a task group for the running
tasks (the ``Dispatcher``'s), a pool of ``slots`` daemon threads for sync handlers, and the
``Link`` (the stream). ``stop()`` (or SIGTERM under ``run()``) drains the dispatcher, then closes
the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from weir import _settings
from weir._dispatch import Dispatcher, Identity
from weir._errors import WorkerError
from weir._handler import Handler
from weir._link import Link
from weir._threads import DaemonThreadPool
from weir._version import __version__

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("weir.worker")


def default_worker_id() -> str:
    """``hostname-pid-random``: unique per process, readable in ``weir workers``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """A snapshot of a worker (``Worker.stats()``), e.g. for a liveness probe."""

    worker_id: str
    serving: bool
    connected: bool
    """A stream to the server is open and welcomed."""
    running: int
    """Tasks running now."""
    unacked: int
    """Answers the server has not acknowledged yet (sent again on the next stream)."""
    streams: int
    """Streams opened and welcomed since ``serve()`` started (more than 1 after reconnects)."""


class Worker:
    """Runs the ``task`` nodes of weir workflows: one handler per queue.

    ::

        import weir

        worker = weir.Worker(slots=4)

        @worker.task("send_email")
        def send_email(to: str, subject: str, ctx: weir.TaskContext) -> dict[str, str]:
            message_id = mailer.send(to, subject, key=ctx.idempotency_key)
            return {"message_id": message_id}

        if __name__ == "__main__":
            worker.run()  # until SIGTERM or Ctrl-C

    ``queues``: the queues to serve (default: those with a registered handler). ``server``
    (``host:port``) and ``token`` default to ``WEIR_SERVER`` (else ``127.0.0.1:50051``) and
    ``WEIR_TOKEN``. ``slots``: tasks run at once (sync handlers run in as many threads).
    ``heartbeat_interval``: seconds between keep-alives when there is nothing else to send
    (default: the server's). ``grace``: seconds a stopping worker gives its running tasks before
    it releases them to other workers.
    """

    def __init__(
        self,
        queues: Iterable[str] | None = None,
        *,
        server: str | None = None,
        token: str | None = None,
        slots: int = 10,
        worker_id: str | None = None,
        heartbeat_interval: float | None = None,
        grace: float = 30.0,
    ) -> None:
        self._queues = [queues] if isinstance(queues, str) else list(queues or ())
        self._handlers: dict[str, Handler] = {}
        self._server = server or _settings.server_from_env()
        self._token = _settings.token_from_env() if token is None else token
        self._worker_id = worker_id or default_worker_id()
        self._heartbeat_interval = heartbeat_interval
        self._slots = 0
        self._grace = 0.0
        self._set_slots(slots)
        self._set_grace(grace)
        if heartbeat_interval is not None and heartbeat_interval <= 0:
            raise WorkerError(f"heartbeat_interval must be positive, not {heartbeat_interval}")
        self._lock = threading.Lock()
        self._serving = False
        self._stop_requested = False
        self._signalled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        self._dispatcher: Dispatcher | None = None
        self._link: Link | None = None
        self._background: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<weir.Worker {self._worker_id} queues={self.queues} server={self._server}>"

    @property
    def worker_id(self) -> str:
        """Sent in every hello; a second connection with the same id replaces the first."""
        return self._worker_id

    @property
    def server(self) -> str:
        """The orchestrator's gRPC address, ``host:port``."""
        return self._server

    @property
    def slots(self) -> int:
        """Tasks run at once (and threads for sync handlers)."""
        return self._slots

    @property
    def grace(self) -> float:
        """Seconds running tasks get to finish once the worker stops."""
        return self._grace

    @property
    def queues(self) -> list[str]:
        """The queues this worker serves: those given, else those with a handler."""
        return list(self._queues or self._handlers)

    def task(self, queue: str) -> Callable[[F], F]:
        """Register the decorated function as the handler of ``queue``; it is returned as is.

        The task's arguments (a JSON object) arrive as keyword arguments; a parameter annotated
        ``weir.TaskContext`` receives the task's context; ``**kwargs`` takes any argument. The
        return value (JSON-serialisable) is the node's output. Sync functions run in the
        worker's threads, ``async def`` ones on its event loop::

            @worker.task("add")
            async def add(a: float, b: float) -> dict[str, float]:
                return {"sum": a + b}
        """
        if not queue:
            raise WorkerError("a queue name must not be empty")

        def register(fn: F) -> F:
            if self._serving:
                raise WorkerError(f"cannot register {queue!r}: the worker is serving already")
            if queue in self._handlers:
                raise WorkerError(
                    f"queue {queue!r} has a handler already: {self._handlers[queue].fn!r}"
                )
            self._handlers[queue] = Handler.of(queue, fn)
            return fn

        return register

    def configure(
        self,
        *,
        server: str | None = None,
        token: str | None = None,
        slots: int | None = None,
        worker_id: str | None = None,
        grace: float | None = None,
    ) -> None:
        """Change settings before serving (``weir worker --slots`` does): None keeps one."""
        if self._serving:
            raise WorkerError("cannot configure a worker that is serving")
        if server:
            self._server = server
        if token is not None:
            self._token = token
        if slots is not None:
            self._set_slots(slots)
        if worker_id:
            self._worker_id = worker_id
        if grace is not None:
            self._set_grace(grace)

    def stats(self) -> WorkerStats:
        """What the worker does right now."""
        dispatcher, link = self._dispatcher, self._link
        return WorkerStats(
            worker_id=self._worker_id,
            serving=self._serving,
            connected=link.connected if link else False,
            running=dispatcher.running if dispatcher else 0,
            unacked=dispatcher.outbox.unacked if dispatcher else 0,
            streams=link.streams if link else 0,
        )

    def run(self) -> None:
        """Serve until ``stop()``, SIGTERM or SIGINT, then drain; blocking.

        On the main thread it handles SIGTERM and SIGINT: the first drains (no new task, the
        running ones get ``grace`` seconds, the rest are released to other workers) and then
        ``run`` returns; a second exits the process at once. Raises ``RPCError`` when the server
        refuses the worker for good (a wrong token) and ``WorkerError`` when it is set up wrongly.
        """
        asyncio.run(self._run())

    async def serve(self) -> None:
        """Serve on the running event loop until ``stop()``/``aclose()``, then drain.

        Reconnects by itself while the server is away. Raises as ``run()`` does; installs no
        signal handler. ``async with worker:`` serves in the background instead.
        """
        handlers = self._checked_handlers()
        with self._lock:
            if self._serving:
                raise WorkerError(f"worker {self._worker_id} is serving already")
            self._serving = True
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._stopped = asyncio.Event()
            if self._stop_requested:
                self._stop.set()
        pool = DaemonThreadPool(self._slots, name=f"weir-{self._worker_id}")
        try:
            await self._serve(handlers, pool, self._stop)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            with self._lock:
                self._serving = False
                self._stop_requested = False
                self._loop = self._stop = None
            self._stopped.set()

    async def _serve(
        self, handlers: dict[str, Handler], pool: DaemonThreadPool, stop: asyncio.Event
    ) -> None:
        wake = asyncio.Event()
        identity = Identity(self._worker_id, self.queues, self._slots, __version__)
        metadata = (("authorization", f"Bearer {self._token}"),) if self._token else ()
        async with asyncio.TaskGroup() as group:
            dispatcher = Dispatcher(identity, handlers, group, pool, wake)
            link = Link(
                dispatcher,
                self._server,
                metadata,
                wake=wake,
                heartbeat_interval=self._heartbeat_interval,
            )
            self._dispatcher, self._link = dispatcher, link

            async def stop_when_asked() -> None:
                await stop.wait()
                await dispatcher.drain(self._grace)
                link.close()

            # the link ends after `close` (or with RPCError); the group then waits for the tasks
            group.create_task(link.run(), name=f"weir link {self._worker_id}")
            group.create_task(stop_when_asked(), name=f"weir stop {self._worker_id}")

    def stop(self) -> None:
        """Ask the worker to drain and stop; returns at once (callable from any thread)."""
        with self._lock:
            self._stop_requested = True
            loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing left to stop
                loop.call_soon_threadsafe(stop.set)

    async def aclose(self) -> None:
        """Stop and wait until the worker drained (call it on the loop that serves)."""
        self.stop()
        background, self._background = self._background, None
        if background is not None:
            await background
        elif self._stopped is not None and self._serving:
            await self._stopped.wait()

    async def __aenter__(self) -> Worker:
        """Serve in the background until the block ends, then drain (``aclose``)."""
        self._checked_handlers()
        if self._background is not None:
            raise WorkerError(f"worker {self._worker_id} is serving already")
        self._background = asyncio.get_running_loop().create_task(
            self.serve(), name=f"weir worker {self._worker_id}"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self) -> None:
        self._signalled = False
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(signum, self._on_signal, signum)
                except (NotImplementedError, RuntimeError):  # not on this platform
                    continue
                installed.append(signum)
        try:
            await self.serve()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    def _on_signal(self, signum: signal.Signals) -> None:
        if self._signalled:
            logger.warning("second %s: exiting now", signum.name)
            os._exit(1)
        self._signalled = True
        logger.info("%s: draining (running tasks get %gs)", signum.name, self._grace)
        self.stop()

    def _checked_handlers(self) -> dict[str, Handler]:
        queues = self.queues
        if not queues:
            raise WorkerError(
                f"worker {self._worker_id} has no queue: register a handler with "
                "@worker.task('queue-name')"
            )
        missing = [q for q in queues if q not in self._handlers]
        if missing:
            raise WorkerError(
                f"worker {self._worker_id}: no handler for queue(s) {', '.join(map(repr, missing))}"
                " (register one with @worker.task(...))"
            )
        return {q: self._handlers[q] for q in queues}

    def _set_slots(self, slots: int) -> None:
        if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
            raise WorkerError(f"slots must be a whole number of at least 1, not {slots!r}")
        self._slots = slots

    def _set_grace(self, grace: float) -> None:
        if grace < 0:
            raise WorkerError(f"grace must be 0 or more seconds, not {grace!r}")
        self._grace = float(grace)
