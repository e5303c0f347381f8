"""``weir events`` and ``weir logs``: the event log as a list, live, or one execution at a time.

``weir events`` prints the newest ``--limit`` events matching the filters (or the first ones after
``--since``), oldest first; with ``--follow`` it goes on with live events until Ctrl-C (exit 0) or
until the server ends the stream. The history and the live part join without a gap or a
duplicate: the live part resumes after the last sequence the history printed.

``weir logs ID`` prints one execution: a header, then its timeline with each node run (node,
visit, attempt) on one line with its duration, outcome, output or error. It exits like
``weir start --wait``: 0 completed (or still running without ``--follow``), 1 failed or
cancelled, 2 unknown id.

Text goes through rich (colors on a terminal only); ``-o json`` prints JSON Lines for ``events``
and one object ``{"execution": ..., "events": [...]}`` for ``logs``. The formatting functions
below are pure, so they are tested without a server.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import grpc
from rich.console import Console
from weir import Client
from weir.proto.v1 import orchestrator_pb2 as pb

from orchestrator.api.convert import execution_from_pb
from orchestrator.cli.remote import _client_call, output_option, server_option
from orchestrator.cli.timeline import (
    MAX_LIMIT,
    SEVERITIES,
    EventView,
    event_json,
    event_line,
    logs_exit_code,
    logs_json,
    logs_lines,
    severity_value,
)
from orchestrator.errors import RpcError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Query:
    """The filters of a ``WatchEvents`` call."""

    execution_id: str = ""
    workflow: str = ""
    types: tuple[str, ...] = ()
    min_severity: int = 0

    def kwargs(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "workflow": self.workflow,
            "types": list(self.types),
            "min_severity": self.min_severity,
        }


async def _read(client: Client, query: _Query, *, after: int | None, limit: int) -> list[pb.Event]:
    """One non-following read, with the client's deadline."""
    out: list[pb.Event] = []
    try:
        async with asyncio.timeout(client.timeout):
            async for batch in client.event_batches(
                follow=False, after=after, limit=limit, **query.kwargs()
            ):
                out.extend(batch.events)
    except TimeoutError:
        raise RpcError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"reading events from {client.target} took more than {client.timeout:g}s",
            target=client.target,
        ) from None
    return out


async def _read_all(client: Client, query: _Query, *, after: int = 0) -> list[pb.Event]:
    """Every event after ``after``, page by page."""
    out: list[pb.Event] = []
    while True:
        page = await _read(client, query, after=after, limit=MAX_LIMIT)
        out.extend(page)
        if len(page) < MAX_LIMIT:
            return out
        after = page[-1].sequence


def _run_until_interrupted(server: str | None, call: Callable[[Client], Awaitable[T]]) -> T:
    """``_client_call`` where Ctrl-C ends quietly (exit 0), and a reader that went away
    (``| head``) too, with exit 1 as rich and click do."""
    try:
        return _client_call(server, call)
    except KeyboardInterrupt:
        sys.exit(0)
    except BrokenPipeError:
        # Python's advice: point stdout at devnull so the interpreter's final flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _lagged(err: Console) -> Callable[[int], None]:
    def note(after: int) -> None:
        err.print(f"[dim]fell behind the live stream; reading on from the log after {after}")

    return note


def _types(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t.strip() for value in values for t in value.split(",") if t.strip())


# --- commands --------------------------------------------------------------------------------


@click.command()
@click.option("--follow", "-f", is_flag=True, help="Then print live events until Ctrl-C.")
@click.option("--execution", "execution_id", default="", metavar="ID", help="Only this execution.")
@click.option("--workflow", default="", metavar="NAME", help="Only this workflow's executions.")
@click.option(
    "--type",
    "-t",
    "types",
    multiple=True,
    metavar="T",
    help="An exact type (execution.failed) or a prefix (node. or node.*). Repeatable.",
)
@click.option("--severity", type=click.Choice(SEVERITIES), help="This severity and above only.")
@click.option(
    "--since",
    type=click.IntRange(min=0),
    metavar="SEQ",
    help="Start after this sequence number instead of with the newest events.",
)
@click.option(
    "--limit",
    "-n",
    default=50,
    show_default=True,
    type=click.IntRange(1, MAX_LIMIT),
    help="How many events to print first.",
)
@output_option
@server_option
def events(
    follow: bool,
    execution_id: str,
    workflow: str,
    types: tuple[str, ...],
    severity: str | None,
    since: int | None,
    limit: int,
    output_format: str,
    server: str | None,
) -> None:
    """The orchestrator's events, oldest first; with --follow, then live ones until Ctrl-C."""
    query = _Query(execution_id, workflow, _types(types), severity_value(severity))
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    def show(m: pb.Event) -> None:
        e = EventView.from_pb(m)
        if output_format == "json":
            click.echo(event_json(e))
        else:
            out.print(event_line(e))

    async def call(client: Client) -> None:
        after = since
        if not (follow and since is not None):
            for m in await _read(client, query, after=since, limit=limit):
                show(m)
                after = m.sequence
        if not follow:
            return
        # Nothing matched so far: read the log from its start, so that what was written
        # between the two calls is not lost.
        async for m in client.events(
            follow=True, after=after or 0, on_lagged=_lagged(err), **query.kwargs()
        ):
            show(m)

    _run_until_interrupted(server, call)


@click.command()
@click.argument("execution_id")
@click.option(
    "--follow", "-f", is_flag=True, help="Wait for the execution to end, printing as it goes."
)
@output_option
@server_option
def logs(execution_id: str, follow: bool, output_format: str, server: str | None) -> None:
    """One execution's timeline, node run by node run; exit 1 if it failed or was cancelled."""
    query = _Query(execution_id=execution_id)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    async def call(client: Client) -> tuple[dict[str, Any], list[EventView]]:
        # The events first, then the execution, so that the header is at least as new as the
        # timeline. An unknown id is NOT_FOUND (exit 2) from either call.
        if follow:
            views = []
            async for m in client.events(
                follow=True, after=0, on_lagged=_lagged(err), **query.kwargs()
            ):
                views.append(EventView.from_pb(m))
                err.print(event_line(views[-1]))  # progress; the timeline follows on stdout
        else:
            views = [EventView.from_pb(m) for m in await _read_all(client, query)]
        return execution_from_pb(await client.execution(execution_id)), views

    result, views = _run_until_interrupted(server, call)
    if output_format == "json":
        click.echo(logs_json(result, views))
    else:
        for line in logs_lines(result, views):
            out.print(line)
    sys.exit(logs_exit_code(result["status"]))


__all__ = ["events", "logs"]
