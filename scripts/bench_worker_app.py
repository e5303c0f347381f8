"""The function ``scripts/bench workers`` runs both ways: as a task on an SDK worker (queue
``bench``, ``weir worker scripts/bench_worker_app.py``) and as a ``python:`` node inside the
engine (``bench_worker_app:double``), so the two differ only in the path, not in the work."""

from __future__ import annotations

import weir

worker = weir.Worker(queues=["bench"])


def double(x: float) -> dict[str, float]:
    return {"x": x * 2}


@worker.task("bench")
async def bench(x: float) -> dict[str, float]:
    return double(x)
