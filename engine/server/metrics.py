"""The engine's Prometheus collectors, in a registry the engine owns (several engines can then
live in one test process). Labels are bounded: statuses, executors, reasons; never ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class EngineMetrics:
    def __init__(self, engine_id: str, capacity: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.info = Gauge("weir_engine_info", "Engine identity.", ["engine"], registry=r)
        self.info.labels(engine_id).set(1)
        self.capacity = Gauge("weir_engine_capacity", "Executions run at once.", registry=r)
        self.capacity.set(capacity)
        self.in_flight = Gauge("weir_engine_in_flight", "Executions running now.", registry=r)
        self.draining = Gauge("weir_engine_draining", "1 once the engine drains.", registry=r)
        self.streams = Gauge("weir_engine_streams", "Connected orchestrator streams.", registry=r)
        self.executions = Counter(
            "weir_engine_executions",
            "Executions that ended here, by status.",
            ["status"],
            registry=r,
        )
        self.handed_back = Counter(
            "weir_engine_executions_handed_back",
            "Executions given back while draining.",
            registry=r,
        )
        self.rejected = Counter(
            "weir_engine_executions_rejected",
            "Execute requests refused, by reason.",
            ["reason"],
            registry=r,
        )
        self.nodes = Counter(
            "weir_engine_node_results",
            "Node attempts that ended, by status.",
            ["status"],
            registry=r,
        )
        self.duration = Histogram(
            "weir_engine_execution_duration_seconds",
            "Time from start (or resume) to end of executions run here.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600),
            registry=r,
        )
        self.messages = Counter(
            "weir_engine_stream_messages",
            "Stream messages, by direction.",
            ["direction"],
            registry=r,
        )
        self.detached = Gauge(
            "weir_engine_detached_executions",
            "Executions of closed streams held for an orchestrator to attach (running or ended).",
            registry=r,
        )
        self.unacknowledged = Gauge(
            "weir_engine_unacknowledged_executions",
            "Finished executions whose result the orchestrator has not acknowledged yet.",
            registry=r,
        )
        self.attached = Counter(
            "weir_engine_executions_attached",
            "Held executions an orchestrator attached to a new stream.",
            registry=r,
        )
        self.expired = Counter(
            "weir_engine_detached_expired",
            "Held executions cancelled or forgotten because nobody attached them in time.",
            registry=r,
        )
        self.acked = Counter(
            "weir_engine_records_acked",
            "Node results and final results the orchestrator acknowledged.",
            registry=r,
        )
        self.resent = Counter(
            "weir_engine_records_resent",
            "Unacknowledged node results and final results sent again after an attach.",
            registry=r,
        )
        self.children = Counter(
            "weir_engine_children_requested",
            "Sub-workflow children asked of the orchestrator (start_child).",
            registry=r,
        )
        self.stream_errors = Counter(
            "weir_engine_stream_errors", "Malformed or failed stream messages.", registry=r
        )
