"""weir's Python SDK: task workers for the ``task`` nodes of weir workflows, and ``Client`` for
the orchestrator's API (start, get, wait, signals, events, tasks).

It depends only on grpcio and protobuf. A worker connects to the orchestrator (``WEIR_SERVER``),
takes the tasks of its queues and runs one handler per queue::

    import weir

    worker = weir.Worker()

    @worker.task("send_email")
    def send_email(to: str, ctx: weir.TaskContext) -> dict[str, bool]:
        ctx.heartbeat({"step": "sending"})
        return {"sent": True}

    if __name__ == "__main__":
        worker.run()

or, without the last two lines, ``weir worker my_worker.py``.
"""

from __future__ import annotations

from weir._context import TaskContext
from weir._errors import ApiError, NonRetryableError, RPCError, WeirError, WorkerError
from weir._version import __version__
from weir._worker import Worker, WorkerStats
from weir.client import Client

__all__ = [
    "ApiError",
    "Client",
    "NonRetryableError",
    "RPCError",
    "TaskContext",
    "WeirError",
    "Worker",
    "WorkerError",
    "WorkerStats",
    "__version__",
]
