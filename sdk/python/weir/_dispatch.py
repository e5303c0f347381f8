"""The running side of one ``serve()``: tasks in, handlers run, answers out.

``Dispatcher`` is the link's ``Peer``: it writes the hello, reacts to each ``ToWorker`` (tasks to
run, cancellations, acknowledgements) and puts answers in the ``Outbox``. It runs each task as a
child of the task group ``serve()`` owns: async handlers on the loop, sync handlers in the
worker's threads. It never runs more than ``slots`` tasks: a task beyond that (or any while
draining) is released at once. ``drain`` is the graceful stop: no new task, the running ones get
``grace`` seconds, the rest are cancelled and released, and the answers get ``ACK_WAIT`` seconds
to be acknowledged.

Everything here runs on the event loop's thread, except ``TaskContext.heartbeat``, which hops
onto it with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from weir._context import TaskContext
from weir._handler import Handler, parse_args
from weir._outbox import Outbox
from weir.proto.v1 import worker_pb2 as pb

logger = logging.getLogger("weir.worker")

ACK_WAIT = 5.0
"""Seconds a stopping worker waits for the server to acknowledge its last answers."""
UNWIND_WAIT = 5.0
"""Seconds a stopping worker gives the tasks it cancelled after the grace period to unwind."""


@dataclass(eq=False, slots=True)
class _Running:
    ctx: TaskContext
    is_async: bool
    task: asyncio.Task[None] | None = None
    dropped: bool = False
    """Cancelled or released: the server no longer waits for its answer, which is not sent."""


async def _within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; whether it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


def _failure(token: str, message: str, kind: str) -> pb.TaskResult:
    return pb.TaskResult(
        token=token, failure=pb.TaskFailure(message=message, type=kind, retryable=False)
    )


@dataclass(frozen=True, slots=True)
class Identity:
    """What the hello says about the worker."""

    worker_id: str
    queues: Sequence[str]
    slots: int
    sdk_version: str


class Dispatcher:
    """Runs the tasks the server pushes, at most ``slots`` at once, and gathers the answers."""

    def __init__(
        self,
        identity: Identity,
        handlers: Mapping[str, Handler],
        group: asyncio.TaskGroup,
        pool: Executor,
        wake: asyncio.Event,
    ) -> None:
        self._identity = identity
        self._handlers = handlers
        self._group = group
        self._pool = pool
        self._wake = wake
        self._loop = asyncio.get_running_loop()
        self._running: dict[str, _Running] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._acked = asyncio.Event()
        self._acked.set()
        self._draining = False
        self.outbox = Outbox()

    @property
    def running(self) -> int:
        return len(self._running)

    def hello(self) -> pb.WorkerHello:
        """The first message of a stream, with the tasks still running from the last one."""
        return pb.WorkerHello(
            worker_id=self._identity.worker_id,
            queues=list(self._identity.queues),
            slots=self._identity.slots,
            sdk_version=self._identity.sdk_version,
            running=[token for token, r in self._running.items() if not r.dropped],
        )

    def on_message(self, message: pb.ToWorker) -> None:
        for ack in message.acks:
            self._on_ack(ack)
        for cancelled in message.cancelled:
            self._cancel(cancelled.token, cancelled.reason or "cancelled by the server")
        for task in message.tasks:
            self._accept(task)

    async def drain(self, grace: float) -> None:
        """Take no new task, give the running ones ``grace`` seconds, release the rest, wait
        (a little) for the answers' acknowledgements."""
        self._draining = True
        self.outbox.drain()
        self._wake.set()
        logger.info("draining: %d task(s) running, %gs to finish", len(self._running), grace)
        if not await _within(self._idle, grace):
            for token, running in list(self._running.items()):
                logger.warning("task %s still runs after the %gs grace: released", token, grace)
                running.dropped = True
                running.ctx._cancel("the worker is stopping")
                self.outbox.release(token)
                if running.task is not None:
                    running.task.cancel()
            self._wake.set()
            if not await _within(self._idle, UNWIND_WAIT):
                logger.warning(
                    "task(s) %s ignore their cancellation; waiting for them",
                    ", ".join(self._running),
                )
        if not await _within(self._acked, ACK_WAIT):
            logger.warning(
                "%d answer(s) not acknowledged by the server in %gs; stopping anyway",
                self.outbox.unacked,
                ACK_WAIT,
            )

    def _accept(self, task: pb.Task) -> None:
        token = task.token
        if token in self._running or self.outbox.has_result(token):
            logger.debug("task %s is here already; the repeat is ignored", token)
            return
        if self._draining:
            logger.debug("task %s arrived while draining: released", token)
            self._release(token)
            return
        if len(self._running) >= self._identity.slots:
            logger.warning(
                "task %s arrived with all %d slots busy: released", token, self._identity.slots
            )
            self._release(token)
            return
        handler = self._handlers.get(task.queue)
        if handler is None:
            served = ", ".join(map(repr, self._handlers))
            message = f"worker {self._identity.worker_id} has no handler for queue {task.queue!r}"
            self._answer(_failure(token, f"{message} (it serves {served})", "LookupError"))
            return
        try:
            args = parse_args(task.queue, task.args_json)
        except ValueError as exc:
            self._answer(_failure(token, str(exc), "ValueError"))
            return
        ctx = TaskContext(
            token=token,
            execution_id=task.execution_id,
            workflow=task.workflow,
            node=task.node,
            visit=task.visit,
            attempt=task.attempt,
            item=task.item if task.HasField("item") else None,
            queue=task.queue,
            idempotency_key=task.idempotency_key,
            deadline=task.deadline or None,
            heartbeat_timeout=task.heartbeat_timeout_s or None,
            args=args,
            _beat=functools.partial(self._beat_threadsafe, token),
        )
        running = _Running(ctx, handler.is_async)
        self._running[token] = running
        self._idle.clear()
        running.task = self._group.create_task(
            self._execute(handler, running), name=f"weir task {token}"
        )

    async def _execute(self, handler: Handler, running: _Running) -> None:
        ctx = running.ctx
        try:
            if handler.is_async:
                result = await handler.acall(ctx)
            else:
                call = functools.partial(contextvars.copy_context().run, handler.call, ctx)
                result = await self._loop.run_in_executor(self._pool, call)
        except Exception as exc:  # the SDK's own bug: fail this task, keep the worker
            logger.exception("internal error running task %s", ctx.token)
            result = _failure(ctx.token, f"internal error of the weir worker: {exc!r}", "WeirError")
        finally:
            del self._running[ctx.token]
            if not self._running:
                self._idle.set()
        if running.dropped:
            logger.info("task %s ended after its cancellation: its answer is not sent", ctx.token)
            return
        self._answer(result)

    def _answer(self, result: pb.TaskResult) -> None:
        self.outbox.result(result)
        self._acked.clear()
        self._wake.set()

    def _release(self, token: str) -> None:
        self.outbox.release(token)
        self._wake.set()

    def _cancel(self, token: str, reason: str) -> None:
        running = self._running.get(token)
        if running is None or running.dropped:
            logger.debug("cancellation of task %s, which is not running here", token)
            return
        logger.info("task %s cancelled: %s", token, reason)
        running.dropped = True
        running.ctx._cancel(reason)
        if running.is_async and running.task is not None:
            running.task.cancel()

    def _on_ack(self, ack: pb.TaskAck) -> None:
        self.outbox.acked(ack.token)
        if not self.outbox.unacked:
            self._acked.set()
        if ack.verdict not in (pb.VERDICT_REFUSED, pb.VERDICT_NOT_FOUND):
            logger.debug("task %s: %s", ack.token, pb.Verdict.Name(ack.verdict))
            return
        verdict = pb.Verdict.Name(ack.verdict)
        running = self._running.get(ack.token)
        if running is not None and not running.dropped:
            # the answer to hello's `running`: the task went to another worker meanwhile
            logger.warning(
                "task %s is no longer this worker's (%s: %s): cancelled",
                ack.token,
                verdict,
                ack.message,
            )
            self._cancel(ack.token, ack.message or verdict)
        else:
            logger.warning(
                "the server did not take the answer for task %s (%s: %s)",
                ack.token,
                verdict,
                ack.message,
            )

    def _beat_threadsafe(self, token: str, details_json: bytes) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the worker stopped
            self._loop.call_soon_threadsafe(self._beat, token, details_json)

    def _beat(self, token: str, details_json: bytes) -> None:
        running = self._running.get(token)
        if running is not None and not running.dropped:
            self.outbox.heartbeat(token, details_json)
            self._wake.set()
