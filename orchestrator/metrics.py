"""``OrchestratorMetrics``: the orchestrator's Prometheus metrics, in a registry of its own.

The wiring (``orchestrator/wiring.py``) builds one, connects its listeners to the parts' signals
and gives it a ``stats`` callable; the HTTP API serves ``render()`` at ``/metrics``. Every metric
and its labels are listed in ``docs/metrics.md``. Where the numbers come from:

* **monitor events** (``count_event`` on ``Monitor.published``): executions created, failovers,
  lost engine streams, trigger fires and skips, events by type. It runs for every event, so it
  only adds one to a plain dict entry; the counters are built at scrape time.
* **placement and the lifecycle** (``placed``, ``node_recorded``, ``refused``, ``ended``): queue
  wait, node durations and retries, engine refusals, execution ends (count, duration). Ends are
  counted from ``Lifecycle.ended`` rather than from ``execution.completed|failed|cancelled``
  events: an execution re-placed after a failover can emit its terminal event twice, and an
  engine drops the events of an execution while it is detached, but ``ended`` fires exactly
  once per execution.
* **the store** (``committed`` on ``Store.committed``): each group commit's duration and rows.
* **scrape time** (``collect`` reads one ``OrchestratorStats`` snapshot): queue and in-flight
  gauges, each engine link's load and state, subscriber drops, stale reports, bad engine
  messages, failed background work, a failed store.

Labels are bounded: workflow and trigger names, statuses, executor kinds, engine link ids,
reasons, kinds of background work, event types (at most ``MAX_EVENT_TYPES``); never execution or
node ids.

Everything here runs on the event loop; ``render()`` must too (an ``async def`` handler).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from engine.server.metrics import NODE_BUCKETS, executor_kind, will_retry
from engine.server.process import weir_version
from engine.state.events import NodeResult, NodeStatus
from orchestrator.engines.link import LinkState
from orchestrator.engines.messages import RefusalReason
from orchestrator.executions.record import ExecutionRecord
from orchestrator.monitor import MonitorEvent
from orchestrator.stats import OrchestratorStats

MAX_EVENT_TYPES = 200
"""Distinct event types counted by name; later ones count as ``other`` (engines send types)."""
SKIP_REASONS = frozenset({"overlap", "missed", "error", "disabled"})
EXECUTION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)
QUEUE_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30)
ROW_BUCKETS = (1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000)
_FAILED = NodeStatus.FAILED
_STATES = tuple(state.value for state in LinkState)


class Histogram:
    """A histogram kept on the event loop: no locks, a bisect and two additions per value.

    ``series(*labels)`` returns the list one label set counts in (resolve it once, keep it);
    ``observe(series, value)`` counts a value; ``family()`` builds the exposition at scrape time.
    prometheus-client's own ``Histogram`` takes a lock per bucket and walks the bounds: about
    four times the cost, on a path every node result takes.
    """

    __slots__ = ("_series", "bounds", "documentation", "labels", "name")

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.bounds = tuple(float(b) for b in buckets)
        self._series: dict[tuple[str, ...], list[float]] = {}
        """Per label set: a count per bucket (the last one +Inf), then the sum."""

    def series(self, *labels: str) -> list[float]:
        found = self._series.get(labels)
        if found is None:
            found = self._series[labels] = [0.0] * (len(self.bounds) + 2)
        return found

    def observe(self, series: list[float], value: float) -> None:
        series[bisect_left(self.bounds, value)] += 1  # a bound is inclusive (``le``)
        series[-1] += value

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        names = [repr(b) for b in self.bounds] + ["+Inf"]  # 0.5, 1.0: as prometheus-client
        for labels, series in list(self._series.items()):
            total, buckets = 0.0, []
            for name, count in zip(names, series, strict=False):
                total += count
                buckets.append((name, total))
            family.add_metric(list(labels), buckets, series[-1])
        return family


class OrchestratorMetrics:
    """The orchestrator's metrics; see the module docstring for where the numbers come from."""

    def __init__(self, orchestrator_id: str, stats: Callable[[], OrchestratorStats]) -> None:
        self._orchestrator_id = orchestrator_id
        self._stats = stats
        self.version = weir_version()
        # counted on the hot path in dicts and lists, exported by ``collect``
        self._events: dict[str, int] = {}
        self._started: dict[str, int] = {}
        self._finished: dict[tuple[str, str], int] = {}
        self._retries: dict[str, int] = {}
        self._dispatch_errors: dict[str, int] = {}
        self._streams_lost: dict[str, int] = {}
        self._fires: dict[tuple[str, str], int] = {}
        self._skips: dict[tuple[str, str, str], int] = {}
        self._handlers: dict[str, Callable[[MonitorEvent], None]] = {
            "execution.queued": self._on_queued,
            "execution.failover": self._on_failover,
            "engine.left": self._on_engine_left,
            "trigger.fired": self._on_trigger_fired,
            "trigger.skipped": self._on_trigger_skipped,
        }
        self.execution_duration = Histogram(
            "weir_execution_duration_seconds",
            "Executions from creation to end, by workflow and final status.",
            ["workflow", "status"],
            EXECUTION_BUCKETS,
        )
        self.node_duration = Histogram(
            "weir_node_duration_seconds",
            "Node runs the orchestrator persisted, from start to end, by executor and status.",
            ["executor", "status"],
            NODE_BUCKETS,
        )
        self.queue_wait = Histogram(
            "weir_execution_queue_wait_seconds",
            "Time in the placement queue before being sent to an engine (again after a failover).",
            [],
            QUEUE_BUCKETS,
        )
        self.commit_seconds = Histogram(
            "weir_store_write_seconds",
            "Group commits of the store: time per batch, retries included.",
            [],
            COMMIT_BUCKETS,
        )
        self.commit_rows = Histogram(
            "weir_store_write_rows",
            "Group commits of the store: rows (executions, node runs, events) per batch.",
            [],
            ROW_BUCKETS,
        )
        self._queue_wait = self.queue_wait.series()
        self._commit_seconds = self.commit_seconds.series()
        self._commit_rows = self.commit_rows.series()
        self._execution_series: dict[tuple[str, str], list[float]] = {}
        self._node_series: dict[tuple[type, NodeStatus], list[float]] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # --- monitor events -----------------------------------------------------------------------

    def count_event(self, event: MonitorEvent, data_json: bytes | None = None) -> None:
        """Count one event (a ``Monitor.published`` listener)."""
        kind = event.type
        events = self._events
        if kind in events:
            events[kind] += 1
        elif len(events) < MAX_EVENT_TYPES:
            events[kind] = 1
        else:
            events["other"] = events.get("other", 0) + 1
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(event)

    def _on_queued(self, event: MonitorEvent) -> None:
        _add(self._started, event.workflow)

    def _on_failover(self, event: MonitorEvent) -> None:
        _add(self._dispatch_errors, "failover")

    def _on_engine_left(self, event: MonitorEvent) -> None:
        link = event.data.get("link") if event.data else None
        _add(self._streams_lost, link if isinstance(link, str) else event.engine_id)

    def _on_trigger_fired(self, event: MonitorEvent) -> None:
        _add(self._fires, (event.workflow, _trigger(event)))

    def _on_trigger_skipped(self, event: MonitorEvent) -> None:
        reason = event.data.get("reason") if event.data else None
        reason = reason if reason in SKIP_REASONS else "other"
        _add(self._skips, (event.workflow, _trigger(event), str(reason)))

    # --- placement and the lifecycle ---------------------------------------------------------

    def placed(self, record: ExecutionRecord, waited: float) -> None:
        self.queue_wait.observe(self._queue_wait, waited if waited > 0 else 0.0)

    def node_recorded(self, record: ExecutionRecord, result: NodeResult) -> None:
        if not result.status.terminal or result.reused_from is not None:
            return  # a map's expansion (no attempt ended), or a record that ran elsewhere
        wf = record.wf
        node = wf.definition.by_id.get(result.node) if wf is not None else None
        if node is None:
            return
        key = (type(node.executor), result.status)
        series = self._node_series.get(key)
        if series is None:
            series = self._node_series[key] = self.node_duration.series(
                executor_kind(node), str(result.status)
            )
        self.node_duration.observe(series, max(result.finished_at - result.started_at, 0.0))
        if result.status is _FAILED and will_retry(node, result):
            _add(self._retries, executor_kind(node))

    def refused(self, reason: RefusalReason) -> None:
        _add(self._dispatch_errors, reason.value)

    def ended(self, record: ExecutionRecord) -> None:
        key = (record.name, str(record.status))
        _add(self._finished, key)
        series = self._execution_series.get(key)
        if series is None:
            series = self._execution_series[key] = self.execution_duration.series(*key)
        elapsed = (record.finished_at or record.created_at) - record.created_at
        self.execution_duration.observe(series, max(elapsed, 0.0))

    # --- store --------------------------------------------------------------------------------

    def committed(self, seconds: float, rows: int) -> None:
        """A group commit landed (a ``Store.committed`` listener)."""
        self.commit_seconds.observe(self._commit_seconds, seconds)
        self.commit_rows.observe(self._commit_rows, rows)

    # --- scrape time --------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """The dict-counted counters and the gauges read from the orchestrator now."""
        stats = self._stats()
        yield _info(self._orchestrator_id, self.version)
        for histogram in (
            self.execution_duration,
            self.node_duration,
            self.queue_wait,
            self.commit_seconds,
            self.commit_rows,
        ):
            yield histogram.family()
        yield counter(
            "weir_executions_started",
            "Executions created (by the API, a trigger or as a sub-workflow), by workflow.",
            ["workflow"],
            self._started,
        )
        yield counter(
            "weir_executions_finished",
            "Executions that ended, by workflow and status (completed, failed, cancelled).",
            ["workflow", "status"],
            self._finished,
        )
        yield counter(
            "weir_node_retries",
            "Failed node attempts that are tried again, by executor.",
            ["executor"],
            self._retries,
        )
        yield counter(
            "weir_dispatch_errors",
            "Placements that did not stick: engine refusals by reason (full, draining, "
            "unknown_definition, invalid, duplicate) and failovers.",
            ["reason"],
            self._dispatch_errors,
        )
        yield counter(
            "weir_orchestrator_engine_streams_lost",
            "Engine streams that broke or failed their health check, by engine.",
            ["engine"],
            self._streams_lost,
        )
        yield counter(
            "weir_trigger_fires",
            "Trigger fires, by workflow and trigger.",
            ["workflow", "trigger"],
            self._fires,
        )
        yield counter(
            "weir_trigger_skips",
            "Trigger ticks that started nothing, by workflow, trigger and reason.",
            ["workflow", "trigger", "reason"],
            self._skips,
        )
        yield counter(
            "weir_events_published", "Monitoring events, by type.", ["type"], self._events
        )
        yield _value(
            CounterMetricFamily,
            "weir_subscriber_drops",
            "Event subscribers cut off because they fell a whole buffer behind.",
            stats.subscriber_drops,
        )
        yield _value(
            CounterMetricFamily,
            "weir_stale_reports",
            "Engine reports ignored: an older lease, or an engine the execution left.",
            stats.stale_reports,
        )
        yield _value(
            GaugeMetricFamily,
            "weir_store_failed",
            "1 once the store could not commit (the orchestrator stops).",
            int(stats.store_failed),
        )
        yield _value(
            GaugeMetricFamily,
            "weir_orchestrator_healthy",
            "1 while every background loop runs; 0 once one failed (see /readyz).",
            int(stats.background.healthy),
        )
        yield counter(
            "weir_background_failures",
            "Background work that raised (loops make the orchestrator unhealthy), by kind.",
            ["task"],
            dict(stats.background.failures),
        )
        placement = stats.placement
        yield _value(
            GaugeMetricFamily,
            "weir_executions_queued",
            "Executions waiting for an engine with room.",
            placement.queued,
        )
        yield _value(
            GaugeMetricFamily,
            "weir_executions_in_flight",
            "Executions placed on an engine and not ended.",
            placement.in_flight,
        )
        yield _value(
            GaugeMetricFamily,
            "weir_executions_awaiting_reattach",
            "After a restart: executions waiting for their engine to attach them again.",
            placement.awaiting_reattach,
        )
        yield _value(
            GaugeMetricFamily,
            "weir_executions_parked",
            "Executions parked because they only wait (status waiting): no engine holds them.",
            stats.parked,
        )
        in_flight = GaugeMetricFamily(
            "weir_orchestrator_engine_in_flight",
            "Executions on each engine: placed here or reported by the engine, the larger.",
            labels=["engine"],
        )
        capacity = GaugeMetricFamily(
            "weir_orchestrator_engine_capacity",
            "Each engine's capacity, as it reported it.",
            labels=["engine"],
        )
        ready = GaugeMetricFamily(
            "weir_orchestrator_engine_ready",
            "1 when the engine takes new work (stream up, healthy, not draining).",
            labels=["engine"],
        )
        state = GaugeMetricFamily(
            "weir_orchestrator_engine_state",
            "Each engine link's state: 1 for the current one.",
            labels=["engine", "state"],
        )
        info = GaugeMetricFamily(
            "weir_orchestrator_engine_info",
            "Each engine link's engine id (ENGINE_ID) and version (always 1).",
            labels=["engine", "engine_id", "version"],
        )
        bad = CounterMetricFamily(
            "weir_orchestrator_engine_bad_messages",
            "Engine messages (or parts of one) that could not be used: logged and skipped, the "
            "stream stays up.",
            labels=["engine"],
        )
        for link in stats.engines:
            placed = stats.placed_on(link.id)
            in_flight.add_metric([link.id], max(placed, link.reported_in_flight))
            capacity.add_metric([link.id], link.capacity)
            ready.add_metric([link.id], int(link.ready))
            for value in _STATES:
                state.add_metric([link.id, value], int(link.state.value == value))
            info.add_metric([link.id, link.engine_id, link.version], 1)
            bad.add_metric([link.id], link.bad_messages)
        yield from (in_flight, capacity, ready, state, info, bad)


def _add(counts: dict[Any, int], key: Any) -> None:
    counts[key] = counts.get(key, 0) + 1


def _trigger(event: MonitorEvent) -> str:
    name = event.data.get("trigger") if event.data else None
    return name if isinstance(name, str) else ""


def counter(name: str, documentation: str, labels: list[str], counts: dict[Any, int]) -> Metric:
    """A counter family from counts kept in a dict (a key per label set; a tuple for several)."""
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in counts.copy().items():
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def _value(
    kind: type[CounterMetricFamily | GaugeMetricFamily], name: str, documentation: str, value: int
) -> Metric:
    return kind(name, documentation, value=value)


def _info(orchestrator: str, version: str) -> Metric:
    family = GaugeMetricFamily(
        "weir_orchestrator_info",
        "The orchestrator's id and weir version (always 1).",
        labels=["orchestrator", "version"],
    )
    family.add_metric([orchestrator, version], 1)
    return family
