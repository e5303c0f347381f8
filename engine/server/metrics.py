"""The engine's Prometheus collectors, in a registry the engine owns (several engines can then
live in one test process). Labels are bounded: statuses, executors, reasons; never ids.

``executor_kind`` names a node's executor as definitions spell it (``lua``, ``http``, ...); the
orchestrator's metrics label node runs with it too.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from engine.definition.model import (
    HttpTask,
    LuaTask,
    Node,
    NoopTask,
    PythonTask,
    QueueTask,
    SleepTask,
    SubWorkflowTask,
)
from engine.state.events import NodeResult, NodeStatus

_KINDS: dict[type, str] = {
    LuaTask: "lua",
    HttpTask: "http",
    PythonTask: "python",
    SubWorkflowTask: "workflow",
    QueueTask: "task",
    NoopTask: "noop",
    SleepTask: "sleep",
}
_FAILED = NodeStatus.FAILED
_RUNNING = NodeStatus.RUNNING
NODE_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600)
"""Node run durations, seconds: from an inline Lua call to an hour-long HTTP call or sleep."""


def executor_kind(node: Node) -> str:
    """The node's executor key: ``lua``, ``http``, ``python``, ``workflow``, ``task``, ``noop``,
    ``sleep``."""
    return _KINDS.get(type(node.executor), "other")


def will_retry(node: Node, result: NodeResult) -> bool:
    """Whether the state machine retries after this attempt (as ``node.retrying`` says)."""
    return (
        result.status is NodeStatus.FAILED
        and result.retryable
        and result.attempt < node.retry.attempts
    )


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
        self.parked = Counter(
            "weir_engine_executions_parked",
            "Executions given back to the orchestrator because they only waited (PARK_AFTER).",
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
        self.tasks = Counter(
            "weir_engine_tasks_requested",
            "Durable tasks asked of the orchestrator for task nodes (schedule_task).",
            registry=r,
        )
        self.stream_errors = Counter(
            "weir_engine_stream_errors", "Malformed or failed stream messages.", registry=r
        )
        self.bad_messages = Counter(
            "weir_engine_bad_messages",
            "Parts of stream messages whose handling failed, by part; the stream stayed up.",
            ["part"],
            registry=r,
        )
        self.node_duration = Histogram(
            "weir_engine_node_duration_seconds",
            "Node attempts run here, from start to end, by executor and status.",
            ["executor", "status"],
            buckets=NODE_BUCKETS,
            registry=r,
        )
        self.node_retries = Counter(
            "weir_engine_node_retries",
            "Failed node attempts that will be tried again, by executor.",
            ["executor"],
            registry=r,
        )
        self._node_children: dict[tuple[type, NodeStatus], tuple[Any, Any]] = {}

    def node_finished(self, node: Node, result: NodeResult) -> None:
        """One attempt of ``node`` (or of one of its items) ended here (not one replayed from a
        checkpoint); a mapped node's expansion record is not an attempt."""
        if result.status is _RUNNING:
            return
        children = self._node_children.get((type(node.executor), result.status))
        if children is None:
            kind, status = executor_kind(node), str(result.status)
            children = (self.node_duration.labels(kind, status), self.nodes.labels(status))
            self._node_children[type(node.executor), result.status] = children
        children[0].observe(max(result.finished_at - result.started_at, 0.0))
        children[1].inc()
        if result.status is _FAILED and will_retry(node, result):
            self.node_retries.labels(executor_kind(node)).inc()
