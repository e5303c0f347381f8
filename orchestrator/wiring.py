"""``Orchestrator``: the orchestrator's parts, assembled in one place, started and stopped.

This is the only module that knows every part. Each part owns one piece of state and talks to
the others through the small interfaces it was given here (docs/architecture.md draws them):

=====================  =====================================================================
``ExecutionTable``     one record per execution in memory, its indexes, ``evict``
``Placement``          the queue, the balancer, what each engine was given, leases
``Lifecycle``          engine reports, failover, cancel, end; writes checkpoints and results
``SubWorkflows``       parent/child requests and answers
``TaskBoard``,         durable tasks of ``task`` nodes, their deadlines; the connected
``WorkerHub``          workers and their free slots (``TaskService`` for the APIs)
``EngineFleet``        discovery's members, one ``EngineLink`` each (protobuf stops there)
``Journal``            writes to the store's group commit; callbacks once durable
``Monitor``            numbers events, fans them out to subscribers
``Supervisor``         every background loop and job, and the health they make
``WorkflowService``,   the service layer both APIs call (``Services``); the trigger
``ExecutionService``,  scheduler uses the execution service through a port
``TriggerScheduler``
``Retention``,         deleting old executions; the Prometheus metrics, fed by the
``OrchestratorMetrics`` signals connected below and a ``stats()`` snapshot
=====================  =====================================================================

Observers are connected here and nowhere else, with one mechanism (``Signal``): the journal,
the metrics and the trigger scheduler listen to ``Monitor.published``; the metrics to
``Placement.placed``, ``Lifecycle.node_recorded|refused|ended`` and ``Store.committed``; the task
board to ``Lifecycle.task_requested|ended`` and ``WorkerHub.joined|left``.

Start: open the store (migrations run there), number events after the log's last, load workflow
versions, resume every unfinished execution (``recovery``), then run discovery, retention and the
trigger scheduler under the supervisor. Stop: cancel all background work, close the engine
links, end event subscriptions, commit what is queued and close the store.
"""

from __future__ import annotations

import contextlib

from engine.state.events import ExecutionStatus
from orchestrator.children import SubWorkflows
from orchestrator.discovery import Discovery
from orchestrator.engines.fleet import EngineFleet, EngineLinks
from orchestrator.executions.service import ExecutionService
from orchestrator.executions.table import ExecutionTable
from orchestrator.journal import Journal
from orchestrator.lifecycle import Lifecycle
from orchestrator.metrics import OrchestratorMetrics
from orchestrator.monitor import Monitor
from orchestrator.placement import Placement
from orchestrator.recovery import load_workflows, reattach_deadline, recover
from orchestrator.registry import Registry
from orchestrator.retention import Retention
from orchestrator.ring import Balancer
from orchestrator.services import EngineSummary, Readiness, Services
from orchestrator.stats import OrchestratorStats
from orchestrator.store import MemoryStore, Store
from orchestrator.supervise import Supervisor
from orchestrator.tasks.board import TaskBoard
from orchestrator.tasks.events import TaskEvents
from orchestrator.tasks.metrics import TaskMetrics, TaskStats
from orchestrator.tasks.service import TaskService
from orchestrator.tasks.workers import WorkerHub
from orchestrator.triggers.scheduler import DEFAULT_TRIGGER_INTERVAL, TriggerScheduler
from orchestrator.waits.parking import Parking
from orchestrator.waits.signals import Signals
from orchestrator.watch import EventLog
from orchestrator.workflows import WorkflowService


