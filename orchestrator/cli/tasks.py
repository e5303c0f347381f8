"""``weir tasks list|complete|fail`` and ``weir workers``: durable tasks by token, and the
connected task workers.

Tasks of every kind are listed: work for a worker (its queue), an asynchronous HTTP action
waiting for its callback (``callback``), a ``wait`` node's wait for a signal (``signal:NAME``)
and a durable timer (``timer``), each with the time it is due (times out, or fires).

``complete`` and ``fail`` do what a worker does, for a person or a script (seed 001's TaskDone):
the same answer twice is accepted once; an answer for a task that already ended otherwise is
refused (exit 1, the server says why).
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from weir.proto.v1 import engine_pb2 as epb
from weir.proto.v1 import worker_pb2 as wpb

from engine.server import codec
from engine.state.result import iso
from orchestrator.cli.remote import _client_call, output_option, server_option
from orchestrator.cli.timeline import SHORT_ID, timestamp

STATUSES = ("pending", "running", "completed", "failed", "timed_out", "cancelled")
"""The store's TASK_STATUSES, spelled again: importing the store would cost the CLI ~0.9 s."""
STATUS_TO_PB = {name: wpb.TaskStatus.Value(f"TASK_STATUS_{name.upper()}") for name in STATUSES}


def kind_name(t: wpb.TaskInfo) -> str:
    """``worker``, ``callback``, ``signal`` or ``timer``."""
    return epb.TaskKind.Name(t.kind).removeprefix("TASK_KIND_").lower()


def waits_on(t: wpb.TaskInfo) -> str:
    """What the QUEUE column shows: a worker task's queue, ``signal:NAME`` for a signal wait,
    ``callback`` for an asynchronous HTTP action, ``timer`` for a durable timer."""
    kind = kind_name(t)
    if kind == "worker":
        return t.queue
    if kind == "signal":
        return f"signal:{t.queue}"
    return kind


def task_json(t: wpb.TaskInfo) -> dict[str, Any]:
    """A task as ``--output json`` prints it (the REST API's shape)."""
    return {
        "token": t.token,
        "execution": t.execution_id,
        "workflow": t.workflow,
        "node": t.node,
        "visit": t.visit,
        "item": t.item if t.HasField("item") else None,
        "attempt": t.attempt,
        "kind": kind_name(t),
        "queue": t.queue,
        "args": codec.from_json(t.args_json, "args"),
        "status": wpb.TaskStatus.Name(t.status).removeprefix("TASK_STATUS_").lower(),
        "worker": t.worker or None,
        "deliveries": t.deliveries,
        "idempotency_key": t.idempotency_key,
        "output": codec.from_json(t.output_json, "output"),
        "outcome": t.outcome or None,
        "error": t.error or None,
        "details": codec.from_json(t.details_json, "details"),
        "due_at": iso(t.due_at or None),
        "created_at": iso(t.created_at or None),
        "started_at": iso(t.started_at or None),
        "finished_at": iso(t.finished_at or None),
    }


@click.group()
def tasks() -> None:
    """Durable tasks (work for workers, callbacks, signal waits, timers): list, complete, fail
    (by token)."""


@tasks.command("list")
@click.option("--queue", "-q", default="", help="Only this queue's tasks (or this signal's waits).")
@click.option("--status", type=click.Choice(STATUSES), help="Only tasks in this status.")
@click.option("--execution", default="", metavar="ID", help="Only this execution's tasks.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@output_option
@server_option
def list_tasks(
    queue: str,
    status: str | None,
    execution: str,
    limit: int,
    output_format: str,
    server: str | None,
) -> None:
    """Tasks, newest first, with their tokens."""
    found = _client_call(
        server,
        lambda c: c.tasks(
            queue=queue,
            status=STATUS_TO_PB[status] if status else wpb.TASK_STATUS_UNSPECIFIED,
            execution_id=execution,
            limit=limit,
        ),
    )
    items = [task_json(t) for t in found]
    if output_format == "json":
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    table = Table()
    table.add_column("TOKEN", no_wrap=True, min_width=len(found[0].token) if found else None)
    for name in ("QUEUE", "STATUS", "EXECUTION", "NODE", "ATTEMPT", "WORKER", "CREATED", "DUE"):
        table.add_column(name)
    for t, item in zip(found, items, strict=True):
        table.add_row(
            t.token,
            waits_on(t),
            item["status"],
            t.execution_id[:SHORT_ID],
            t.node if item["item"] is None else f"{t.node}[{item['item']}]",
            str(t.attempt),
            t.worker or "-",
            _when(t.created_at),
            _when(t.due_at) if t.due_at else "-",
        )
    Console().print(table)


def _when(at: float) -> str:
    """A local time to the second: a list's times need no milliseconds."""
    return timestamp(at)[:19]


@tasks.command("complete")
@click.argument("token")
@click.option(
    "--output-json", "output", default="null", metavar="JSON", help="The node's output (JSON)."
)
@click.option(
    "--outcome",
    default="",
    metavar="OUTCOME",
    help="Routes the node's next (default: the output's \"outcome\" key, or SUCCESS).",
)
@output_option
@server_option
def complete(token: str, output: str, outcome: str, output_format: str, server: str | None) -> None:
    """Complete the task TOKEN; --outcome (or an "outcome" key in the output) routes next."""
    try:
        json.loads(output)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--output-json") from None
    done = _client_call(server, lambda c: c.complete_task(token, output.encode(), outcome=outcome))
    _answered(done, output_format)


@tasks.command("fail")
@click.argument("token")
@click.option("--message", "-m", required=True, help="Why: the node attempt's error.")
@click.option(
    "--no-retry", is_flag=True, help="Fail the node at once instead of letting retry decide."
)
@output_option
@server_option
def fail(token: str, message: str, no_retry: bool, output_format: str, server: str | None) -> None:
    """Fail the task TOKEN."""
    done = _client_call(server, lambda c: c.fail_task(token, message, retryable=not no_retry))
    _answered(done, output_format)


def _answered(task: wpb.TaskInfo, output_format: str) -> None:
    item = task_json(task)
    if output_format == "json":
        click.echo(json.dumps(item, indent=2, ensure_ascii=False))
        return
    click.echo(f"task {task.node} of {task.execution_id}: {item['status']}")


@click.command()
@output_option
@server_option
def workers(output_format: str, server: str | None) -> None:
    """The task workers connected to the orchestrator."""
    found = _client_call(server, lambda c: c.workers())
    items = [
        {
            "worker_id": w.worker_id,
            "queues": list(w.queues),
            "slots": w.slots,
            "running": w.running,
            "peer": w.peer,
            "sdk_version": w.sdk_version,
            "connected_at": iso(w.connected_at or None),
            "draining": w.draining,
        }
        for w in found
    ]
    if output_format == "json":
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    table = Table("WORKER", "QUEUES", "RUNNING/SLOTS", "PEER", "SDK", "CONNECTED")
    for w in found:
        table.add_row(
            w.worker_id + (" (draining)" if w.draining else ""),
            ",".join(w.queues),
            f"{w.running}/{w.slots}",
            w.peer,
            w.sdk_version,
            timestamp(w.connected_at),
        )
    Console().print(table)


__all__ = ["tasks", "workers"]
