"""``TriggerScheduler``: fires cron triggers, exactly once per tick across replicas.

``run()`` loops: one pass (``tick``), then sleep until the earliest cursor or ``interval``,
whichever comes first; registering, deprecating or deleting a workflow version and the API's
trigger changes wake it at once. One pass, for each trigger (``catalog``):

1. A trigger seen for the first time, or whose cron expression or time zone changed, gets the
   cursor "first tick after now" (no catch-up from the past), by compare-and-set.
2. When the cursor is due, ``cron.plan`` says which ticks fire and how many were missed, and
   ``Store.claim_trigger`` moves the cursor past now with one compare-and-set. Only the
   orchestrator whose claim wins goes on, so of several replicas on one PostgreSQL exactly one
   fires each tick; the execution's idempotency key ``trigger:<workflow>:<name>:<tick>`` (the
   tick in UTC) is a second guard. A process that dies between its claim and the start loses
   that tick (at most once).
3. For each tick to fire: the overlap policy looks at the trigger's last execution (``skip``
   while it runs, ``cancel-previous`` cancels it, ``allow``), the inputs are rendered (the
   templates' scope is ``trigger``) and the execution starts. Events: ``trigger.fired``, and
   ``trigger.skipped`` with reason ``overlap``, ``missed``, ``error`` or ``disabled``.

A failing trigger never stops the loop: it is logged and reported as ``trigger.skipped``.

``list_triggers``, ``put_trigger`` and ``delete_trigger`` are the service-layer operations the
APIs call. The scheduler starts, reads and cancels executions through a small port
(``ExecutionStarter``, the ``ExecutionService``); the wiring connects ``on_event`` to the
monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from engine.definition.model import CatchUp, Overlap
from engine.definition.parser import trigger_from_spec
from engine.errors import TaskError, WeirError
from engine.lua import LuaCode, LuaError, LuaLimits, LuaSandbox, Scope
from engine.templates import Const, DictT, Expr, Interp, ListT, Template, render
from orchestrator.errors import FailedPrecondition, NotFound
from orchestrator.executions.record import ExecutionRecord
from orchestrator.monitor import Monitor, MonitorEvent
from orchestrator.registry import Registry
from orchestrator.store import Store, TriggerRow
from orchestrator.triggers import catalog
from orchestrator.triggers.catalog import API, DEFINITION, ActiveTrigger, TriggerInfo
from orchestrator.triggers.cron import GRACE, CronSchedule, Plan, plan, utc_iso

log = logging.getLogger(__name__)

DEFAULT_TRIGGER_INTERVAL = 10.0
"""Seconds between passes when no tick is due sooner."""
MIN_SLEEP = 0.01
TEMPLATE_LIMITS = LuaLimits(instructions=1_000_000, memory=16 * 1024 * 1024, timeout=5.0)


class ExecutionStarter(Protocol):
    """What the scheduler needs of executions (``ExecutionService``)."""

    async def start(
        self,
        workflow: str,
        version: str = "",
        inputs: Mapping[str, Any] | None = None,
        *,
        routing_key: str = "",
        idempotency_key: str = "",
    ) -> ExecutionRecord: ...

    async def get(self, execution_id: str) -> ExecutionRecord:
        """Raises ``NotFound``."""

    async def cancel(self, execution_id: str, reason: str = "") -> ExecutionRecord: ...


class TriggerScheduler:
    """Fires the cron triggers of one orchestrator; see the module docstring."""

    def __init__(
        self,
        executions: ExecutionStarter,
        registry: Registry,
        store: Store,
        monitor: Monitor,
        *,
        orchestrator_id: str,
        clock: Callable[[], float] = time.time,
        interval: float = DEFAULT_TRIGGER_INTERVAL,
    ) -> None:
        self._executions = executions
        self._registry = registry
        self._store = store
        self._monitor = monitor
        self._orchestrator_id = orchestrator_id
        self.clock = clock
        self.interval = interval
        self._sandbox = LuaSandbox(workers=1)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def close(self) -> None:
        """Stop the sandbox's worker threads (a new sandbox serves a later start)."""
        self._sandbox.close()
        self._sandbox = LuaSandbox(workers=1)

    def on_event(self, event: MonitorEvent, data_json: bytes | None = None) -> None:
        """A ``Monitor.published`` listener: a workflow change wakes the loop at once."""
        if event.type.startswith("workflow."):
            self._wake.set()

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Pass after pass until cancelled."""
        while True:
            self._wake.clear()
            try:
                due = await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("trigger pass failed; trying again in %gs", self.interval)
                due = None
            delay = self.interval if due is None else min(self.interval, due - self.clock())
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the wait ends, and stop() would hang
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, MIN_SLEEP)):
                    await self._wake.wait()

    async def tick(self, now: float | None = None) -> float | None:
        """One pass at ``now`` (default: the clock); return the earliest cursor, if any."""
        async with self._lock:
            now = self.clock() if now is None else now
            rows = {(r.workflow, r.trigger): r for r in await self._store.trigger_states()}
            earliest: float | None = None
            for active in self._active(rows):
                try:
                    cursor = await self._pass(active, rows.get((active.workflow, active.name)), now)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.exception("trigger %s of %s failed", active.name, active.workflow)
                    self._skipped(active, "error", f"the trigger failed: {exc}", now)
                    continue
                if cursor is not None and (earliest is None or cursor < earliest):
                    earliest = cursor
            return earliest

    def _active(self, rows: Mapping[tuple[str, str], TriggerRow]) -> list[ActiveTrigger]:
        registry = self._registry
        found = catalog.definition_triggers(registry)
        taken = {(a.workflow, a.name) for a in found}
        for key, row in rows.items():
            if row.source != API or key in taken:
                continue
            active = catalog.api_trigger(row, registry, self._sandbox)
            if active is not None:
                found.append(active)
        return found

    async def _pass(
        self, active: ActiveTrigger, row: TriggerRow | None, now: float
    ) -> float | None:
        store = self._store
        schedule = active.schedule
        if row is not None and row.source == API and active.source == DEFINITION:
            log.warning(
                "trigger %s of %s is now in the definition: it replaces the API trigger of "
                "that name",
                active.name,
                active.workflow,
            )
            await store.delete_trigger_state(active.workflow, active.name)
            row = None
        if row is None or row.next_fire_at is None or row.schedule != schedule.key:
            cursor = schedule.next_after(now)
            await store.claim_trigger(
                active.workflow,
                active.name,
                expected_next=None if row is None else row.next_fire_at,
                new_next=cursor,
                schedule=schedule.key,
                owner=self._orchestrator_id,
            )
            return cursor
        t = active.trigger
        if row.next_fire_at > now:
            return row.next_fire_at
        if t.enabled:
            p = plan(schedule, row.next_fire_at, now, t.catch_up, t.catch_up_window)
        else:  # every due tick is skipped
            p = plan(schedule, row.next_fire_at, now, CatchUp.NONE, 0.0, grace=-1.0)
        won = await store.claim_trigger(
            active.workflow,
            active.name,
            expected_next=row.next_fire_at,
            new_next=p.cursor,
            schedule=schedule.key,
            owner=self._orchestrator_id,
            fired_at=p.fire[-1] if p.fire else None,
        )
        if not won:
            return None  # another orchestrator fired it; read its cursor on the next pass
        if p.missed:
            self._report_missed(active, p, now, disabled=not t.enabled)
        last = row.last_execution_id
        for tick in p.fire:
            last = await self._fire(active, tick, now, last)
        return p.cursor

    def _report_missed(self, active: ActiveTrigger, p: Plan, now: float, *, disabled: bool) -> None:
        assert p.first_missed is not None and p.last_missed is not None
        count = f"{p.missed}{'+' if p.missed_more else ''}"
        ticks = f"{count} tick{'s' if p.missed != 1 else ''}"
        span = utc_iso(p.first_missed) + (
            f" to {utc_iso(p.last_missed)}" if p.last_missed != p.first_missed else ""
        )
        if disabled:
            message = f"trigger {active.name} is disabled: skipped {ticks} ({span})"
        else:
            message = (
                f"trigger {active.name} missed {ticks} ({span}): catch_up is "
                f"{active.trigger.catch_up}"
            )
        self._skipped(
            active,
            "disabled" if disabled else "missed",
            message,
            p.last_missed,
            count=p.missed,
            first_scheduled_at=utc_iso(p.first_missed),
        )

    async def _fire(
        self, active: ActiveTrigger, tick: float, now: float, last: str | None
    ) -> str | None:
        """Start one execution for ``tick``; return the trigger's last execution afterwards."""
        t = active.trigger
        when = active.schedule.local_iso(tick)
        if active.problem is not None:
            self._skipped(active, "error", f"trigger {t.name} at {when}: {active.problem}", tick)
            return last
        if t.overlap is not Overlap.ALLOW and last:
            previous = await self._unfinished(last)
            if previous is not None and t.overlap is Overlap.SKIP:
                self._skipped(
                    active,
                    "overlap",
                    f"trigger {t.name} at {when}: execution {last} is still running "
                    "(overlap: skip)",
                    tick,
                    execution_id=last,
                )
                return last
            if previous is not None:
                await self._executions.cancel(
                    last, f"trigger {t.name}: replaced by the tick of {when} (cancel-previous)"
                )
        try:
            inputs = await self._render(active, tick, now)
            record = await self._executions.start(
                active.workflow,
                active.version,
                inputs,
                idempotency_key=f"trigger:{active.workflow}:{t.name}:{utc_iso(tick)}",
            )
        except (WeirError, TaskError) as exc:
            self._skipped(active, "error", f"trigger {t.name} at {when}: {exc}", tick)
            return last
        await self._store.set_trigger_execution(active.workflow, t.name, record.id)
        self._monitor.publish(
            "trigger.fired",
            workflow=record.name,
            version=record.version,
            execution_id=record.id,
            message=f"trigger {t.name} fired for {when}: execution {record.id}",
            data={
                "trigger": t.name,
                "scheduled_at": utc_iso(tick),
                "execution_id": record.id,
                "late": round(max(now - tick, 0.0), 3),
            },
        )
        return record.id

    async def _unfinished(self, execution_id: str) -> ExecutionRecord | None:
        try:
            record = await self._executions.get(execution_id)
        except NotFound:
            return None
        return None if record.finished else record

    async def _render(self, active: ActiveTrigger, tick: float, now: float) -> dict[str, Any]:
        fields = {
            "time": active.schedule.local_iso(tick),
            "utc": utc_iso(tick),
            "name": active.name,
            "workflow": active.workflow,
            "fired_at": utc_iso(now),
        }
        scope = Scope({}, {}, {}, fields)
        try:
            value = await render(
                trigger_scoped(active.trigger.inputs), scope, self._sandbox, TEMPLATE_LIMITS
            )
        except LuaError as exc:
            raise TaskError(f"inputs: {exc.message}") from None
        if not isinstance(value, dict):
            raise TaskError(f"inputs must render to a mapping, got {type(value).__name__}")
        return value

    def _skipped(
        self,
        active: ActiveTrigger,
        reason: str,
        message: str,
        scheduled_at: float,
        *,
        execution_id: str = "",
        **extra: Any,
    ) -> None:
        log.warning("%s", message)
        self._monitor.publish(
            "trigger.skipped",
            workflow=active.workflow,
            version=active.version,
            execution_id=execution_id,
            message=message,
            data={
                "trigger": active.name,
                "reason": reason,
                "scheduled_at": utc_iso(scheduled_at),
                **extra,
            },
        )

    # --- the API's operations ----------------------------------------------------------------

    async def list_triggers(self, workflow: str = "") -> list[TriggerInfo]:
        """Definition and API triggers (of one workflow, or all), by workflow then name."""
        registry = self._registry
        rows = {(r.workflow, r.trigger): r for r in await self._store.trigger_states(workflow)}
        actives = catalog.definition_triggers(registry, workflow)
        taken = {(a.workflow, a.name) for a in actives}
        for key, row in rows.items():
            if row.source == API and key not in taken:
                active = catalog.api_trigger(row, registry, self._sandbox)
                if active is not None:
                    actives.append(active)
        now = self.clock()
        found = [
            catalog.info(a, rows.get((a.workflow, a.name)), a.schedule.next_after(now))
            for a in actives
        ]
        return sorted(found, key=lambda i: (i.workflow, i.name))

    async def put_trigger(self, workflow: str, name: str, spec: Mapping[str, Any]) -> TriggerInfo:
        """Create or replace the API trigger ``name`` of ``workflow``.

        Raises ``NotFound`` (unknown workflow), ``FailedPrecondition`` (the name is a definition
        trigger's, or every version is deprecated) or ``DefinitionError`` (the spec; paths
        relative to the trigger). A replaced trigger keeps its cursor when its cron expression
        and time zone are unchanged.
        """
        registry = self._registry
        registry.get(workflow)  # NotFound
        wf = catalog.startable(registry, workflow)
        if wf is None:
            raise FailedPrecondition(
                f"workflow {workflow}: every version is deprecated; a trigger could not start it"
            )
        self._refuse_definition_trigger(workflow, name, "define another name")
        trigger = trigger_from_spec(spec, wf.definition, name=name, sandbox=self._sandbox)
        schedule = CronSchedule(trigger.cron, trigger.timezone)
        store = self._store
        old = next((r for r in await store.trigger_states(workflow) if r.trigger == name), None)
        row = TriggerRow(
            workflow,
            name,
            source=API,
            spec_json=catalog.spec_json(trigger),
            schedule=schedule.key,
            owner=self._orchestrator_id,
        )
        if old is not None:
            row.last_fire_at = old.last_fire_at
            row.last_execution_id = old.last_execution_id
            if old.schedule == schedule.key:
                row.next_fire_at = old.next_fire_at
        if row.next_fire_at is None:
            row.next_fire_at = schedule.next_after(self.clock())
        await store.save_trigger_state(row)
        self._monitor.publish(
            "trigger.saved",
            workflow=workflow,
            message=f"API trigger {name} of {workflow} {'replaced' if old else 'created'} "
            f"({trigger.cron} {trigger.timezone})",
            data={"trigger": name, "spec": json.loads(row.spec_json or b"{}")},
        )
        self._wake.set()
        return catalog.info(ActiveTrigger(workflow, trigger, schedule, API), row, None)

    async def delete_trigger(self, workflow: str, name: str) -> None:
        """Delete the API trigger ``name``; ``NotFound``, or ``FailedPrecondition`` for a
        definition trigger."""
        self._refuse_definition_trigger(workflow, name, "change the definition")
        store = self._store
        row = next((r for r in await store.trigger_states(workflow) if r.trigger == name), None)
        if row is None or row.source != API:
            raise NotFound(f"workflow {workflow} has no API trigger {name!r}")
        await store.delete_trigger_state(workflow, name)
        self._monitor.publish(
            "trigger.deleted",
            workflow=workflow,
            message=f"API trigger {name} of {workflow} deleted",
            data={"trigger": name},
        )

    def _refuse_definition_trigger(self, workflow: str, name: str, advice: str) -> None:
        wf = catalog.startable(self._registry, workflow)
        if wf is not None and any(t.name == name for t in wf.definition.triggers):
            raise FailedPrecondition(
                f"trigger {name} of {workflow} is defined in its definition (version "
                f"{wf.version}): {advice}"
            )


def trigger_scoped(template: Template) -> Template:
    """``template`` with every expression reading ``trigger`` from the scope's ``args``.

    The sandbox's scope has ``inputs``, ``outputs``, ``execution`` and ``args``; a trigger
    template sees only ``trigger``, so each expression becomes a call that binds the name
    (on the same line: error messages keep their line numbers).
    """
    if isinstance(template, Const):
        return template
    if isinstance(template, Expr):
        return Expr(_bind(template.code))
    if isinstance(template, Interp):
        return Interp(tuple(p if isinstance(p, str) else _bind(p) for p in template.parts))
    if isinstance(template, DictT):
        return DictT(tuple((k, trigger_scoped(v)) for k, v in template.items))
    assert isinstance(template, ListT)
    return ListT(tuple(trigger_scoped(v) for v in template.items))


def _bind(code: LuaCode) -> LuaCode:
    source = f"(function(trigger) return ({code.source}\n) end)(args)"
    return LuaCode(source, code.chunkname, expression=True)


__all__ = ["GRACE", "TriggerInfo", "TriggerScheduler", "trigger_scoped"]
