"""Task workers for examples/arithmetic-workers.yaml (ADD, SUB, MUL, DIV, as in the code-less
orchestration seed) and examples/user-onboarding.yaml (send_email), with the weir SDK.

    weir worker examples/workers/arithmetic.py            # WEIR_SERVER: the orchestrator
    python examples/workers/arithmetic.py                 # the same, started from code

DIV raises on a zero divisor: the task fails without retry and the workflow takes its error
path. ``send_email`` only logs (it is an example): its idempotency key makes a retried visit send
once.
"""

from __future__ import annotations

import logging

import weir

log = logging.getLogger("arithmetic-worker")
worker = weir.Worker(slots=16)


@worker.task("ADD")
def add(a: float, b: float) -> dict[str, float]:
    return {"value": a + b}


@worker.task("SUB")
def sub(a: float, b: float) -> dict[str, float]:
    return {"value": a - b}


@worker.task("MUL")
def mul(a: float, b: float) -> dict[str, float]:
    return {"value": a * b}


@worker.task("DIV")
def div(a: float, b: float) -> dict[str, float]:
    if b == 0:
        raise weir.NonRetryableError(f"cannot divide {a:g} by zero")
    return {"value": a / b}


_sent: set[str] = set()


@worker.task("send_email")
async def send_email(email_address: str, ctx: weir.TaskContext) -> dict[str, object]:
    first = ctx.idempotency_key not in _sent
    _sent.add(ctx.idempotency_key)
    if first:
        log.info("sending the welcome email to %s", email_address)
    return {"sent": True, "to": email_address}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    worker.run()
