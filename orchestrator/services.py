"""``Services``: the service layer both APIs (gRPC and REST) call, one object per concern.

Handlers convert wire types to the arguments of these methods and map the errors they raise
(``orchestrator.api.errors``); they never reach past this bundle into the orchestrator's parts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orchestrator.executions.service import ExecutionService
from orchestrator.tasks.service import TaskService
from orchestrator.triggers.scheduler import TriggerScheduler
from orchestrator.watch import EventLog
from orchestrator.workflows import WorkflowService


@dataclass(frozen=True, slots=True)
class EngineSummary:
    """One engine as ``ListEngines`` and ``GET /api/v1/engines`` show it."""

    id: str
    """The engine's own id (``ENGINE_ID``), or its discovery id before it said hello."""
    address: str
    state: str
    healthy: bool
    in_flight: int
    """Executions on it: placed there or reported by the engine, the larger."""
    capacity: int
    version: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the orchestrator can serve; ``problems`` says why not."""

    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class Services:
    """What the APIs call; assembled by ``orchestrator.wiring.Orchestrator``."""

    workflows: WorkflowService
    executions: ExecutionService
    triggers: TriggerScheduler
    events: EventLog
    tasks: TaskService
    engines: Callable[[], list[EngineSummary]]
    """Every engine, by link id."""
    readiness: Callable[[], Awaitable[Readiness]]
    """The store answers, it has not failed, and every background loop runs."""
    metrics: Callable[[], tuple[bytes, str]]
    """The Prometheus exposition and its content type."""
