"""Executors that wait on the orchestrator: asynchronous HTTP requests answered by a callback,
``wait`` for a signal, and durable ``sleep``.

Each becomes a durable task on the orchestrator (``TaskScheduler``), keyed by its node attempt,
so that the wait survives restarts of every process and lets the engine forget an execution
that only waits (parking). ``weir run`` has no orchestrator: a callback or a signal fails there
with a message saying so, and ``sleep`` sleeps in the process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from engine.definition.model import Definition, HttpTask, Node, WaitTask
from engine.errors import HttpTaskError, TaskError
from engine.executors import http as http_executor
from engine.executors.ports import CallbackTicket, ExecutionContext, NodeAttempt, TaskScheduler

DURABLE_SLEEP = 1.0
"""A ``sleep`` this long or longer is a durable timer on the orchestrator when there is one
(it survives restarts and lets the execution park); a shorter one sleeps in the engine."""
TOKEN_HEADER = "Weir-Task-Token"
CALLBACK_HEADER = "Weir-Callback-Url"


def orchestrated(definition: Definition) -> list[str]:
    """The nodes that can only run with an orchestrator: callbacks and signal waits (``weir
    run`` refuses such a definition up front rather than failing each attempt)."""
    return [
        node.id
        for node in definition.nodes
        if isinstance(node.executor, WaitTask)
        or (isinstance(node.executor, HttpTask) and node.executor.callback is not None)
    ]


def _no_orchestrator(what: str) -> TaskError:
    return TaskError(f"{what} needs an orchestrator (weir run has none)", retryable=False)


async def call_back(
    tasks: TaskScheduler | None,
    client: httpx.AsyncClient,
    node: Node,
    task: HttpTask,
    request: tuple[str, dict[str, Any], Any, Any],
    ctx: ExecutionContext,
    where: NodeAttempt,
) -> Any:
    """Send ``request`` (rendered url, headers, json body, text body) carrying a task token and
    wait for the service's callback; the callback's answer is the node's."""
    assert task.callback is not None
    if tasks is None:
        raise _no_orchestrator(f"http.callback to {request[0]}")
    url, headers, json_body, text = request
    callback = task.callback
    if not isinstance(headers, dict):
        raise HttpTaskError("headers must render to a mapping", retryable=False)
    if json_body is None and text is None:
        json_body = {}
    if json_body is not None and not isinstance(json_body, dict):
        raise HttpTaskError(
            f"http.json must render to an object with callback, got {type(json_body).__name__}",
            retryable=False,
        )

    async def send(ticket: CallbackTicket) -> None:
        sent_headers = dict(headers)
        sent_headers[TOKEN_HEADER] = ticket.token
        sent_headers[CALLBACK_HEADER] = ticket.callback_url
        body: dict[str, Any] | None = None
        if json_body is not None:
            if callback.protocol == "fsl":
                body = {
                    "flowId": ctx.id,
                    "stepName": node.id,
                    "ackStates": list(callback.ack_states),
                    "uuid": ticket.token,
                }
                body.update((k, v) for k, v in json_body.items() if k not in body)
            else:
                body = {
                    **json_body,
                    "weir_task_token": ticket.token,
                    "weir_callback_url": ticket.callback_url,
                }
        await http_executor.request(
            client,
            method=task.method,
            url=url,
            headers=sent_headers,
            json_body=body,
            body=text,
            has_json=body is not None,
            deadline=None,
        )

    return await tasks.run_callback(task.timeout, send, ctx, where)


async def wait_signal(
    tasks: TaskScheduler | None, task: WaitTask, ctx: ExecutionContext, where: NodeAttempt
) -> Any:
    if tasks is None:
        raise _no_orchestrator(f"wait for signal '{task.signal}'")
    return await tasks.wait_signal(task, ctx, where)


async def sleep(
    tasks: TaskScheduler | None,
    seconds: float,
    output: Any,
    ctx: ExecutionContext,
    where: NodeAttempt,
) -> Any:
    if tasks is None or seconds < DURABLE_SLEEP:
        await asyncio.sleep(seconds)
        return output
    return await tasks.sleep(seconds, output, ctx, where)
