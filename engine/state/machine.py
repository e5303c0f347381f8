"""The execution state machine: stimuli in, commands out, no I/O, no clock, no asyncio.

``ExecutionState.handle(*stimuli)`` applies ``Start``, ``NodeFinished``, ``TimerFired``,
``Cancel`` and ``OutputsEvaluated`` and returns the commands a driver must perform
(``StartNode``, ``CancelNode``, ``StartTimer``, ``CancelTimer``, ``Emit``, ``EvaluateOutputs``,
``Finish``). Semantics (docs/semantics.md):

* A node starts with the execution unless it has ``depends_on`` or is entered by another node's
  ``next``. A node with ``depends_on`` is decided once, when its trigger rule can be decided:
  ``all_success`` (every dependency completed), ``all_done`` (every dependency finished),
  ``one_failed`` (as soon as one failed). A rule that cannot be met skips the node, and skips
  propagate. Dependents see a node when it *settles*: it finished and did not loop back to itself.
* ``next`` routes by outcome (map) or by conditional edges (the driver evaluates them and reports
  ``route``); every entry is a visit, bounded by ``max_visits``. Entering a node that is already
  queued or running joins that run.
* A failed attempt is retried while ``retry.attempts`` allows and the error is retryable. A node
  that fails for good takes its ``FAIL`` transition; without one, a ``one_failed``/``all_done``
  dependent handles it; otherwise the execution fails at once and running nodes are cancelled.
* When nothing runs, waits or is queued, nodes never reached are skipped; when every node has
  finished the outputs are evaluated and the execution completes.
* A node with ``map`` runs once per item of the list its expansion rendered; its items live in
  a ``MapState`` (``engine/state/items.py``: concurrency, tolerate, retries and timeouts per
  item), and the node finishes with the verdict the driver answers ``FinishMap`` with.
* ``journal`` holds every accepted ``NodeResult`` in order: the checkpoint. ``resume`` replays it,
  and only nodes without a final result run again.
"""

from __future__ import annotations

import random as _random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from engine.definition.duration import format_duration
from engine.definition.model import END, FAIL, SUCCESS, Definition, TriggerRule
from engine.state.events import (
    TERMINAL_EXECUTION_STATUSES,
    TERMINAL_NODE_STATUSES,
    Cancel,
    CancelNode,
    CancelTimer,
    Command,
    EvaluateOutputs,
    Event,
    ExecutionError,
    ExecutionStatus,
    ExecutionTimeoutTimer,
    Finish,
    NodeFinished,
    NodeResult,
    NodeStatus,
    NodeTimeoutTimer,
    OutputsEvaluated,
    RetryTimer,
    Start,
    StartNode,
    StartTimer,
    Stimulus,
    TimerFired,
)
from engine.state.items import MapState
from engine.state.nodes import NodeState

_TERMINAL = TERMINAL_NODE_STATUSES


# Enum member access costs ~0.23 us in Python 3.11; the hot paths use these module constants.
_PENDING = NodeStatus.PENDING
_RUNNING = NodeStatus.RUNNING
_COMPLETED = NodeStatus.COMPLETED
_FAILED = NodeStatus.FAILED
_SKIPPED = NodeStatus.SKIPPED
_CANCELLED = NodeStatus.CANCELLED
_EXEC_RUNNING = ExecutionStatus.RUNNING
_ALL_SUCCESS = TriggerRule.ALL_SUCCESS
_ALL_DONE = TriggerRule.ALL_DONE
_ONE_FAILED = TriggerRule.ONE_FAILED


class _Host:
    """The state machine as its mapped nodes' items see it (``engine.state.items.ItemHost``)."""

    __slots__ = ("_state",)

    def __init__(self, state: ExecutionState) -> None:
        self._state = state

    def issue(self, command: Command) -> None:
        self._state._out.append(command)

    def emit(
        self, kind: str, at: float, node: str, visit: int, attempt: int, data: dict[str, Any]
    ) -> None:
        state = self._state
        if not state._replaying:
            state._out.append(Event(kind, state.id, at, node, visit, attempt, data))

    def record(self, result: NodeResult) -> None:
        self._state.journal.append(result)

    def random(self) -> float:
        return self._state._random()


