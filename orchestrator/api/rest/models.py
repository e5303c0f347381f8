"""The REST API's request and response bodies (they make the OpenAPI document)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.state.result import iso
from orchestrator.api.convert import workflow_fields
from orchestrator.monitor import MonitorEvent
from orchestrator.registry import WorkflowVersion
from orchestrator.services import EngineSummary
from orchestrator.store import ExecutionRow
from orchestrator.waits.receipt import SignalReceipt
from orchestrator.workflows import WorkflowSummary

NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IssueOut(BaseModel):
    path: str = Field(description="Where the problem is: a field, `nodes[2].depends_on`, ...")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable and machine-readable: not_found, invalid_argument, ...")
    message: str
    issues: list[IssueOut] = []


class ErrorBody(BaseModel):
    """Every error answer has this shape."""

    error: ErrorDetail


class Health(BaseModel):
    status: str


# --- workflows -------------------------------------------------------------------------------


class WorkflowSummaryOut(BaseModel):
    name: str
    latest_version: str
    versions: list[str]
    description: str

    @classmethod
    def of(cls, w: WorkflowSummary) -> WorkflowSummaryOut:
        return cls(
            name=w.name,
            latest_version=w.latest_version,
            versions=list(w.versions),
            description=w.description,
        )


class WorkflowList(BaseModel):
    workflows: list[WorkflowSummaryOut]


class WorkflowOut(BaseModel):
    name: str
    version: str
    description: str
    deprecated: bool
    registered_at: str | None
    digest: str
    nodes: list[str]
    uses: list[str] = Field(description="Sub-workflows it calls, as `name@range`.")
    used_by: list[str] = Field(description="Versions that call it, as `name@version`.")
    source: str

    @classmethod
    def of(cls, wf: WorkflowVersion, used_by: list[tuple[WorkflowVersion, str]]) -> WorkflowOut:
        return cls(**workflow_fields(wf, used_by), registered_at=iso(wf.registered_at))


class VersionList(BaseModel):
    versions: list[WorkflowOut]


class Registered(BaseModel):
    workflow: WorkflowOut
    created: bool = Field(description="False when this exact version was registered already.")


class DeprecateIn(_In):
    deprecated: bool = True


class NodeChangeOut(BaseModel):
    node: str
    fields: list[str]


class DiffOut(BaseModel):
    name: str
    from_version: str
    to_version: str
    added: list[str]
    removed: list[str]
    changed: list[NodeChangeOut]
    other: list[str]
    can_continue: bool
    reasons: list[str]
    notes: list[str]


# --- executions ------------------------------------------------------------------------------


class StartIn(_In):
    workflow: str = Field(min_length=1, max_length=63)
    version: str = Field(
        default="", description="Empty: the latest version that is not deprecated."
    )
    inputs: dict[str, Any] = {}
    routing_key: str = Field(default="", description="Placement key; default: the execution id.")
    idempotency_key: str = Field(
        default="", description="A retried request with the same key gets the same execution."
    )


class ExecutionOut(BaseModel):
    """The execution result of ARCHITECTURE.md (``nodes``, ``path``, ...), as it stands."""

    model_config = ConfigDict(extra="allow")

    id: str
    workflow: str
    version: str
    status: str
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    nodes: dict[str, Any] = {}
    path: list[str] = []
    wake_at: str | None = Field(
        default=None,
        description="While parked (status `waiting`): when the engine's earliest timer (a "
        "retry's backoff, the execution's timeout) wakes it; null without one. A wait's own "
        "due time is its task's `due_at`.",
    )


class ExecutionSummaryOut(BaseModel):
    id: str
    workflow: str
    version: str
    status: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    engine: str
    parent_id: str | None
    parent_node: str | None
    retry_of: str | None = Field(default=None, description="The execution this one retries.")
    retried_by: str | None = Field(default=None, description="The retry made of this one.")
    wake_at: str | None = Field(
        default=None,
        description="While parked (status `waiting`): when the engine's earliest timer (a "
        "retry's backoff, the execution's timeout) wakes it; null without one. A wait's own "
        "due time is its task's `due_at`.",
    )

    @classmethod
    def of(cls, row: ExecutionRow) -> ExecutionSummaryOut:
        return cls(
            id=row.id,
            workflow=row.workflow,
            version=row.version,
            status=row.status,
            created_at=iso(row.created_at),
            started_at=iso(row.started_at),
            finished_at=iso(row.finished_at),
            engine=row.engine_name,
            parent_id=row.parent_id,
            parent_node=row.parent_node,
            retry_of=row.retry_of,
            retried_by=row.retried_by,
            wake_at=iso(row.wake_at) if row.status == "waiting" else None,
        )


class ExecutionPage(BaseModel):
    executions: list[ExecutionSummaryOut]
    next_page_token: str | None = Field(
        description="Pass as `page_token` for the next page; null on the last one."
    )


class RetryIn(_In):
    from_node: str | None = Field(
        default=None,
        alias="from",
        min_length=1,
        max_length=200,
        description="Run this node and everything after it again too; required for a "
        "completed execution. Without it, only what did not finish runs again.",
    )


class SignalIn(_In):
    outcome: str = Field(
        default="",
        max_length=200,
        description="Routes the waiting node's `next`; empty: the data's `outcome` field, or "
        "SUCCESS.",
    )
    data: Any = Field(default=None, description="The waiting node's output.")


class SignalOut(BaseModel):
    id: str = Field(description="Identifies the signal (events, logs).")
    execution_id: str
    name: str
    outcome: str
    sent_at: str | None
    node: str | None = Field(
        description="The `wait` node that consumed it at once; null: kept until a node waits "
        "for it."
    )
    visit: int | None = Field(description="That node's visit.")
    consumed: bool = Field(description="Whether a waiting node took it at once.")

    @classmethod
    def of(cls, receipt: SignalReceipt) -> SignalOut:
        return cls(
            id=receipt.id,
            execution_id=receipt.execution_id,
            name=receipt.name,
            outcome=receipt.outcome,
            sent_at=iso(receipt.sent_at),
            node=receipt.node,
            visit=receipt.visit,
            consumed=receipt.node is not None,
        )


class CancelIn(_In):
    reason: str = ""


class EngineOut(BaseModel):
    id: str
    address: str
    state: str
    healthy: bool
    in_flight: int
    capacity: int
    version: str

    @classmethod
    def of(cls, engine: EngineSummary) -> EngineOut:
        return cls(**dataclasses.asdict(engine))


class EngineList(BaseModel):
    engines: list[EngineOut]


# --- events ----------------------------------------------------------------------------------


class EventOut(BaseModel):
    sequence: int
    type: str
    at: str | None
    severity: str
    workflow: str
    version: str
    execution_id: str
    node: str | None
    visit: int
    attempt: int
    engine_id: str
    message: str
    data: dict[str, Any] | None

    @classmethod
    def of(cls, e: MonitorEvent) -> EventOut:
        return cls(
            sequence=e.sequence,
            type=e.type,
            at=iso(e.at),
            severity=e.severity.name.lower(),
            workflow=e.workflow,
            version=e.version,
            execution_id=e.execution_id,
            node=e.node,
            visit=e.visit,
            attempt=e.attempt,
            engine_id=e.engine_id,
            message=e.message,
            data=dict(e.data) if e.data is not None else None,
        )


class EventPage(BaseModel):
    events: list[EventOut]
    last_sequence: int = Field(
        description="The sequence of the last event listed (or `since`): pass it as `since` "
        "to read on."
    )


# --- triggers --------------------------------------------------------------------------------


class TriggerRunIn(_In):
    """``POST /trigger/{workflow}``: ``{"inputs": {...}}``."""

    inputs: dict[str, Any] = {}
    version: str = ""
    routing_key: str = ""
    idempotency_key: str = ""


class TriggerRunOut(BaseModel):
    execution_id: str
    workflow: str
    version: str
    status: str
    url: str = Field(description="Where to read the execution.")


class CronTriggerOut(BaseModel):
    workflow: str
    name: str
    source: str = Field(description="`definition` (the workflow's `triggers:`) or `api`.")
    cron: str
    timezone: str
    inputs: dict[str, Any]
    overlap: str
    catch_up: str
    catch_up_window: float
    enabled: bool
    last_fire_at: str | None
    next_fire_at: str | None
    last_execution_id: str | None


class CronTriggerList(BaseModel):
    triggers: list[CronTriggerOut]