class Orchestrator:
    """``async with Orchestrator(...)``: see the module docstring."""

    def __init__(
        self,
        *,
        orchestrator_id: str,
        discovery: Discovery,
        balancer: Balancer,
        store: Store | None = None,
        registry: Registry | None = None,
        monitor: Monitor | None = None,
        health_interval: float = 10.0,
        health_timeout: float = 2.0,
        max_queued: int = 10_000,
        max_depth: int = 10,
        retention: float = 7 * 86400.0,
        reattach_timeout: float = 15.0,
        triggers_enabled: bool = True,
        trigger_interval: float = DEFAULT_TRIGGER_INTERVAL,
    ) -> None:
        self.id = orchestrator_id
        self.store = store or MemoryStore()
        self.registry = registry or Registry()
        self.monitor = monitor or Monitor()
        self.supervisor = Supervisor()
        self.table = ExecutionTable()
        self.journal = Journal(self.store)
        self.engines = EngineLinks()
        self.placement = Placement(
            balancer, self.engines, self.journal, self.monitor, max_queued=max_queued
        )
        self.children = SubWorkflows(
            table=self.table,
            store=self.store,
            registry=self.registry,
            placement=self.placement,
            journal=self.journal,
            max_depth=max_depth,
        )
        self.lifecycle = Lifecycle(
            table=self.table,
            placement=self.placement,
            engines=self.engines,
            journal=self.journal,
            monitor=self.monitor,
            children=self.children,
            supervisor=self.supervisor,
        )
        self.fleet = EngineFleet(
            discovery,
            self.engines,
            self.lifecycle,
            self.supervisor,
            orchestrator_id=orchestrator_id,
            health_interval=health_interval,
            health_timeout=health_timeout,
        )
        self.hub = WorkerHub()
        self.board = TaskBoard(
            store=self.store,
            journal=self.journal,
            monitor=self.monitor,
            table=self.table,
            placement=self.placement,
            hub=self.hub,
            supervisor=self.supervisor,
        )
        self.tasks = TaskService(self.board, self.hub, self.store)
        self.parking = Parking(self.board, self.lifecycle.unpark)
        """Parked executions (status ``waiting``) and the timers that wake them."""
        self.signals = Signals(tasks=self.board, journal=self.journal, monitor=self.monitor)
        self.workflows = WorkflowService(self.registry, self.store, self.monitor, self.table)
        self.executions = ExecutionService(
            registry=self.registry,
            store=self.store,
            table=self.table,
            lifecycle=self.lifecycle,
            placement=self.placement,
            journal=self.journal,
            signals=self.signals,
        )
        self.triggers = TriggerScheduler(
            self.executions,
            self.registry,
            self.store,
            self.monitor,
            orchestrator_id=orchestrator_id,
            interval=trigger_interval,
        )
        """Cron triggers: the loop (when enabled) and the API's trigger operations."""
        self.events = EventLog(self.monitor, self.store, self.executions)
        self.retention = Retention(self.store, self.table, retention=retention)
        self.metrics = OrchestratorMetrics(orchestrator_id, self.stats)
        self.task_metrics = TaskMetrics(
            lambda: TaskStats(self.board.queue_stats(), self.hub.snapshot())
        )
        self.metrics.registry.register(self.task_metrics)
        """Prometheus metrics in a registry of this orchestrator's own: ``metrics.render()``."""
        self.services = Services(
            workflows=self.workflows,
            executions=self.executions,
            triggers=self.triggers,
            events=self.events,
            tasks=self.tasks,
            engines=self.engine_summaries,
            readiness=self.readiness,
            metrics=self.metrics.render,
        )
        """What the APIs call."""
        self._reattach_timeout = reattach_timeout
        self._triggers_enabled = triggers_enabled
        self._started = False
        self._observe()

    def _observe(self) -> None:
        """Every observer of the process, connected in one place."""
        published = self.monitor.published
        published.connect(self.journal.event)  # first: the event log
        published.connect(self.triggers.on_event)
        published.connect(self.metrics.count_event)
        self.placement.placed.connect(self.metrics.placed)
        self.lifecycle.node_recorded.connect(self.metrics.node_recorded)
        self.lifecycle.refused.connect(self.metrics.refused)
        self.lifecycle.ended.connect(self.metrics.ended)
        self.lifecycle.ended.connect(self.board.execution_ended)
        self.lifecycle.ended.connect(self.signals.execution_ended)
        self.lifecycle.task_requested.connect(self.board.requested)
        self.lifecycle.task_delivered.connect(self.board.delivered)
        self.lifecycle.parked.connect(self.parking.parked)
        self.board.scheduled.connect(self.signals.task_scheduled)
        self.board.wake.connect(self.lifecycle.unpark)
        self.board.scheduled.connect(self.task_metrics.scheduled)
        self.board.started.connect(self.task_metrics.started)
        self.board.ended.connect(self.task_metrics.ended)
        self.board.refused.connect(self.task_metrics.refused)
        worker_events = TaskEvents(self.monitor, self.table)
        self.hub.joined.connect(worker_events.worker_joined)
        self.hub.left.connect(worker_events.worker_left)
        self.store.committed.connect(self.metrics.committed)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and resume; raises ``StoreError`` when the store is unusable."""
        if self._started:
            return
        await self.store.open()
        try:
            await self.store.claim(self.id)
        except BaseException:
            await self.store.close()
            raise
        self._started = True
        self.monitor.resume_after(await self.store.last_event_seq())
        await load_workflows(self.store, self.registry)
        self.supervisor.loop("journal", self.journal.run())
        waiting = await recover(self.store, self.registry, self.table, self.lifecycle)
        await self.board.load(reclaim=self._reattach_timeout)
        await self.signals.load(self.store)
        self.parking.loaded()
        self.supervisor.loop("task deadlines", self.board.run())
        self.supervisor.loop("parked executions", self.parking.run())
        self.supervisor.loop("discovery", self.fleet.run())
        self.supervisor.loop("retention", self.retention.run())
        if self._triggers_enabled:
            self.supervisor.loop("triggers", self.triggers.run())
        if waiting:
            self.supervisor.spawn(
                "re-attach deadline", reattach_deadline(self.lifecycle, self._reattach_timeout)
            )

    async def stop(self) -> None:
        """Close the engine links, stop all other background work, end the subscriptions,
        close the store."""
        await self.fleet.stop()  # the links first: each stops its own loops
        await self.supervisor.stop()
        self.hub.close()
        self.triggers.close()
        self.monitor.close()
        if self._started:
            self._started = False
            with contextlib.suppress(Exception):
                await self.store.durable()
            await self.store.close()

    async def __aenter__(self) -> Orchestrator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- what the process and the APIs read --------------------------------------------------

    def stats(self) -> OrchestratorStats:
        """A snapshot of every part's figures (the metrics read it at scrape time)."""
        return OrchestratorStats(
            placement=self.placement.stats(),
            engines=tuple(self.engines.infos()),
            stale_reports=self.lifecycle.stale_reports,
            subscriber_drops=self.monitor.dropped_subscribers,
            store_failed=self.journal.failed.is_set(),
            background=self.supervisor.stats(),
            parked=sum(1 for r in self.table.unfinished() if r.status is ExecutionStatus.WAITING),
        )

    def engine_summaries(self) -> list[EngineSummary]:
        placed = dict(self.placement.stats().placed)
        return [
            EngineSummary(
                id=info.engine_id or info.id,
                address=info.address,
                state=info.state.value,
                healthy=info.healthy,
                in_flight=max(placed.get(info.id, 0), info.reported_in_flight),
                capacity=info.capacity,
                version=info.version,
            )
            for info in self.engines.infos()
        ]

    async def readiness(self) -> Readiness:
        """Ready when the store answers, has not failed, and every background loop runs."""
        problems = list(self.supervisor.health().problems)
        if self.journal.failure is not None:
            problems.insert(0, str(self.journal.failure))
        try:
            await self.store.last_event_seq()
        except Exception:
            problems.insert(0, "store unavailable")
        return Readiness(tuple(problems))
