"""``TaskMetrics``: Prometheus metrics of durable tasks and workers (docs/metrics.md).

Counted from the ``TaskBoard``'s signals (scheduled, started, ended, refused answers) on the
event loop; queue depths and workers are read from a snapshot at scrape time. Registered in the
orchestrator's own registry by the wiring, so ``/metrics`` serves them with the rest.

Labels are bounded: at most ``MAX_QUEUES`` queue names and ``MAX_WORKERS`` worker ids are
labelled by name, the rest are summed under ``other`` (queue names come from definitions and
worker ids from workers: neither is under the operator's control).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric

from orchestrator.metrics import QUEUE_BUCKETS, Histogram, counter
from orchestrator.store import TaskRow
from orchestrator.tasks.board import QueueStats
from orchestrator.tasks.workers import WorkerSnapshot

MAX_QUEUES = 200
MAX_WORKERS = 100


@dataclass(frozen=True, slots=True)
class TaskStats:
    queues: list[QueueStats]
    workers: list[WorkerSnapshot]


class TaskMetrics:
    """See the module docstring."""

    def __init__(self, stats: Callable[[], TaskStats]) -> None:
        self._stats = stats
        self._queues: set[str] = set()
        self._scheduled: dict[str, int] = {}
        self._ended: dict[tuple[str, str], int] = {}
        self._refused: dict[str, int] = {}
        self.schedule_to_start = Histogram(
            "weir_task_schedule_to_start_seconds",
            "From a task becoming available to a worker taking it, by queue.",
            ["queue"],
            QUEUE_BUCKETS,
        )
        self._waits: dict[str, list[float]] = {}

    def _queue(self, queue: str) -> str:
        if queue in self._queues:
            return queue
        if len(self._queues) < MAX_QUEUES:
            self._queues.add(queue)
            return queue
        return "other"

    def scheduled(self, row: TaskRow) -> None:
        key = self._queue(row.queue)
        self._scheduled[key] = self._scheduled.get(key, 0) + 1

    def started(self, row: TaskRow, waited: float) -> None:
        key = self._queue(row.queue)
        series = self._waits.get(key)
        if series is None:
            series = self._waits[key] = self.schedule_to_start.series(key)
        self.schedule_to_start.observe(series, max(waited, 0.0))

    def ended(self, row: TaskRow) -> None:
        key = (self._queue(row.queue), row.status)
        self._ended[key] = self._ended.get(key, 0) + 1

    def refused(self, queue: str, what: str) -> None:
        key = self._queue(queue)
        self._refused[key] = self._refused.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield self.schedule_to_start.family()
        yield counter(
            "weir_tasks_scheduled", "Durable tasks created, by queue.", ["queue"], self._scheduled
        )
        yield counter(
            "weir_tasks_ended",
            "Durable tasks that ended, by queue and status (completed, failed, timed_out, "
            "cancelled).",
            ["queue", "status"],
            self._ended,
        )
        yield counter(
            "weir_task_answers_refused",
            "Answers for tasks that had already ended otherwise (a superseded attempt's token, "
            "a timed-out or cancelled task), by queue.",
            ["queue"],
            self._refused,
        )
        depth = GaugeMetricFamily(
            "weir_task_queue_depth", "Tasks waiting for a worker, by queue.", labels=["queue"]
        )
        running = GaugeMetricFamily(
            "weir_tasks_running", "Tasks a worker runs now, by queue.", labels=["queue"]
        )
        pending: dict[str, int] = {}
        busy: dict[str, int] = {}
        for q in stats.queues:
            key = self._queue(q.queue)
            pending[key] = pending.get(key, 0) + q.pending
            busy[key] = busy.get(key, 0) + q.running
        for key in sorted(pending):
            depth.add_metric([key], pending[key])
            running.add_metric([key], busy[key])
        yield depth
        yield running
        yield GaugeMetricFamily(
            "weir_workers_connected", "Task workers connected now.", value=len(stats.workers)
        )
        slots = GaugeMetricFamily(
            "weir_worker_slots", "Tasks a worker runs at once, by worker.", labels=["worker"]
        )
        in_flight = GaugeMetricFamily(
            "weir_worker_in_flight", "Tasks a worker runs now, by worker.", labels=["worker"]
        )
        others = [0, 0]
        for i, w in enumerate(stats.workers):
            if i < MAX_WORKERS:
                slots.add_metric([w.worker_id], w.slots)
                in_flight.add_metric([w.worker_id], w.running)
            else:
                others[0] += w.slots
                others[1] += w.running
        if len(stats.workers) > MAX_WORKERS:
            slots.add_metric(["other"], others[0])
            in_flight.add_metric(["other"], others[1])
        yield slots
        yield in_flight
