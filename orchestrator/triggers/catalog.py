"""Which cron triggers exist: those of the workflows' definitions and those added through the API.

* **Definition triggers** are the ``triggers:`` of the version a start without a version picks:
  the greatest version that is not deprecated. That version is the one they start. When every
  version of a workflow is deprecated, its definition triggers do not fire (a start would be
  refused); they come back with the first version that is not deprecated.
* **API triggers** live in the store only (``TriggerRow.source == "api"``, the spec as JSON);
  they start the greatest non-deprecated version, whichever it is when they fire, and their
  inputs are checked against that version's declaration each time (a spec the new version no
  longer accepts makes its ticks fail with reason ``error``).

Both are keyed by (workflow, trigger name). A definition trigger takes its name over from an API
trigger (a later version of the definition may add one with that name); the API refuses the
opposite.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from engine.definition.model import CronTrigger
from engine.definition.parser import trigger_from_spec
from engine.definition.schema import TriggerDoc
from engine.definition.triggers import build_trigger
from engine.errors import DefinitionError
from engine.lua import LuaSandbox
from orchestrator.registry import Registry, WorkflowVersion
from orchestrator.store import TriggerRow
from orchestrator.triggers.cron import CronError, CronSchedule

log = logging.getLogger(__name__)

DEFINITION = "definition"
API = "api"


@dataclass(frozen=True, slots=True)
class ActiveTrigger:
    """A trigger that fires: where it comes from, its model and its schedule."""

    workflow: str
    trigger: CronTrigger
    schedule: CronSchedule
    source: str
    version: str = ""
    """The version it starts; empty for API triggers (the latest startable one)."""
    problem: str | None = None
    """Why its ticks cannot start an execution (an API spec the latest version refuses)."""

    @property
    def name(self) -> str:
        return self.trigger.name


@dataclass(frozen=True, slots=True)
class TriggerInfo:
    """What the API shows of a trigger: its spec and its state."""

    name: str
    workflow: str
    source: str
    """``definition`` or ``api``."""
    cron: str
    timezone: str
    overlap: str
    catch_up: str
    catch_up_window: float
    enabled: bool
    inputs: Mapping[str, Any]
    """As written: values and templates."""
    last_fire_at: float | None
    next_fire_at: float | None
    last_execution_id: str | None
    version: str = ""
    """Definition triggers: the version whose definition holds it (and which it starts)."""


def startable(registry: Registry, workflow: str) -> WorkflowVersion | None:
    """The version a start without a version picks, or None (unknown, or all deprecated)."""
    if workflow not in registry.names():
        return None
    wf = registry.get(workflow)
    return None if wf.deprecated else wf


def definition_triggers(registry: Registry, workflow: str = "") -> list[ActiveTrigger]:
    found = []
    for name in [workflow] if workflow else registry.names():
        wf = startable(registry, name)
        if wf is None:
            continue
        for trigger in wf.definition.triggers:
            schedule = CronSchedule(trigger.cron, trigger.timezone)
            found.append(ActiveTrigger(name, trigger, schedule, DEFINITION, wf.version))
    return found


def spec_json(trigger: CronTrigger) -> bytes:
    return json.dumps(dict(trigger.document), sort_keys=True, separators=(",", ":")).encode()


def api_trigger(row: TriggerRow, registry: Registry, sandbox: LuaSandbox) -> ActiveTrigger | None:
    """The API trigger of ``row``, checked against the latest startable version's inputs."""
    try:
        spec = json.loads(row.spec_json or b"{}")
        doc = TriggerDoc.model_validate({**spec, "name": row.trigger, "inputs": {}})
        loose, _ = build_trigger(0, doc, {}, sandbox, document={**spec, "name": row.trigger})
        schedule = CronSchedule(loose.cron, loose.timezone)
    except (ValueError, pydantic.ValidationError, CronError) as exc:
        log.warning("API trigger %s of %s is unreadable: %s", row.trigger, row.workflow, exc)
        return None
    wf = startable(registry, row.workflow)
    if wf is None:
        problem = f"workflow {row.workflow} has no version that is not deprecated"
        return ActiveTrigger(row.workflow, loose, schedule, API, problem=problem)
    try:
        trigger = trigger_from_spec(spec, wf.definition, name=row.trigger, sandbox=sandbox)
    except DefinitionError as exc:
        problem = f"its spec does not fit {wf.name} {wf.version}: " + "; ".join(
            str(issue) for issue in exc.issues
        )
        return ActiveTrigger(row.workflow, loose, schedule, API, problem=problem)
    return ActiveTrigger(row.workflow, trigger, schedule, API)


def info(active: ActiveTrigger, row: TriggerRow | None, now_next: float | None) -> TriggerInfo:
    """``now_next``: the next tick after now, shown while the stored cursor does not apply."""
    t = active.trigger
    current = row is not None and row.schedule == active.schedule.key
    return TriggerInfo(
        name=t.name,
        workflow=active.workflow,
        source=active.source,
        cron=t.cron,
        timezone=t.timezone,
        overlap=str(t.overlap),
        catch_up=str(t.catch_up),
        catch_up_window=t.catch_up_window,
        enabled=t.enabled,
        inputs=dict(t.document.get("inputs") or {}),
        last_fire_at=row.last_fire_at if row is not None else None,
        next_fire_at=row.next_fire_at if current and row is not None else now_next,
        last_execution_id=row.last_execution_id if row is not None else None,
        version=active.version,
    )
