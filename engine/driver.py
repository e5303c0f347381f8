"""The asyncio driver: performs the state machine's commands and feeds back what happened.

Commands come out of ``ExecutionState.handle`` in batches. ``StartNode`` is first tried inline
(``NodeRunner.try_inline``); results found that way are queued and fed back in the next batch, so
a 10,000-node DAG of no-ops is a handful of ``handle`` calls rather than 10,000 task switches.
Other attempts run as tasks owned by the driver; timers are ``loop.call_later`` handles. The driver
yields to the loop every few milliseconds of inline work so other executions keep moving.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from engine.definition.model import Definition
from engine.errors import TaskError
from engine.executors.node import ExecutionContext, NodeRunner
from engine.lua import ESCALATE
from engine.state.events import (
    Cancel,
    CancelNode,
    CancelTimer,
    Command,
    EvaluateOutputs,
    Event,
    Finish,
    FinishMap,
    NodeFinished,
    NodeResult,
    NodeStatus,
    NodeTimeoutTimer,
    OutputsEvaluated,
    Start,
    StartNode,
    StartTimer,
    Stimulus,
    Timer,
    TimerFired,
)
from engine.state.machine import ExecutionState
from engine.state.result import ExecutionResult

log = logging.getLogger(__name__)

EventSink = Callable[[Event], None]
ResultSink = Callable[[NodeResult], None]
_YIELD_EVERY = 0.005  # seconds of uninterrupted inline work before letting the loop run


class ExecutionDriver:
    """Drives one execution to its end: ``result = await ExecutionDriver(...).run()``.

    ``on_event`` receives every monitoring event; ``on_result`` every node result the state
    machine accepted (the checkpoint records), in order, before the execution's end is returned.
    """

    def __init__(
        self,
        definition: Definition,
        inputs: dict[str, Any],
        runner: NodeRunner,
        *,
        execution_id: str | None = None,
        on_event: EventSink | None = None,
        on_result: ResultSink | None = None,
        checkpoint: Sequence[NodeResult] = (),
        timeout: float | None = None,
        depth: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.definition = definition
        self.inputs = inputs
        self.id = execution_id or str(uuid.uuid4())
        self.state = ExecutionState(definition, self.id)
        self.context = ExecutionContext(
            self.id, definition.name, definition.version, inputs, self.state.outputs, depth
        )
        self._runner = runner
        self._on_event = on_event
        self._on_result = on_result
        self._checkpoint = checkpoint
        self._timeout = timeout
        self._clock = clock
        self._pending: deque[Stimulus] = deque()
        self._wake = asyncio.Event()
        self._tasks: dict[tuple[str, int, int, int | None], asyncio.Task[None]] = {}
        self._outputs_task: asyncio.Task[None] | None = None
        self._timers: dict[Timer, asyncio.TimerHandle] = {}
        self._finish: Finish | None = None
        self._cancel_reason: str | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the execution to stop; running nodes are cancelled and the result says why."""
        if self._finish is None:
            self._pending.append(Cancel(self._clock(), reason))
            self._wake.set()

    def only_waits(self, waiting: int) -> bool:
        """Whether the execution only waits: every running attempt is one of the ``waiting``
        ones (waiting on the orchestrator), and nothing else is to be done now; retry timers
        may be pending (``wake_at``)."""
        return (
            self._finish is None
            and not self._pending
            and self._outputs_task is None
            and len(self._tasks) == waiting
        )

    def wake_at(self) -> float:
        """Unix seconds of the earliest retry or execution-timeout timer; 0 when none. (The
        waiting attempts' own deadlines are kept by the orchestrator with their tasks.)"""
        loop = asyncio.get_running_loop()
        due = [
            handle.when()
            for timer, handle in self._timers.items()
            if type(timer) is not NodeTimeoutTimer
        ]
        if not due:
            return 0.0
        return self._clock() + max(0.0, min(due) - loop.time())

    def result(self) -> ExecutionResult:
        """The result as it stands now (final once ``run`` returned)."""
        return ExecutionResult.of(self.state, self.inputs)

    async def run(self) -> ExecutionResult:
        """Run to the end and return the result object; cancels its own tasks on the way out."""
        now = self._clock()
        try:
            if self._checkpoint:
                commands = self.state.resume(self._checkpoint, now, timeout=self._timeout)
            else:
                commands = self.state.handle(Start(now, self._timeout))
            self._perform(commands)
            await self._loop()
        finally:
            await self._shutdown()
        return self.result()

    async def _loop(self) -> None:
        pending = self._pending
        handle = self.state.handle
        journal = self.state.journal
        on_result = self._on_result
        reported = len(journal)  # a resumed execution's checkpoint is not news
        last_yield = time.monotonic()
        while self._finish is None:
            if not pending:
                self._wake.clear()
                await self._wake.wait()
                last_yield = time.monotonic()
                continue
            batch = list(pending)
            pending.clear()
            self._perform(handle(*batch))
            if on_result is not None and len(journal) > reported:
                for result in journal[reported:]:
                    on_result(result)
                reported = len(journal)
            if time.monotonic() - last_yield > _YIELD_EVERY:
                await asyncio.sleep(0)
                last_yield = time.monotonic()

    def _perform(self, commands: list[Command]) -> None:
        runner = self._runner
        ctx = self.context
        by_id = self.definition.by_id
        for command in commands:
            kind = type(command)
            if kind is StartNode:
                assert isinstance(command, StartNode)
                node = by_id[command.node]
                result = runner.try_inline(
                    ctx, node, command.visit, command.attempt, command.item, command.value
                )
                if result is not None:
                    self._pending.append(NodeFinished(result))
                else:
                    key = (command.node, command.visit, command.attempt, command.item)
                    self._tasks[key] = asyncio.create_task(
                        self._attempt(command), name=f"{self.id}/{key}"
                    )
            elif kind is Event:
                if self._on_event is not None:
                    assert isinstance(command, Event)
                    self._on_event(command)
            elif kind is StartTimer:
                assert isinstance(command, StartTimer)
                loop = asyncio.get_running_loop()
                self._timers[command.timer] = loop.call_later(
                    command.delay, self._fire, command.timer
                )
            elif kind is CancelTimer:
                assert isinstance(command, CancelTimer)
                handle = self._timers.pop(command.timer, None)
                if handle is not None:
                    handle.cancel()
            elif kind is CancelNode:
                assert isinstance(command, CancelNode)
                key = (command.node, command.visit, command.attempt, command.item)
                task = self._tasks.pop(key, None)
                if task is not None:
                    task.cancel()
            elif kind is FinishMap:
                assert isinstance(command, FinishMap)
                node = by_id[command.node]
                result = runner.try_finish_map(ctx, node, command)
                if result is not None:
                    self._pending.append(NodeFinished(result))
                else:
                    key = (command.node, command.visit, 1, None)
                    self._tasks[key] = asyncio.create_task(
                        self._finish_map(command), name=f"{self.id}/{key}"
                    )
            elif kind is EvaluateOutputs:
                self._evaluate_outputs()
            elif kind is Finish:
                assert isinstance(command, Finish)
                self._finish = command

    async def _attempt(self, command: StartNode) -> None:
        key = (command.node, command.visit, command.attempt, command.item)
        try:
            node = self.definition.by_id[command.node]
            result = await self._runner.run(
                self.context, node, command.visit, command.attempt, command.item, command.value
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in an executor must fail the node, not the driver
            log.exception("node %s attempt %s crashed", command.node, command.attempt)
            now = self._clock()
            result = NodeResult(
                command.node,
                command.visit,
                command.attempt,
                NodeStatus.FAILED,
                outcome="FAIL",
                error=f"internal error: {exc!r}",
                started_at=now,
                finished_at=now,
                item=command.item,
            )
        finally:
            self._tasks.pop(key, None)
        self._pending.append(NodeFinished(result))
        self._wake.set()

    async def _finish_map(self, command: FinishMap) -> None:
        key = (command.node, command.visit, 1, None)
        try:
            node = self.definition.by_id[command.node]
            result = await self._runner.finish_map(self.context, node, command)
        finally:
            self._tasks.pop(key, None)
        self._pending.append(NodeFinished(result))
        self._wake.set()

    def _evaluate_outputs(self) -> None:
        template = self.definition.outputs
        assert template is not None
        try:
            value = self._runner.try_outputs_inline(self.context, template)
        except TaskError as exc:
            self._pending.append(OutputsEvaluated(self._clock(), error=exc.message))
            return
        if value is not ESCALATE:
            self._pending.append(OutputsEvaluated(self._clock(), outputs=value))
            return

        async def render() -> None:
            try:
                outputs = await self._runner.render_outputs(self.context, template)
                self._pending.append(OutputsEvaluated(self._clock(), outputs=outputs))
            except TaskError as exc:
                self._pending.append(OutputsEvaluated(self._clock(), error=exc.message))
            self._wake.set()

        self._outputs_task = asyncio.create_task(render(), name=f"{self.id}/outputs")

    def _fire(self, timer: Timer) -> None:
        self._timers.pop(timer, None)
        self._pending.append(TimerFired(timer, self._clock()))
        self._wake.set()

    async def _shutdown(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        tasks = list(self._tasks.values())
        if self._outputs_task is not None:
            tasks.append(self._outputs_task)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
