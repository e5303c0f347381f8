"""A task worker for the integration tests, run with ``weir worker`` as a real process.

Every task it starts or ends is a JSON line appended to ``$WORK_LOG`` (one file shared by the
test's workers; lines are short enough to be appended atomically), so a test can tell what ran
where, how many at once, and what was cancelled.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import weir

worker = weir.Worker(queues=["work", "hang"], slots=int(os.environ.get("SLOTS", "4")))
_running = 0


def _log(**fields: Any) -> None:
    line = json.dumps({"at": time.time(), "pid": os.getpid(), **fields}) + "\n"
    with open(os.environ["WORK_LOG"], "a") as out:
        out.write(line)


@worker.task("work")
async def work(n: int, ctx: weir.TaskContext, delay: float = 0.0) -> dict[str, Any]:
    global _running
    _running += 1
    _log(event="start", key=ctx.idempotency_key, token=ctx.token, running=_running, n=n)
    try:
        if delay:
            await asyncio.sleep(delay)
    finally:
        _running -= 1
    _log(event="done", key=ctx.idempotency_key, token=ctx.token, n=n)
    return {"n": n * 2}


@worker.task("hang")
async def hang(ctx: weir.TaskContext) -> dict[str, Any]:
    _log(event="start", key=ctx.idempotency_key, token=ctx.token)
    try:
        await asyncio.Event().wait()  # until cancelled, the asyncio way
    except asyncio.CancelledError:
        _log(event="cancelled", key=ctx.idempotency_key, token=ctx.token, reason=ctx.cancel_reason)
        raise
    return {}