class ExecutionState:
    """One execution of one definition; see the module docstring for the rules."""

    def __init__(
        self,
        definition: Definition,
        execution_id: str,
        *,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.definition = definition
        self.id = execution_id
        self.status = ExecutionStatus.PENDING
        self.nodes = {node.id: NodeState(node) for node in definition.nodes}
        self.outputs: dict[str, Any] = {}
        self.path: list[str] = []
        self.journal: list[NodeResult] = []
        self.error: ExecutionError | None = None
        self.result_outputs: dict[str, Any] = {}
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._random = random
        self._limit = definition.concurrency or len(self.nodes)
        self._ready: deque[NodeState] = deque()
        self._settle: deque[NodeState] = deque()
        self._running = 0
        self._retrying = 0
        self._evaluating = False
        self._replaying = False
        self._out: list[Command] = []
        self._timeout: float | None = None
        self._now = 0.0  # the time of the latest stimulus
        self._host = _Host(self)

    # --- public API --------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_EXECUTION_STATUSES

    def handle(self, *stimuli: Stimulus) -> list[Command]:
        """Apply ``stimuli`` in order and return the commands to perform."""
        out = self._out = []
        for stimulus in stimuli:
            kind = type(stimulus)
            if kind is NodeFinished:
                self._on_result(stimulus.result)  # type: ignore[union-attr]
            elif kind is TimerFired:
                self._on_timer(stimulus)  # type: ignore[arg-type]
            elif kind is Start:
                self._on_start(stimulus)  # type: ignore[arg-type]
            elif kind is Cancel:
                self._on_cancel(stimulus)  # type: ignore[arg-type]
            elif kind is OutputsEvaluated:
                self._on_outputs(stimulus)  # type: ignore[arg-type]
            else:
                raise TypeError(f"not a stimulus: {stimulus!r}")
        if self.status is _EXEC_RUNNING:
            # Once per batch, not per result: a failure later in the batch then cancels nothing
            # that was started for nothing.
            self._pump(self._now)
            self._check_quiescence(self._now)
        return out

    def resume(
        self, journal: Sequence[NodeResult], at: float, *, timeout: float | None = None
    ) -> list[Command]:
        """Rebuild the state from a checkpoint and return the commands that continue it.

        Results are replayed in order without emitting anything; nodes with a final result never
        run again; nodes that were running (or waiting for a retry) start again now.
        """
        self._replaying = True
        self.handle(Start(at, timeout))
        for result in journal:
            node = self.nodes.get(result.node)
            if node is not None and node.visits == result.visit:
                if result.item is None:
                    self._force_start(node, result.attempt)
                elif node.items is not None:
                    node.items.force_start(result)
            self.handle(NodeFinished(result))
        self._replaying = False
        out = self._out = []
        if self.finished:
            out.append(Finish(self.status, dict(self.result_outputs), self.error))
            return out
        self._emit("execution.resumed", at, data={"replayed": len(journal)})
        if self._timeout is not None:
            out.append(StartTimer(ExecutionTimeoutTimer(), self._timeout))
        for node in self.nodes.values():
            if node.status is not _RUNNING:
                continue
            if node.items is not None:  # a mapped node that expanded: its items go on
                node.items.resume(at)
                continue
            if node.waiting_retry:  # the retry timer died with the old driver: retry now
                node.waiting_retry = False
                self._retrying -= 1
                node.attempt += 1
                self._running += 1
            self._issue_start(node, at)
        if self._evaluating:
            out.append(EvaluateOutputs())
        self._pump(at)
        self._check_quiescence(at)
        return out

    # --- stimuli -----------------------------------------------------------------------------

    def _on_start(self, s: Start) -> None:
        if self.status is not ExecutionStatus.PENDING:
            return
        self.status = _EXEC_RUNNING
        self.started_at = self._now = s.at
        self._emit("execution.started", s.at)
        self._timeout = s.timeout if s.timeout is not None else self.definition.timeout
        if self._timeout is not None:
            self._out.append(StartTimer(ExecutionTimeoutTimer(), self._timeout))
        for node_id in self.definition.start_nodes:
            self._activate(self.nodes[node_id], s.at)

    def _on_result(self, r: NodeResult) -> None:
        node = self.nodes.get(r.node)
        if node is not None and node.spec.map is not None and not self._final_of_map(node, r):
            self._on_map_record(node, r)
            return
        if (
            self.status is not _EXEC_RUNNING
            or node is None
            or node.status is not _RUNNING
            or node.waiting_retry
            or r.visit != node.visits
            or r.attempt != node.attempt
        ):
            return  # late, duplicate, or from a run that was cancelled: ignored
        self._running -= 1
        self._now = r.finished_at
        if node.spec.timeout is not None and node.spec.map is None:
            self._out.append(CancelTimer(NodeTimeoutTimer(node.id, r.visit, r.attempt)))
        self._finish_attempt(node, r)
        self._drain(r.finished_at)

    def _on_timer(self, t: TimerFired) -> None:
        if self.status is not _EXEC_RUNNING:
            return
        self._now = t.at
        timer = t.timer
        if isinstance(timer, ExecutionTimeoutTimer):
            limit = format_duration(self._timeout or 0.0)
            self._fail_execution(None, f"execution timed out after {limit}", t.at)
            return
        node = self.nodes.get(timer.node)
        if node is None or node.visits != timer.visit:
            return
        if timer.item is not None:
            if node.items is not None and node.status is _RUNNING:
                if isinstance(timer, RetryTimer):
                    node.items.on_retry_timer(timer, t.at)
                else:
                    node.items.on_timeout(timer, t.at)
            return
        if isinstance(timer, RetryTimer):
            if node.waiting_retry and node.attempt + 1 == timer.attempt:
                node.waiting_retry = False
                self._retrying -= 1
                node.attempt = timer.attempt
                node.queued = True
                self._ready.append(node)
            return
        if node.status is _RUNNING and not node.waiting_retry and node.attempt == timer.attempt:
            self._running -= 1
            self._out.append(CancelNode(node.id, node.visits, node.attempt))
            limit = format_duration(node.spec.timeout or 0.0)
            result = NodeResult(
                node.id,
                node.visits,
                node.attempt,
                _FAILED,
                outcome=FAIL,
                error=f"timed out after {limit}",
                retryable=True,
                started_at=node.started_at or t.at,
                finished_at=t.at,
            )
            self._finish_attempt(node, result)
            self._drain(t.at)

    def _on_cancel(self, c: Cancel) -> None:
        if self.finished:
            return
        self.error = ExecutionError(None, c.reason)
        self._end(ExecutionStatus.CANCELLED, c.at)

    def _on_outputs(self, o: OutputsEvaluated) -> None:
        if not self._evaluating or self.finished:
            return
        self._evaluating = False
        if o.error is not None:
            self._fail_execution(None, f"outputs: {o.error}", o.at)
        else:
            self._complete(dict(o.outputs or {}), o.at)

    def _complete(self, outputs: dict[str, Any], at: float) -> None:
        self.result_outputs = outputs
        self.status = ExecutionStatus.COMPLETED
        self.finished_at = at
        self._emit("execution.completed", at, data={"outputs": outputs})
        self._cancel_execution_timer()
        self._out.append(Finish(self.status, outputs, None))

    # --- node lifecycle ----------------------------------------------------------------------

    def _activate(self, node: NodeState, at: float) -> None:
        """Queue a visit of ``node``; joins a visit that is already queued or running."""
        node.decided = True
        if node.queued or node.status is _RUNNING:
            return
        if node.visits >= node.spec.max_visits:
            self._fail_execution(
                node.id, f"entered more than max_visits ({node.spec.max_visits}) times", at
            )
            return
        node.visits += 1
        node.attempt = 1
        node.items = None
        node.status = _PENDING
        node.queued = True
        self._ready.append(node)

    def _pump(self, at: float) -> None:
        ready = self._ready
        while ready and self._running < self._limit and self.status is _EXEC_RUNNING:
            node = ready.popleft()
            node.queued = False
            self._running += 1
            node.status = _RUNNING
            if node.attempt == 1:
                node.started_at = at
                node.finished_at = None
            self._issue_start(node, at)

    def _issue_start(self, node: NodeState, at: float) -> None:
        self._emit("node.started", at, node)
        self._out.append(StartNode(node.id, node.visits, node.attempt))
        if node.spec.timeout is not None and node.spec.map is None:
            self._out.append(
                StartTimer(NodeTimeoutTimer(node.id, node.visits, node.attempt), node.spec.timeout)
            )

    def _force_start(self, node: NodeState, attempt: int) -> None:
        """Replay only: a recorded result for a node still queued or waiting for its retry."""
        if node.queued:
            self._ready.remove(node)
            node.queued = False
            node.status = _RUNNING
            self._running += 1
        elif node.waiting_retry and attempt == node.attempt + 1:
            node.waiting_retry = False
            self._retrying -= 1
            node.attempt = attempt
            self._running += 1

    def _finish_attempt(self, node: NodeState, r: NodeResult) -> None:
        self.journal.append(r)
        node.reused_from = r.reused_from
        if r.attempt == 1 and r.started_at:
            node.started_at = r.started_at  # the driver's own start time beats the command's
        if r.status is _SKIPPED:
            node.status = _SKIPPED
            node.finished_at = r.finished_at
            self._emit("node.skipped", r.finished_at, node, {"reason": "when is false"})
            self._settle.append(node)
            return
        spec = node.spec
        if r.status is _COMPLETED:
            outcome = r.outcome or SUCCESS
            target: str | None = None
            if spec.next is not None:
                if spec.next.by_outcome is not None:
                    target = spec.next.by_outcome.get(outcome)
                    known = ", ".join(spec.next.by_outcome)
                else:
                    target = r.route
                    known = "its edges"
                if target is None:
                    node.output = r.output
                    self._fail_node(
                        node,
                        f"no transition in next for outcome '{outcome}' (next has {known})",
                        r,
                        None,
                    )
                    return
            node.status = _COMPLETED
            node.output = r.output
            node.outcome = outcome
            node.error = None
            node.finished_at = r.finished_at
            self.outputs[node.id] = r.output
            self.path.append(node.id)
            self._emit(
                "node.completed", r.finished_at, node, {"outcome": outcome, "output": r.output}
            )
            self._transition(node, target, r.finished_at)
            return
        if r.retryable and r.attempt < spec.retry.attempts:
            delay = spec.retry.delay(r.attempt, self._random())
            node.waiting_retry = True
            node.error = r.error
            self._retrying += 1
            self._emit(
                "node.retrying",
                r.finished_at,
                node,
                {"error": r.error, "delay": delay, "next_attempt": r.attempt + 1},
            )
            self._out.append(StartTimer(RetryTimer(node.id, node.visits, r.attempt + 1), delay))
            return
        self._fail_node(node, r.error or "failed", r, r.route)

    def _fail_node(self, node: NodeState, message: str, r: NodeResult, route: str | None) -> None:
        node.status = _FAILED
        node.outcome = FAIL
        node.error = message
        node.finished_at = r.finished_at
        self.outputs.pop(node.id, None)
        self.path.append(node.id)
        self._emit("node.failed", r.finished_at, node, {"error": message})
        transitions = node.spec.next
        if transitions is not None:
            target = (
                transitions.by_outcome.get(FAIL) if transitions.by_outcome is not None else route
            )
            if target is not None:
                self._transition(node, target, r.finished_at)
                return
        handlers = (_ONE_FAILED, _ALL_DONE)
        if any(
            self.nodes[d].spec.trigger_rule in handlers for d in self.definition.dependents[node.id]
        ):
            self._settle.append(node)
            return
        self._fail_execution(node.id, message, r.finished_at)

    def _transition(self, node: NodeState, target: str | None, at: float) -> None:
        if target is None or target == END:
            self._settle.append(node)
        elif target == node.id:
            self._activate(node, at)
        else:
            self._settle.append(node)
            self._activate(self.nodes[target], at)

    def _drain(self, at: float) -> None:
        """Let dependents see every node that settled, deciding their trigger rules."""
        settle = self._settle
        nodes = self.nodes
        dependents = self.definition.dependents
        while settle and self.status is _EXEC_RUNNING:
            node = settle.popleft()
            if node.notified:
                continue
            node.notified = True
            status = node.status
            for dep_id in dependents[node.id]:
                dep = nodes[dep_id]
                dep.deps_settled += 1
                if status is _COMPLETED:
                    dep.deps_ok += 1
                elif status is _FAILED:
                    dep.deps_failed += 1
                if not dep.decided:
                    self._decide(dep, at)

    def _decide(self, node: NodeState, at: float) -> None:
        total = len(node.spec.depends_on)
        rule = node.spec.trigger_rule
        if rule is _ALL_SUCCESS:
            if node.deps_ok == total:
                self._activate(node, at)
            elif node.deps_settled > node.deps_ok:
                self._skip(node, "a dependency did not complete (all_success)", at)
        elif rule is _ALL_DONE:
            if node.deps_settled == total:
                self._activate(node, at)
        elif node.deps_failed:
            self._activate(node, at)
        elif node.deps_settled == total:
            self._skip(node, "no dependency failed (one_failed)", at)

    def _skip(self, node: NodeState, reason: str, at: float) -> None:
        node.decided = True
        node.status = _SKIPPED
        node.finished_at = at
        self._emit("node.skipped", at, node, {"reason": reason})
        self._settle.append(node)

    def _check_quiescence(self, at: float) -> None:
        """Nothing runs, waits or is queued: skip what was never reached, or finish."""
        while (
            self.status is _EXEC_RUNNING
            and not self._evaluating
            and not self._running
            and not self._ready
            and not self._retrying
        ):
            unreached = [
                n for n in self.nodes.values() if n.status is _PENDING and not n.spec.depends_on
            ]
            if not unreached:
                break
            for node in unreached:
                self._skip(node, "not reached", at)
            self._drain(at)
            self._pump(at)
        if (
            self.status is _EXEC_RUNNING
            and not self._evaluating
            and not self._running
            and not self._ready
            and not self._retrying
            and all(n.status in _TERMINAL for n in self.nodes.values())
        ):
            if self.definition.outputs is not None:
                self._evaluating = True
                self._out.append(EvaluateOutputs())
            else:
                self._complete({}, at)

    # --- map: the items of a node's visit (engine/state/items.py) -----------------------------

    @staticmethod
    def _final_of_map(node: NodeState, r: NodeResult) -> bool:
        """Whether ``r`` is a mapped node's own result (its final one, or a failed or skipped
        expansion) rather than its expansion or an item's record."""
        if r.item is not None or r.attempt == 0:
            return False
        return node.items is None or node.items.closing

    def _on_map_record(self, node: NodeState, r: NodeResult) -> None:
        if (
            self.status is not _EXEC_RUNNING
            or node.status is not _RUNNING
            or r.visit != node.visits
        ):
            return
        if r.item is not None:
            if node.items is not None and node.items.on_record(r):
                self._now = r.finished_at
            return
        if node.items is not None or r.attempt != 0 or r.status is not _RUNNING:
            return
        self.journal.append(r)  # the expansion
        self._now = at = r.finished_at
        items = r.output if isinstance(r.output, list) else []
        started = node.started_at if node.started_at is not None else at
        expanded = node.items = MapState(node.spec, node.visits, items, self._host, started)
        self._emit("node.mapped", at, node, {"items": expanded.total})
        expanded.start(at)

    # --- ending ------------------------------------------------------------------------------

    def _fail_execution(self, node_id: str | None, message: str, at: float) -> None:
        if self.finished:
            return
        self.error = ExecutionError(node_id, message)
        self._end(ExecutionStatus.FAILED, at)

    def _end(self, status: ExecutionStatus, at: float) -> None:
        out = self._out
        for node in self.nodes.values():
            if node.status is _RUNNING:
                if node.waiting_retry:
                    out.append(CancelTimer(RetryTimer(node.id, node.visits, node.attempt + 1)))
                    node.waiting_retry = False
                else:
                    out.append(CancelNode(node.id, node.visits, node.attempt))
                    if node.spec.timeout is not None and node.spec.map is None:
                        out.append(
                            CancelTimer(NodeTimeoutTimer(node.id, node.visits, node.attempt))
                        )
                    if node.items is not None and not node.items.closing:
                        node.items.stop(at)
                node.status = _CANCELLED
                node.finished_at = at
                self._emit("node.cancelled", at, node)
            elif node.status is _PENDING:
                node.status = _SKIPPED
                node.queued = False
                node.finished_at = at
                self._emit("node.skipped", at, node, {"reason": f"execution {status}"})
        self._ready.clear()
        self._settle.clear()
        self._running = self._retrying = 0
        self._evaluating = False
        self.status = status
        self.finished_at = at
        error = self.error
        data = {"error": {"node": error.node, "message": error.message}} if error else None
        self._emit(f"execution.{status}", at, data=data)
        self._cancel_execution_timer()
        out.append(Finish(status, {}, error))

    def _cancel_execution_timer(self) -> None:
        if self._timeout is not None:
            self._out.append(CancelTimer(ExecutionTimeoutTimer()))

    def _emit(
        self,
        kind: str,
        at: float,
        node: NodeState | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        if self._replaying:
            return
        if node is None:
            self._out.append(Event(kind, self.id, at, None, 0, 0, data))
        else:
            self._out.append(Event(kind, self.id, at, node.id, node.visits, node.attempt, data))
