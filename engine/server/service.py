"""The ``Engine`` gRPC service: executions placed by orchestrators, under a capacity.

Each orchestrator holds one ``Connect`` stream (a ``Session``, ``session.py``). What the engine has
to say is queued as domain objects and converted in one numbered ``FromEngine`` message when the
writer next runs, so a busy engine writes a few large messages rather than one per event.

Durability: node results and finished executions are kept by their execution until the
orchestrator acknowledges the message that carried them (``ToEngine.ack``, by ``seq``).

An execution reports on the stream that placed it. When that stream ends (the orchestrator died
or gave up on this engine) the execution is *detached*, not cancelled: it keeps running (and
counts against the capacity), keeps its unacknowledged results and its final result, and waits
up to ``detached_timeout`` seconds to be claimed. Every new stream's hello lists what is held; an
orchestrator claims an execution with ``ToEngine.attach`` (same lease), and the engine re-sends
what was not acknowledged and reports on the new stream from then on. A held execution the
orchestrator cancels, or nobody claims in time, is cancelled and forgotten without a report.

Sub-workflows: ``children`` (``ChildRequests``, ``children.py``) is the node runner's
``SubWorkflowLauncher``. A ``workflow`` node's attempt sends ``start_child`` on its execution's
stream (kept while detached, asked again on attach) and waits for ``child_finished`` with the
same (execution, lease, node, visit, item, attempt). ``task`` nodes do the same through
``tasks`` (``TaskRequests``, ``tasks.py``): ``schedule_task``, answered by ``task_finished``.
Definitions are parsed once per digest (``DefinitionCache``, ``definitions.py``).

Runs: the service keeps one record per execution placed here, a ``Run`` (``session.py``), in one
table by execution id. Where a run stands is two facts on it. Its ``phase``::

    NEW --placed--> RUNNING --finished--> ENDED --acknowledged (settled)--> GONE
                       |                    |
                       +----discarded-------+----------------------------> GONE

and, while RUNNING or ENDED, its ``session``: the stream it reports on, or None while *held*
(then it has an expiry timer)::

    attached --stream closed (detached)--> held --ToEngine.attach (attached)--> attached
                                             |
                                             +--detached_timeout (expired): discarded

A run is discarded when a newer lease of the same execution replaces it, when it is cancelled
while held, when it expires, when a drain hands it back, and on close. Every move goes through
``_move``, the one place that changes the table, the counts (running, ended, held) and their
gauges, and the expiry timer; the transitions around it (``_place``, ``_end`` for
finished, ``_settle``, ``_discard``, ``_hand_back``, ``_detach``, ``_attach``, ``_expire``) add
what is theirs: the task, the outbox, logs and counters. So a running run counts against the
capacity whether attached or held, and a newer lease counts once: the old run leaves RUNNING as
the new one enters. The running count (every message's ``load``) is kept by ``_move``; the
hello's held list and a closing stream's runs are read off the table; a session's outbox skips
the runs no longer on it, so forgetting a run never has to clean a session up.

One bad message does not end a stream: a part of a ``ToEngine`` (an ``attach``, ``execute``,
``cancel``, ``child_finished`` or the ``ack``) whose handling raises is logged and counted
(``weir_engine_bad_messages_total``), and the rest of the message and the stream go on; an
``execute`` that failed so and left nothing running is refused with ``REASON_INVALID``. Only a
stream that breaks, or a message gRPC cannot decode, ends the stream.

Parking (``parking.py``): a running run whose attempts only wait on the orchestrator is stopped
after ``PARK_AFTER`` and reported ``parked`` instead of finished (RUNNING -> ENDED like a finished
one, its report kept until acknowledged), which frees its slot.

Draining (SIGTERM): new executions are refused with ``REASON_DRAINING`` and every stream's next
message says ``draining``; running executions get a grace period to finish, the rest are
cancelled and reported as handed back, which the orchestrator re-places from its checkpoints.
Detached executions are cancelled then too: nobody will claim them from a stopping engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
from weir.proto.v1 import engine_pb2 as pb
from weir.proto.v1 import engine_pb2_grpc as pb_grpc

from engine.definition.model import Node
from engine.driver import ExecutionDriver
from engine.executors.node import NodeRunner
from engine.server import codec
from engine.server.children import ChildRequests
from engine.server.definitions import DefinitionCache, Rejected
from engine.server.metrics import EngineMetrics
from engine.server.parking import Parking
from engine.server.session import Phase, Run, Session
from engine.server.tasks import TaskRequests
from engine.state.events import NodeResult

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 2.0
"""Seconds between load-only messages on an idle stream."""

Reason = pb.ExecutionRejected.Reason


class EngineService(pb_grpc.EngineServicer):
    """Runs executions for any number of orchestrator streams; owns their tasks."""

    def __init__(
        self,
        engine_id: str,
        capacity: int,
        runner: NodeRunner,
        metrics: EngineMetrics,
        *,
        version: str,
        detached_timeout: float = 60.0,
        park_after: float = 10.0,
    ) -> None:
        self.engine_id = engine_id
        self.capacity = capacity
        self.version = version
        self.detached_timeout = detached_timeout
        self.draining = False
        self._runner = runner
        self._metrics = metrics
        self._runs: dict[str, Run] = {}
        """The table: every execution placed here, running or ended, attached or held."""
        self._running = 0
        """Runs in ``RUNNING``: what counts against the capacity (kept by ``_move``)."""
        self._ended = 0
        """Runs in ``ENDED`` (kept by ``_move``)."""
        self._held = 0
        """Held runs, running or ended (kept by ``_move``)."""
        self._tasks: set[asyncio.Task[None]] = set()
        """Every execution task not yet done, including those of runs already forgotten."""
        self._sessions: set[Session] = set()
        self._definitions = DefinitionCache(runner.sandbox)
        self.children = ChildRequests(self._running_run, metrics)
        self.tasks = TaskRequests(self._running_run, metrics)
        """The ``SubWorkflowLauncher`` of ``runner`` (``process.py`` wires it)."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._sweeper: asyncio.Task[None] | None = None
        self.parking = Parking(
            park_after, self._runs.values, lambda: self._running >= self.capacity
        )
        """Which runs only wait, and parking them (``parking.py``)."""

    @property
    def in_flight(self) -> int:
        return self._running

    @property
    def held(self) -> list[pb.HeldExecution]:
        """What a new stream's hello lists."""
        return [
            pb.HeldExecution(execution_id=run.id, lease=run.lease, finished=run.finished)
            for run in self._runs.values()
            if run.held
        ]

    # --- RPCs --------------------------------------------------------------------------------

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EngineStatus:
        return pb.EngineStatus(
            engine_id=self.engine_id,
            capacity=self.capacity,
            in_flight=self.in_flight,
            version=self.version,
            draining=self.draining,
            streams=len(self._sessions),
        )

    async def Connect(  # type: ignore[override]  # the generated stubs know only generators
        self,
        request_iterator: AsyncIterator[pb.ToEngine],
        context: grpc.aio.ServicerContext[pb.ToEngine, pb.FromEngine],
    ) -> None:
        """One orchestrator's stream; a coroutine with ``context.write``, not a generator, so
        that when the client goes away its ``finally`` runs at once (a generator suspended at
        ``yield`` is closed only by the garbage collector, its runs attached to a dead stream)."""
        session = Session(peer=context.peer())
        self._sessions.add(session)
        self._metrics.streams.set(len(self._sessions))
        reader = asyncio.create_task(self._read(session, request_iterator), name="engine-reader")
        log.info("orchestrator stream opened from %s", session.peer)
        try:
            first = self._message(session)
            first.hello.CopyFrom(
                pb.EngineHello(
                    engine_id=self.engine_id,
                    capacity=self.capacity,
                    version=self.version,
                    held=self.held,
                )
            )
            await context.write(first)
            while not session.closed:
                if not session.pending():
                    session.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(HEARTBEAT_INTERVAL):
                            await session.wake.wait()
                    if session.closed:
                        break
                self._metrics.messages.labels("out").inc()
                await context.write(self._message(session))
            if session.error is not None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, session.error)
        finally:
            # Everything that must happen is synchronous and comes before the one await: a
            # second cancellation (grpc's, or a timeout racing it) cannot skip the detach.
            session.closed = True
            reader.cancel()
            self._sessions.discard(session)
            self._metrics.streams.set(len(self._sessions))
            self._detach(session)
            log.info("orchestrator stream from %s closed", session.peer)
            await asyncio.gather(reader, return_exceptions=True)

    # --- the stream --------------------------------------------------------------------------

    async def _read(self, session: Session, requests: AsyncIterator[pb.ToEngine]) -> None:
        try:
            async for message in requests:
                self._metrics.messages.labels("in").inc()
                self._apply(session, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream broke or sent something grpc could not decode
            self._metrics.stream_errors.inc()
            session.error = f"bad stream message: {exc}"
            log.warning("stream from %s failed: %s", session.peer, exc)
        finally:
            session.closed = True
            session.wake.set()

    def _apply(self, session: Session, message: pb.ToEngine) -> None:
        """Handle one ``ToEngine``, part by part; a part that fails does not stop the others."""
        if message.HasField("hello"):
            session.orchestrator_id = message.hello.orchestrator_id
            log.info("stream from %s is orchestrator %s", session.peer, session.orchestrator_id)
        for attach in message.attach:
            try:
                self._attach(session, attach)
            except Exception:
                self._failed(session, "attach", attach.execution_id, attach.lease)
        for execute in message.execute:
            try:
                self._execute(session, execute)
            except Exception as exc:
                self._failed(session, "execute", execute.execution_id, execute.lease)
                self._refuse_failed(session, execute, exc)
        parts: tuple[tuple[str, Any, Callable[[Any], None]], ...] = (
            ("cancel", message.cancel, self._cancel),
            ("child_finished", message.child_finished, self.children.answer),
            ("task_scheduled", message.task_scheduled, self.tasks.scheduled),
            ("task_finished", message.task_finished, self.tasks.answer),
        )
        for part, items, handle in parts:
            for item in items:
                try:
                    handle(item)
                except Exception:
                    self._failed(session, part, item.execution_id, item.lease)
        if message.ack:
            try:
                self._ack(session, message.ack)
            except Exception:
                self._failed(session, "ack", "", message.ack)

    def _failed(self, session: Session, part: str, execution_id: str, number: int) -> None:
        """Handling ``part`` of a message raised (a bug): say so; the stream goes on.

        ``number`` is the part's lease, or for an ``ack`` the seq it acknowledges.
        """
        self._metrics.bad_messages.labels(part).inc()
        log.exception(
            "stream from %s: handling %s failed; the stream goes on",
            session.peer,
            f"{part} of {execution_id} lease {number}" if execution_id else f"{part} {number}",
        )

    def _refuse_failed(self, session: Session, m: pb.Execute, exc: Exception) -> None:
        """An ``execute`` whose handling raised: refuse it, unless it runs after all.

        Otherwise the orchestrator would wait for it until the stream ends.
        """
        run = self._runs.get(m.execution_id)
        if run is not None and run.lease == m.lease:
            return
        self._metrics.rejected.labels(Reason.Name(Reason.REASON_INVALID)).inc()
        session.reject(
            m.execution_id, m.lease, Reason.REASON_INVALID, f"internal engine error: {exc!r}"
        )

    def _message(self, session: Session) -> pb.FromEngine:
        return session.message(self._running, self.capacity, self.draining)

    def _ack(self, session: Session, seq: int) -> None:
        count, settled = session.ack(seq)
        if count:
            self._metrics.acked.inc(count)
        for run in settled:
            self._settle(run)

    # --- executions --------------------------------------------------------------------------

    def _execute(self, session: Session, m: pb.Execute) -> None:
        try:
            run = self._prepare(m)
        except Rejected as error:
            self._metrics.rejected.labels(Reason.Name(error.reason)).inc()
            log.info("execution %s lease %s rejected: %s", m.execution_id, m.lease, error.message)
            session.reject(m.execution_id, m.lease, error.reason, error.message)
            return
        old = self._runs.get(run.id)
        if old is not None:  # a newer placement of the same execution: it wins
            log.info("execution %s: lease %d replaces lease %d", run.id, run.lease, old.lease)
            self._discard(old)
        self._place(run, session)

    def _prepare(self, m: pb.Execute) -> Run:
        if not m.execution_id or m.lease < 1:
            raise Rejected(Reason.REASON_INVALID, "execution_id and lease are required")
        if self.draining:
            raise Rejected(Reason.REASON_DRAINING, f"engine {self.engine_id} is draining")
        old = self._runs.get(m.execution_id)
        if old is not None and old.lease >= m.lease:
            raise Rejected(
                Reason.REASON_DUPLICATE, f"lease {old.lease} of this execution already runs here"
            )
        # cached even when the execution is refused below
        definition = self._definitions.get(m.definition_digest, m.definition_json)
        replaces = old is not None and old.phase is Phase.RUNNING
        if not replaces and self._running >= self.capacity:
            raise Rejected(Reason.REASON_FULL, f"engine {self.engine_id} is full")
        try:
            inputs = codec.from_json(m.inputs_json, "inputs_json")
            checkpoint = [codec.result_from_pb(r) for r in m.checkpoint]
        except codec.CodecError as exc:
            raise Rejected(Reason.REASON_INVALID, str(exc)) from None
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, dict):
            raise Rejected(Reason.REASON_INVALID, "inputs_json: expected a JSON object")
        run = Run(m.execution_id, m.lease, None)  # placed on its stream by _place
        run.driver = ExecutionDriver(
            definition,
            inputs,
            self._runner,
            execution_id=m.execution_id,
            on_event=run.add_event,
            on_result=functools.partial(self._node_result, run, definition.by_id),
            checkpoint=checkpoint,
            timeout=m.timeout.ToTimedelta().total_seconds() if m.HasField("timeout") else None,
            depth=m.depth,
        )
        return run

    def _node_result(self, run: Run, nodes: Mapping[str, Node], result: NodeResult) -> None:
        self._metrics.node_finished(nodes[result.node], result)
        run.add_result(result)

    def _cancel(self, m: pb.Cancel) -> None:
        run = self._runs.get(m.execution_id)
        if run is None or (m.lease != 0 and m.lease != run.lease):
            log.debug("cancel of %s lease %d: not here", m.execution_id, m.lease)
            return
        if run.held:  # the orchestrator placed it elsewhere meanwhile
            log.info("held execution %s lease %d cancelled: %s", run.id, run.lease, m.reason or "-")
            self._discard(run)
        elif not run.finished:
            run.driver.cancel(m.reason or "cancelled")

    async def _run(self, run: Run) -> None:
        started = time.monotonic()
        try:
            result = await run.driver.run()
        except asyncio.CancelledError:
            if run.parked is not None and run.phase is Phase.RUNNING:
                self._end(run)  # parked: it reports so instead of a result, and leaves
                run.park(run.parked)
                self._metrics.parked.inc()
                return
            self._discard(run)  # discarded or handed back already, or cancelled from outside
            raise
        except Exception as exc:  # a bug: report the execution failed rather than lose it
            log.exception("execution %s crashed", run.id)
            result = run.driver.result().failed(f"internal engine error: {exc!r}")
        finally:
            self._end(run)
        status = str(result.status)
        self._metrics.executions.labels(status).inc()
        self._metrics.duration.observe(time.monotonic() - started)
        if run.phase is not Phase.ENDED:
            return  # discarded meanwhile: nobody may hear of it
        run.finish(
            pb.ExecutionFinished(
                execution_id=run.id,
                lease=run.lease,
                status=codec.EXECUTION_STATUS_TO_PB[status],
                result_json=codec.to_json(result.to_json()),
            )
        )

    # --- transitions -------------------------------------------------------------------------

    def _move(self, run: Run, phase: Phase, session: Session | None) -> None:
        """Put ``run`` in ``phase`` on ``session`` (None: held).

        The only place that changes the table, the counts and their gauges, and the expiry
        timer of a held run.
        """
        before, was_held = run.phase, run.held
        run.phase = phase
        run.session = session
        metrics = self._metrics
        if phase is not before:
            if before is Phase.RUNNING:
                self._running -= 1
            elif before is Phase.ENDED:
                self._ended -= 1
            if phase is Phase.RUNNING:
                self._runs[run.id] = run
                self._running += 1
            elif phase is Phase.ENDED:
                self._ended += 1
            elif phase is Phase.GONE and before is not Phase.NEW:
                del self._runs[run.id]
            if Phase.RUNNING in (before, phase):
                metrics.in_flight.set(self._running)
                if self._running:
                    self._idle.clear()
                else:
                    self._idle.set()
            if Phase.ENDED in (before, phase):
                metrics.unacknowledged.set(self._ended)
        held = run.held
        if held is was_held:
            return
        if held:
            self._held += 1
            run.expiry = asyncio.get_running_loop().call_later(
                self.detached_timeout, self._expire, run
            )
        else:
            self._held -= 1
            if run.expiry is not None:
                run.expiry.cancel()
                run.expiry = None
        metrics.detached.set(self._held)

    def _place(self, run: Run, session: Session) -> None:
        """NEW -> RUNNING on ``session``: start its task."""
        self._move(run, Phase.RUNNING, session)
        if self._sweeper is None and self.parking.park_after > 0 and not self._closed:
            self._sweeper = asyncio.create_task(self._sweep(), name="engine-park-sweep")
        task = asyncio.create_task(self._run(run), name=f"execution {run.id}")
        run.task = task
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._task_done, run))

    def _task_done(self, run: Run, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if (
            run.phase is Phase.GONE
            or run.final is not None
            or run.parked is not None
            or run.task is not task
        ):
            return
        # it ended without a final result: cancelled before it started, or a bug
        if not task.cancelled():
            log.error(
                "execution %s: its task ended without a final result",
                run.id,
                exc_info=task.exception(),
            )
        self._discard(run)

    def _end(self, run: Run) -> None:
        """RUNNING -> ENDED (finished): its driver stopped.

        ``_run`` reports the final result right after, in the same step of its task.
        """
        if run.phase is Phase.RUNNING:  # not discarded meanwhile
            self._move(run, Phase.ENDED, run.session)

    def _settle(self, run: Run) -> None:
        """ENDED -> GONE: the orchestrator acknowledged everything it reported."""
        self._move(run, Phase.GONE, None)

    def _discard(self, run: Run) -> None:
        """Forget ``run`` wherever it is and cancel it if it runs; nothing is reported."""
        self._move(run, Phase.GONE, None)
        task = run.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def _hand_back(self, run: Run) -> None:
        """Drain gives a running execution up: its stream hears so, and it is forgotten."""
        session = run.session
        if session is not None and not session.closed:
            session.handed_back.append(pb.ExecutionHandedBack(execution_id=run.id, lease=run.lease))
            session.wake.set()
            self._metrics.handed_back.inc()
        self._discard(run)

    # --- parking -----------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Park the runs that only waited long enough (``parking.py``), until closed."""
        while not self._closed:
            await asyncio.sleep(self.parking.every)
            self.parking.sweep(time.monotonic())

    # --- detached executions -----------------------------------------------------------------

    def _detach(self, session: Session) -> None:
        """The stream ended: its executions keep running, held for ``detached_timeout``."""
        runs = [run for run in self._runs.values() if run.session is session]
        if not runs:
            return
        if self._closed:
            for run in runs:
                self._discard(run)
            return
        for run in runs:
            self._move(run, run.phase, None)
        log.warning(
            "stream from %s closed: holding %d executions (%d finished) for %.1fs",
            session.peer,
            len(runs),
            sum(run.finished for run in runs),
            self.detached_timeout,
        )

    def _attach(self, session: Session, m: pb.Attach) -> None:
        run = self._runs.get(m.execution_id)
        if run is None or not run.held or run.lease != m.lease:
            log.debug("attach of %s lease %d: not held here", m.execution_id, m.lease)
            return
        self._move(run, run.phase, session)
        resent = run.rewind()
        session.mark(run)
        self._metrics.attached.inc()
        self._metrics.resent.inc(resent)
        log.info(
            "execution %s lease %d attached to the stream from %s (%d records re-sent)",
            run.id,
            run.lease,
            session.peer,
            resent,
        )

    def _expire(self, run: Run) -> None:
        run.expiry = None
        if not run.held:
            return
        log.warning(
            "execution %s lease %d was not attached within %.1fs: %s",
            run.id,
            run.lease,
            self.detached_timeout,
            "forgetting its result" if run.finished else "cancelling it",
        )
        self._metrics.expired.inc()
        self._discard(run)

    def _running_run(self, execution_id: str) -> Run | None:
        run = self._runs.get(execution_id)
        return run if run is not None and run.phase is Phase.RUNNING else None

    # --- lifecycle ---------------------------------------------------------------------------

    async def _give_up(self, runs: list[Run], *, hand_back: bool) -> None:
        """Hand ``runs`` back (drain) or discard them, and wait until their tasks end."""
        tasks = [run.task for run in runs if run.task is not None]
        for run in runs:
            if hand_back:
                self._hand_back(run)
            else:
                self._discard(run)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self, grace: float) -> None:
        """Stop taking work; give running executions ``grace`` seconds, then hand them back.

        Held executions get the same grace (an orchestrator may still attach them); whatever
        is still held afterwards is cancelled.
        """
        self.draining = True
        self._metrics.draining.set(1)
        for session in self._sessions:
            session.wake.set()  # the next message tells the orchestrator
        log.info("draining: %d executions running, grace %.1fs", self._running, grace)
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            left = [r for r in self._runs.values() if r.phase is Phase.RUNNING and not r.held]
            log.warning("grace period over: handing back %d executions", len(left))
            await self._give_up(left, hand_back=True)
        held = [run for run in self._runs.values() if run.held]
        if held:
            log.warning("draining: cancelling %d held executions nobody attached", len(held))
            await self._give_up(held, hand_back=False)
        await self._flush(within=2.0)

    async def _flush(self, within: float) -> None:
        """Wait until every open stream has written what it holds."""
        deadline = time.monotonic() + within
        while any(s.pending() and not s.closed for s in self._sessions):
            if time.monotonic() > deadline:
                log.warning("streams did not flush within %.1fs", within)
                return
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Cancel and forget everything, attached or held, without reports; idempotent."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for run in list(self._runs.values()):
            self._discard(run)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
