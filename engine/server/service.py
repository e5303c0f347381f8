"""The ``Engine`` gRPC service: executions placed by orchestrators, under a capacity.

Each orchestrator holds one ``Connect`` stream. What the engine has to say (node results, events,
finished executions, rejections) is queued on that stream's ``_Session`` as domain objects and
converted in one ``FromEngine`` message when the writer next runs, so a busy engine writes a few
large messages rather than one per event.

An execution belongs to the stream that placed it. When that stream ends (the orchestrator died
or gave up on this engine) the execution is cancelled without a report: the orchestrator re-places
it from its checkpoint, and running it here too would run its nodes twice.

Draining (SIGTERM): new executions are refused with ``REASON_DRAINING`` and every stream's next
message says ``draining``; running executions get a grace period to finish, and the rest are
cancelled and reported as handed back, which the orchestrator re-places from its checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from engine.definition.model import Definition
from engine.definition.parser import from_document
from engine.driver import ExecutionDriver
from engine.errors import DefinitionError
from engine.executors.node import NodeRunner
from engine.proto.v1 import engine_pb2 as pb
from engine.proto.v1 import engine_pb2_grpc as pb_grpc
from engine.server import codec
from engine.server.metrics import EngineMetrics
from engine.state.events import Event, ExecutionStatus, NodeResult

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


@dataclass(slots=True, eq=False)
class _Session:
    """One orchestrator's stream and what is waiting to be written on it."""

    peer: str
    orchestrator_id: str = ""
    results: list[tuple[str, int, NodeResult]] = field(default_factory=list)
    events: list[tuple[int, Event]] = field(default_factory=list)
    finished: list[pb.ExecutionFinished] = field(default_factory=list)
    rejected: list[pb.ExecutionRejected] = field(default_factory=list)
    handed_back: list[pb.ExecutionHandedBack] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    runs: set[str] = field(default_factory=set)
    closed: bool = False
    error: str | None = None

    def pending(self) -> bool:
        return bool(
            self.results or self.events or self.finished or self.rejected or self.handed_back
        )

    def reject(self, execution_id: str, lease: int, error: Rejected) -> None:
        self.rejected.append(
            pb.ExecutionRejected(
                execution_id=execution_id, lease=lease, reason=error.reason, message=error.message
            )
        )
        self.wake.set()


