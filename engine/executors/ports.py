"""What a node attempt sees and the ports it calls out through.

``ExecutionContext`` is what every node of one execution can read; ``NodeAttempt`` names one
attempt (of one item, for a node with ``map``) so that asking again finds the same child or task;
``SubWorkflowLauncher`` and ``TaskScheduler`` are the Protocols ``NodeRunner`` runs ``workflow``
and ``task`` nodes through (the engine's stream to the orchestrator, or ``weir run``'s local
launcher).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.definition.model import QueueTask, SubWorkflowTask, WaitTask
from engine.lua import Scope


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    """What every node of one execution can see: ``inputs``, live ``outputs``, ``execution``."""

    id: str
    workflow: str
    version: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    depth: int = 0
    execution: Mapping[str, Any] = field(init=False)
    scope: Scope = field(init=False)

    def __post_init__(self) -> None:
        execution = {"id": self.id, "workflow": self.workflow, "version": self.version}
        object.__setattr__(self, "execution", execution)
        object.__setattr__(self, "scope", Scope(self.inputs, self.outputs, execution))


@dataclass(frozen=True, slots=True)
class NodeAttempt:
    """Which attempt of which visit of a node is running: the key of its checkpoint record."""

    node: str
    visit: int
    attempt: int
    item: int | None = None
    """The item's index for an item of a node with ``map``."""
    deadline: float | None = None
    """Unix seconds by which the attempt must end (its node's ``timeout``); None: none. A port
    that waits on the orchestrator hands it on, so that it holds while the execution is
    parked."""


@dataclass(frozen=True, slots=True)
class Routed:
    """An output with the outcome its answer gave explicitly (a callback's, a signal's):
    the outcome routes ``next`` instead of the output's ``outcome`` field."""

    output: Any
    outcome: str


@dataclass(frozen=True, slots=True)
class CallbackTicket:
    """What an asynchronous HTTP request carries so that the service can answer it later."""

    token: str
    callback_url: str
    """``POST {callback_url}/complete`` (or ``/fail``) ends the task."""
    base_url: str
    """The orchestrator's HTTP base URL (the FSL protocol reports at ``{base_url}/step``)."""


class SubWorkflowLauncher(Protocol):
    """Runs a child execution for a ``workflow`` node and returns the child's outputs.

    ``attempt`` identifies the node attempt asking, so a launcher can find the same child again
    when the request is repeated (after a reconnect). Raises ``TaskError`` when the child fails
    or cannot be started; cancelling the call stops waiting for the child.
    """

    async def run_child(
        self,
        task: SubWorkflowTask,
        inputs: dict[str, Any],
        parent: ExecutionContext,
        attempt: NodeAttempt,
    ) -> Any: ...


class TaskScheduler(Protocol):
    """Hands waits to the orchestrator as durable tasks and waits for their end.

    ``run_task``: a ``task`` node's attempt, done by a worker. ``run_callback``: an asynchronous
    HTTP request (``http.callback``); ``send`` performs the request with the ticket and raises
    ``TaskError`` when it is not accepted. ``wait_signal``: a ``wait`` node. ``sleep``: a durable
    timer that completes with ``output``.

    Each returns the answer's output (a ``Routed`` when the answer gave an explicit outcome);
    raises ``TaskError`` when the task failed or timed out (its ``retryable`` says whether
    ``retry`` may try again). ``attempt`` identifies the node attempt, so asking again after a
    reconnect, a failover or a park finds the same task. Cancelling the call stops waiting (the
    orchestrator cancels the task when the execution ends).
    """

    async def run_task(
        self,
        task: QueueTask,
        args: dict[str, Any],
        ctx: ExecutionContext,
        attempt: NodeAttempt,
    ) -> Any: ...

    async def run_callback(
        self,
        within: float | None,
        send: Callable[[CallbackTicket], Awaitable[None]],
        ctx: ExecutionContext,
        attempt: NodeAttempt,
    ) -> Any: ...

    async def wait_signal(
        self, task: WaitTask, ctx: ExecutionContext, attempt: NodeAttempt
    ) -> Any: ...

    async def sleep(
        self, seconds: float, output: Any, ctx: ExecutionContext, attempt: NodeAttempt
    ) -> Any: ...
