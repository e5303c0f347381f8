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

Sub-workflows: the service is the ``SubWorkflowLauncher`` of its node runner. A ``workflow``
node's attempt sends ``start_child`` on its execution's stream (kept while detached, asked again
on attach) and waits for ``child_finished`` with the same (execution, lease, node, visit,
attempt).

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
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc

from engine.definition.model import Definition, Node, SubWorkflowTask
from engine.definition.parser import from_document
from engine.driver import ExecutionDriver
from engine.errors import DefinitionError, TaskError
from engine.executors.node import ExecutionContext, NodeAttempt, NodeRunner
from engine.proto.v1 import engine_pb2 as pb
from engine.proto.v1 import engine_pb2_grpc as pb_grpc
from engine.server import codec
from engine.server.metrics import EngineMetrics
from engine.server.session import ChildWait, Run, Session
from engine.state.events import NodeResult

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 2.0
"""Seconds between load-only messages on an idle stream."""
_DEFINITION_CACHE = 512

Reason = pb.ExecutionRejected.Reason


class Rejected(Exception):
    def __init__(self, reason: pb.ExecutionRejected.Reason.ValueType, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class EngineService(pb_grpc.EngineServicer):
    """Runs executions for any number of orchestrator streams; owns their tasks.

    Also the ``SubWorkflowLauncher`` of ``runner`` (``process.py`` wires it).
    """

    def __init__(
        self,
        engine_id: str,
        capacity: int,
        runner: NodeRunner,
        metrics: EngineMetrics,
        *,
        version: str,
        detached_timeout: float = 60.0,
    ) -> None:
        self.engine_id = engine_id
        self.capacity = capacity
        self.version = version
        self.detached_timeout = detached_timeout
        self.draining = False
        self._runner = runner
        self._metrics = metrics
        self._runs: dict[str, Run] = {}
        """Running executions (attached or held): what counts against the capacity."""
        self._ended: dict[str, Run] = {}
        """Finished executions whose result is not acknowledged yet (attached or held)."""
        self._held: dict[str, Run] = {}
        """Detached executions, running or finished, waiting to be attached."""
        self._sessions: set[Session] = set()
        self._definitions: OrderedDict[str, Definition] = OrderedDict()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    @property
    def in_flight(self) -> int:
        return len(self._runs)

    @property
    def held(self) -> list[pb.HeldExecution]:
        """What a new stream's hello lists."""
        return [
            pb.HeldExecution(execution_id=run.id, lease=run.lease, finished=run.finished)
            for run in self._held.values()
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

    async def Connect(
        self,
        request_iterator: AsyncIterator[pb.ToEngine],
        context: grpc.aio.ServicerContext[pb.ToEngine, pb.FromEngine],
    ) -> AsyncIterator[pb.FromEngine]:
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
            yield first
            while not session.closed:
                if not session.pending():
                    session.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(session.wake.wait(), HEARTBEAT_INTERVAL)
                    if session.closed:
                        break
                self._metrics.messages.labels("out").inc()
                yield self._message(session)
            if session.error is not None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, session.error)
        finally:
            session.closed = True
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            self._sessions.discard(session)
            self._metrics.streams.set(len(self._sessions))
            self._detach(session)
            log.info("orchestrator stream from %s closed", session.peer)

    # --- the stream --------------------------------------------------------------------------

    async def _read(self, session: Session, requests: AsyncIterator[pb.ToEngine]) -> None:
        try:
            async for message in requests:
                self._metrics.messages.labels("in").inc()
                if message.HasField("hello"):
                    session.orchestrator_id = message.hello.orchestrator_id
                    log.info(
                        "stream from %s is orchestrator %s", session.peer, session.orchestrator_id
                    )
                for attach in message.attach:
                    self._attach(session, attach)
                for execute in message.execute:
                    self._execute(session, execute)
                for cancel in message.cancel:
                    self._cancel(cancel)
                for answer in message.child_finished:
                    self._child_finished(answer)
                if message.ack:
                    self._ack(session, message.ack)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream broke or sent something grpc could not decode
            self._metrics.stream_errors.inc()
            session.error = f"bad stream message: {exc}"
            log.warning("stream from %s failed: %s", session.peer, exc)
        finally:
            session.closed = True
            session.wake.set()

    def _message(self, session: Session) -> pb.FromEngine:
        return session.message(len(self._runs), self.capacity, self.draining)

    def _ack(self, session: Session, seq: int) -> None:
        count, settled = session.ack(seq)
        if count:
            self._metrics.acked.inc(count)
        for run in settled:
            if self._ended.get(run.id) is run:
                del self._ended[run.id]
            if session.runs.get(run.id) is run:
                del session.runs[run.id]
        if settled:
            self._metrics.unacknowledged.set(len(self._ended))

    # --- executions --------------------------------------------------------------------------

    def _execute(self, session: Session, m: pb.Execute) -> None:
        try:
            run = self._prepare(session, m)
        except Rejected as error:
            self._metrics.rejected.labels(Reason.Name(error.reason)).inc()
            log.info("execution %s lease %s rejected: %s", m.execution_id, m.lease, error.message)
            session.reject(m.execution_id, m.lease, error.reason, error.message)
            return
        self._runs[run.id] = run
        self._idle.clear()
        session.runs[run.id] = run
        self._metrics.in_flight.set(len(self._runs))
        run.task = asyncio.create_task(self._run(run), name=f"execution {run.id}")

    def _prepare(self, session: Session, m: pb.Execute) -> Run:
        if not m.execution_id or m.lease < 1:
            raise Rejected(Reason.REASON_INVALID, "execution_id and lease are required")
        if self.draining:
            raise Rejected(Reason.REASON_DRAINING, f"engine {self.engine_id} is draining")
        old = self._runs.get(m.execution_id) or self._ended.get(m.execution_id)
        if old is not None and old.lease >= m.lease:
            raise Rejected(
                Reason.REASON_DUPLICATE, f"lease {old.lease} of this execution already runs here"
            )
        definition = self._definition(m)  # cached even when the execution is refused below
        replaces = old is not None and self._runs.get(old.id) is old
        if not replaces and len(self._runs) >= self.capacity:
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
        if old is not None:  # a newer placement of the same execution: it wins
            log.info("execution %s: lease %d replaces lease %d", m.execution_id, m.lease, old.lease)
            self._discard(old)
        run = Run(m.execution_id, m.lease, session)
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

    def _definition(self, m: pb.Execute) -> Definition:
        cached = self._definitions.get(m.definition_digest)
        if cached is not None:
            self._definitions.move_to_end(m.definition_digest)
            return cached
        if not m.definition_json:
            raise Rejected(
                Reason.REASON_UNKNOWN_DEFINITION, f"definition {m.definition_digest} is not cached"
            )
        data, digest = m.definition_json, codec.canonical_digest(m.definition_json)
        if digest != m.definition_digest:
            raise Rejected(Reason.REASON_INVALID, "definition_digest does not match its body")
        try:
            definition = from_document(
                codec.from_json(data, "definition_json"),
                source=f"definition {digest[:12]}",
                sandbox=self._runner.sandbox,
            )
        except (codec.CodecError, DefinitionError) as exc:
            raise Rejected(Reason.REASON_INVALID, str(exc)) from None
        self._definitions[digest] = definition
        if len(self._definitions) > _DEFINITION_CACHE:
            self._definitions.popitem(last=False)
        return definition

    def _cancel(self, m: pb.Cancel) -> None:
        run = self._runs.get(m.execution_id) or self._ended.get(m.execution_id)
        if run is None or (m.lease != 0 and m.lease != run.lease):
            log.debug("cancel of %s lease %d: not here", m.execution_id, m.lease)
            return
        if run.session is None:  # held: the orchestrator placed it elsewhere meanwhile
            log.info("held execution %s lease %d cancelled: %s", run.id, run.lease, m.reason or "-")
            self._discard(run)
        elif not run.finished:
            run.driver.cancel(m.reason or "cancelled")

    async def _run(self, run: Run) -> None:
        started = time.monotonic()
        try:
            result = await run.driver.run()
        except asyncio.CancelledError:
            session = run.session
            if run.hand_back and session is not None and not session.closed:
                session.handed_back.append(
                    pb.ExecutionHandedBack(execution_id=run.id, lease=run.lease)
                )
                session.wake.set()
                self._metrics.handed_back.inc()
            self._discard(run)
            raise
        except Exception as exc:  # a bug: report the execution failed rather than lose it
            log.exception("execution %s crashed", run.id)
            result = run.driver.result().failed(f"internal engine error: {exc!r}")
        finally:
            self._forget_running(run)
        status = str(result.status)
        self._metrics.executions.labels(status).inc()
        self._metrics.duration.observe(time.monotonic() - started)
        if run.silent:
            return
        self._ended[run.id] = run
        self._metrics.unacknowledged.set(len(self._ended))
        run.finish(
            pb.ExecutionFinished(
                execution_id=run.id,
                lease=run.lease,
                status=codec.EXECUTION_STATUS_TO_PB[status],
                result_json=codec.to_json(result.to_json()),
            )
        )

    def _forget_running(self, run: Run) -> None:
        if self._runs.get(run.id) is run:
            del self._runs[run.id]
            self._metrics.in_flight.set(len(self._runs))
            if not self._runs:
                self._idle.set()

    def _discard(self, run: Run) -> None:
        """Forget ``run`` wherever it is and cancel it if it runs; nothing is reported."""
        run.silent = True
        self._forget_running(run)
        if self._ended.get(run.id) is run:
            del self._ended[run.id]
            self._metrics.unacknowledged.set(len(self._ended))
        if self._held.get(run.id) is run:
            del self._held[run.id]
            self._metrics.detached.set(len(self._held))
        if run.expiry is not None:
            run.expiry.cancel()
            run.expiry = None
        session = run.session
        if session is not None:
            if session.runs.get(run.id) is run:
                del session.runs[run.id]
            session.dirty.pop(run, None)
            run.session = None
        task = run.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    # --- detached executions -----------------------------------------------------------------

    def _detach(self, session: Session) -> None:
        """The stream ended: its executions keep running, held for ``detached_timeout``."""
        runs = [run for run in session.runs.values() if run.session is session]
        session.runs.clear()
        session.dirty.clear()
        if not runs:
            return
        if self._closed:
            for run in runs:
                self._discard(run)
            return
        loop = asyncio.get_running_loop()
        for run in runs:
            run.session = None
            self._held[run.id] = run
            run.expiry = loop.call_later(self.detached_timeout, self._expire, run)
        self._metrics.detached.set(len(self._held))
        log.warning(
            "stream from %s closed: holding %d executions (%d finished) for %.1fs",
            session.peer,
            len(runs),
            sum(run.finished for run in runs),
            self.detached_timeout,
        )

    def _attach(self, session: Session, m: pb.Attach) -> None:
        run = self._held.get(m.execution_id)
        if run is None or run.lease != m.lease:
            log.debug("attach of %s lease %d: not held here", m.execution_id, m.lease)
            return
        del self._held[run.id]
        self._metrics.detached.set(len(self._held))
        if run.expiry is not None:
            run.expiry.cancel()
            run.expiry = None
        run.session = session
        session.runs[run.id] = run
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
        if self._held.get(run.id) is not run:
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

    # --- sub-workflows -----------------------------------------------------------------------

    async def run_child(
        self,
        task: SubWorkflowTask,
        inputs: dict[str, Any],
        parent: ExecutionContext,
        attempt: NodeAttempt,
    ) -> Any:
        """Ask the orchestrator for a child execution and wait for its end (SubWorkflowLauncher)."""
        run = self._runs.get(parent.id)
        if run is None or run.driver.context is not parent:
            raise TaskError(f"execution {parent.id} no longer runs here", retryable=False)
        key = (attempt.node, attempt.visit, attempt.attempt)
        wait = ChildWait(
            pb.StartChild(
                execution_id=run.id,
                lease=run.lease,
                node=attempt.node,
                visit=attempt.visit,
                attempt=attempt.attempt,
                workflow=task.name,
                version_range=task.version,
                inputs_json=codec.to_json(inputs),
            ),
            asyncio.get_running_loop().create_future(),
        )
        run.ask_child(key, wait)
        self._metrics.children.inc()
        try:
            answer = await wait.answer
        finally:
            if run.children.get(key) is wait:
                del run.children[key]
        if answer.status == pb.EXECUTION_STATUS_COMPLETED:
            try:
                return codec.from_json(answer.outputs_json, "child outputs_json")
            except codec.CodecError as exc:
                raise TaskError(f"sub-workflow {task.name}: {exc}", retryable=False) from None
        status = codec.EXECUTION_STATUS_FROM_PB.get(answer.status, "ended")
        raise TaskError(answer.error or f"sub-workflow {task.name} {status}", retryable=False)

    def _child_finished(self, m: pb.ChildFinished) -> None:
        run = self._runs.get(m.execution_id)
        wait = None
        if run is not None and run.lease == m.lease:
            wait = run.children.get((m.node, m.visit, m.attempt))
        if wait is None or wait.answer.done():
            log.debug(
                "child_finished for %s lease %d %s/%d/%d: nobody waits for it",
                m.execution_id,
                m.lease,
                m.node,
                m.visit,
                m.attempt,
            )
            return
        wait.answer.set_result(m)

    # --- lifecycle ---------------------------------------------------------------------------

    async def _cancel_runs(self, runs: list[Run], *, hand_back: bool) -> None:
        tasks = []
        for run in runs:
            task = run.task
            if hand_back:
                run.hand_back = True
                if task is not None:
                    task.cancel()
            else:
                self._discard(run)
            if task is not None:
                tasks.append(task)
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
        log.info("draining: %d executions running, grace %.1fs", len(self._runs), grace)
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            left = [run for run in self._runs.values() if run.session is not None]
            log.warning("grace period over: handing back %d executions", len(left))
            await self._cancel_runs(left, hand_back=True)
        held = list(self._held.values())
        if held:
            log.warning("draining: cancelling %d held executions nobody attached", len(held))
            await self._cancel_runs(held, hand_back=False)
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
        runs = {*self._runs.values(), *self._ended.values(), *self._held.values()}
        await self._cancel_runs(list(runs), hand_back=False)