@dataclass(slots=True, eq=False)
class _Run:
    id: str
    lease: int
    session: _Session
    driver: ExecutionDriver
    task: asyncio.Task[None] | None = None
    hand_back: bool = False
    """Set when the engine gives the execution up (drain): report it handed back, not ended."""
    silent: bool = False
    """Set when nobody is listening any more (stream gone, replaced by a newer lease)."""


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
    ) -> None:
        self.engine_id = engine_id
        self.capacity = capacity
        self.version = version
        self.draining = False
        self._runner = runner
        self._metrics = metrics
        self._runs: dict[str, _Run] = {}
        self._sessions: set[_Session] = set()
        self._definitions: OrderedDict[str, Definition] = OrderedDict()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return len(self._runs)

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
        session = _Session(peer=context.peer())
        self._sessions.add(session)
        self._metrics.streams.set(len(self._sessions))
        reader = asyncio.create_task(self._read(session, request_iterator), name="engine-reader")
        log.info("orchestrator stream opened from %s", session.peer)
        try:
            first = self._message(session)
            first.hello.CopyFrom(
                pb.EngineHello(
                    engine_id=self.engine_id, capacity=self.capacity, version=self.version
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
            await self._abandon(session)
            log.info("orchestrator stream from %s closed", session.peer)

    # --- the stream --------------------------------------------------------------------------

    async def _read(self, session: _Session, requests: AsyncIterator[pb.ToEngine]) -> None:
        try:
            async for message in requests:
                self._metrics.messages.labels("in").inc()
                if message.HasField("hello"):
                    session.orchestrator_id = message.hello.orchestrator_id
                    log.info(
                        "stream from %s is orchestrator %s", session.peer, session.orchestrator_id
                    )
                for execute in message.execute:
                    self._execute(session, execute)
                for cancel in message.cancel:
                    self._cancel(cancel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream broke or sent something grpc could not decode
            self._metrics.stream_errors.inc()
            session.error = f"bad stream message: {exc}"
            log.warning("stream from %s failed: %s", session.peer, exc)
        finally:
            session.closed = True
            session.wake.set()

    def _message(self, session: _Session) -> pb.FromEngine:
        out = pb.FromEngine()
        load = out.load
        load.in_flight = len(self._runs)
        load.capacity = self.capacity
        load.draining = self.draining
        if session.results:
            add = out.node_results.add
            for execution_id, lease, result in session.results:
                codec.fill_result(add(), execution_id, lease, result)
            session.results.clear()
        if session.events:
            add_event = out.events.add
            for lease, event in session.events:
                codec.fill_event(add_event(), lease, event)
            session.events.clear()
        if session.finished:
            out.finished.extend(session.finished)
            session.finished.clear()
        if session.rejected:
            out.rejected.extend(session.rejected)
            session.rejected.clear()
        if session.handed_back:
            out.handed_back.extend(session.handed_back)
            session.handed_back.clear()
        return out

    # --- executions --------------------------------------------------------------------------

    def _execute(self, session: _Session, m: pb.Execute) -> None:
        try:
            run = self._prepare(session, m)
        except Rejected as error:
            self._metrics.rejected.labels(Reason.Name(error.reason)).inc()
            log.info("execution %s lease %s rejected: %s", m.execution_id, m.lease, error.message)
            session.reject(m.execution_id, m.lease, error)
            return
        self._runs[run.id] = run
        self._idle.clear()
        session.runs.add(run.id)
        self._metrics.in_flight.set(len(self._runs))
        run.task = asyncio.create_task(self._run(run), name=f"execution {run.id}")

    def _prepare(self, session: _Session, m: pb.Execute) -> _Run:
        if not m.execution_id or m.lease < 1:
            raise Rejected(Reason.REASON_INVALID, "execution_id and lease are required")
        if self.draining:
            raise Rejected(Reason.REASON_DRAINING, f"engine {self.engine_id} is draining")
        old = self._runs.get(m.execution_id)
        if old is not None and old.lease >= m.lease:
            raise Rejected(
                Reason.REASON_DUPLICATE, f"lease {old.lease} of this execution already runs here"
            )
        definition = self._definition(m)  # cached even when the execution is refused below
        if old is None and len(self._runs) >= self.capacity:
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
            self._drop(old)
        lease = m.lease
        execution_id = m.execution_id
        results = session.results
        events = session.events
        wake = session.wake

        def on_result(result: NodeResult) -> None:
            results.append((execution_id, lease, result))
            wake.set()

        def on_event(event: Event) -> None:
            events.append((lease, event))
            wake.set()

        driver = ExecutionDriver(
            definition,
            inputs,
            self._runner,
            execution_id=execution_id,
            on_event=on_event,
            on_result=on_result,
            checkpoint=checkpoint,
            timeout=m.timeout.ToTimedelta().total_seconds() if m.HasField("timeout") else None,
            depth=m.depth,
        )
        return _Run(execution_id, lease, session, driver)

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
        run = self._runs.get(m.execution_id)
        if run is not None and (m.lease == 0 or m.lease == run.lease):
            run.driver.cancel(m.reason or "cancelled")

    async def _run(self, run: _Run) -> None:
        started = time.monotonic()
        session = run.session
        try:
            result = await run.driver.run()
        except asyncio.CancelledError:
            if run.hand_back and not session.closed:
                session.handed_back.append(
                    pb.ExecutionHandedBack(execution_id=run.id, lease=run.lease)
                )
                session.wake.set()
                self._metrics.handed_back.inc()
            raise
        except Exception as exc:  # a bug: report the execution failed rather than lose it
            log.exception("execution %s crashed", run.id)
            result = run.driver.result()
            result["status"] = str(ExecutionStatus.FAILED)
            result["error"] = {"node": None, "message": f"internal engine error: {exc!r}"}
        finally:
            self._forget(run)
        status = result["status"]
        self._metrics.executions.labels(status).inc()
        self._metrics.duration.observe(time.monotonic() - started)
        if not run.silent and not session.closed:
            session.finished.append(
                pb.ExecutionFinished(
                    execution_id=run.id,
                    lease=run.lease,
                    status=codec.EXECUTION_STATUS_TO_PB[status],
                    result_json=codec.to_json(result),
                )
            )
            session.wake.set()

    def _forget(self, run: _Run) -> None:
        if self._runs.get(run.id) is run:
            del self._runs[run.id]
            run.session.runs.discard(run.id)
            self._metrics.in_flight.set(len(self._runs))
            if not self._runs:
                self._idle.set()

    def _drop(self, run: _Run) -> None:
        """Cancel ``run`` without reporting anything about it."""
        run.silent = True
        self._forget(run)
        if run.task is not None:
            run.task.cancel()

    async def _abandon(self, session: _Session) -> None:
        runs = [self._runs[i] for i in list(session.runs) if i in self._runs]
        if runs:
            log.warning(
                "cancelling %d executions of the closed stream from %s", len(runs), session.peer
            )
        await self._cancel_runs(runs, hand_back=False)

    async def _cancel_runs(self, runs: list[_Run], *, hand_back: bool) -> None:
        tasks = []
        for run in runs:
            run.hand_back = hand_back
            run.silent = not hand_back
            if run.task is not None:
                run.task.cancel()
                tasks.append(run.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- lifecycle ---------------------------------------------------------------------------

    async def drain(self, grace: float) -> None:
        """Stop taking work; give running executions ``grace`` seconds, then hand them back."""
        self.draining = True
        self._metrics.draining.set(1)
        for session in self._sessions:
            session.wake.set()  # the next message tells the orchestrator
        log.info("draining: %d executions running, grace %.1fs", len(self._runs), grace)
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            left = list(self._runs.values())
            log.warning("grace period over: handing back %d executions", len(left))
            await self._cancel_runs(left, hand_back=True)
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
        """Cancel whatever still runs (no reports); used after drain or on a hard stop."""
        await self._cancel_runs(list(self._runs.values()), hand_back=False)
