"""Commands that talk to a running orchestrator: apply, start, retry, get, list, cancel,
engines.

The server address comes from ``--server`` or ``WEIR_SERVER`` (default ``127.0.0.1:50051``).
``start --wait`` (and ``retry --wait``) shows progress like ``weir run`` and exits like it: 0
completed, 1 failed or cancelled; 2 for invalid input or a refusal (the server's message says
which field, id or state), 3 when the orchestrator cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from weir import Client
from weir.proto.v1 import orchestrator_pb2 as pb

from engine.definition.parser import loads
from engine.server import codec
from engine.state.events import Event
from orchestrator.api.convert import execution_from_pb
from orchestrator.cli.run import _inputs, _Progress, _summary
from orchestrator.settings import ClientSettings

T = TypeVar("T")

server_option = click.option(
    "--server",
    "-s",
    metavar="HOST:PORT",
    help="The orchestrator's gRPC address (default: WEIR_SERVER or 127.0.0.1:50051).",
)
output_option = click.option(
    "--output",
    "-o",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)


def _client_call(server: str | None, call: Callable[[Client], Awaitable[T]]) -> T:
    settings = ClientSettings.from_env(weir_server=server)

    async def run() -> T:
        async with Client(
            settings.weir_server, timeout=settings.weir_timeout, token=settings.weir_token
        ) as client:
            return await call(client)

    return asyncio.run(run())


@click.command()
@click.option(
    "--file",
    "-f",
    "files",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="A definition file (YAML, JSON or FSL) or a directory of them. Repeatable.",
)
@server_option
def apply(files: tuple[str, ...], server: str | None) -> None:
    """Register workflow definitions with the orchestrator."""
    paths: list[Path] = []
    for name in files:
        path = Path(name)
        if path.is_dir():
            paths.extend(
                sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json", ".fsl"))
            )
        else:
            paths.append(path)

    async def call(client: Client) -> None:
        for path in paths:
            response = await client.register(path.read_text(encoding="utf-8"))
            wf = response.workflow
            state = "registered" if response.created else "unchanged"
            click.echo(f"{wf.name} {wf.version} {state} ({path})")

    _client_call(server, call)


@click.command()
@click.argument("workflow")
@click.option("--version", "version", default="", help="Exact version (default: the latest).")
@click.option("--input", "-i", "pairs", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option("--inputs-json", metavar="JSON", help="All inputs as one JSON object.")
@click.option("--routing-key", default="", help="Place by this key instead of the execution id.")
@click.option(
    "--idempotency-key",
    default="",
    help="Starting again with the same key returns the first execution instead of a new one.",
)
@click.option("--wait", "-w", is_flag=True, help="Show progress and wait for the result.")
@output_option
@server_option
def start(
    workflow: str,
    version: str,
    pairs: tuple[str, ...],
    inputs_json: str | None,
    routing_key: str,
    idempotency_key: str,
    wait: bool,
    output_format: str,
    server: str | None,
) -> None:
    """Start an execution of WORKFLOW; print its id, or its result with --wait."""

    async def call(client: Client) -> dict[str, Any]:
        wf = await client.workflow(workflow, version)
        declared = _declared_inputs(wf)
        inputs = _inputs(declared, pairs, inputs_json)
        started = await client.start(
            workflow,
            inputs,
            version=version,
            routing_key=routing_key,
            idempotency_key=idempotency_key,
        )
        if not wait:
            return execution_from_pb(started)
        return await _follow(client, started, wf)

    _print_started(_client_call(server, call), wait, output_format)


@click.command()
@click.argument("execution_id")
@click.option(
    "--from",
    "from_node",
    default="",
    metavar="NODE",
    help="Run NODE and everything after it again too (needed for a completed execution).",
)
@click.option("--wait", "-w", is_flag=True, help="Show progress and wait for the result.")
@output_option
@server_option
def retry(
    execution_id: str, from_node: str, wait: bool, output_format: str, server: str | None
) -> None:
    """Retry an ended execution: a new execution with the same version and inputs that reuses
    the results of the nodes that finished and runs the rest. Print its id, or its result with
    --wait."""

    async def call(client: Client) -> dict[str, Any]:
        started = await client.retry(execution_id, from_node=from_node)
        if not wait:
            return execution_from_pb(started)
        wf = await client.workflow(started.workflow, started.version)
        return await _follow(client, started, wf)

    _print_started(_client_call(server, call), wait, output_format)


async def _follow(client: Client, started: pb.Execution, wf: pb.Workflow) -> dict[str, Any]:
    """Show the execution's progress on stderr until it ends; return its result."""
    err = Console(stderr=True, soft_wrap=True)
    progress = _Progress(f"{wf.name} {wf.version}", list(wf.nodes), err)
    progress.execution = started.id
    with progress:
        async for event in client.events(execution_id=started.id):
            progress.on_event(_event(event))
    return execution_from_pb(await client.execution(started.id))


def _print_started(result: dict[str, Any], waited: bool, output_format: str) -> None:
    """The new execution's id (or its JSON); with ``waited`` its result, exiting 1 unless it
    completed."""
    if not waited:
        if output_format == "json":
            click.echo(json.dumps(result, indent=2))
        else:
            click.echo(result["id"])
        return
    _print_result(result, output_format)
    sys.exit(0 if result["status"] == "completed" else 1)


def _declared_inputs(wf: pb.Workflow) -> dict[str, Any]:
    """The declared input types, for turning KEY=VALUE text into typed values."""
    try:
        return dict(loads(wf.source).inputs)
    except Exception:  # the server validated it; parse errors here only lose typing help
        return {}


def _event(m: pb.Event) -> Event:
    return Event(
        m.type,
        m.execution_id,
        codec.seconds(m.at),
        node=m.node if m.HasField("node") else None,
        visit=m.visit,
        attempt=m.attempt,
        data=codec.from_json(m.data_json) or ({"reason": m.message} if m.message else None),
    )


def _print_result(result: dict[str, Any], output_format: str) -> None:
    if output_format == "json":
        public = {k: v for k, v in result.items() if k not in ("engine", "placements")}
        click.echo(json.dumps(public, indent=2))
    else:
        _summary(result, Console())
        if result.get("engine"):
            click.echo(f"engine: {result['engine']} (placements: {result['placements']})")


@click.group()
def get() -> None:
    """Show one object."""


@get.command("execution")
@click.argument("execution_id")
@output_option
@server_option
def get_execution(execution_id: str, output_format: str, server: str | None) -> None:
    """Show an execution and its nodes (its result once finished)."""
    m = _client_call(server, lambda c: c.execution(execution_id))
    result = execution_from_pb(m)
    if output_format == "json":
        _print_result(result, "json")
        return
    console = Console()
    _summary(result, console)
    parent = result.get("parent")
    if parent:
        console.print(f"parent: {parent['execution']} (node {parent['node']})")
    if result.get("wake_at"):
        console.print(f"waiting: a timer wakes it at {result['wake_at']}")
    for key, label in (("retry_of", "retry of"), ("retried_by", "retried by")):
        if result.get(key):
            console.print(f"{label}: {result[key]}")
    for child in result.get("children") or ():
        console.print(
            f"child: {child['id']} {child['workflow']} {child['version']} "
            f"{child['status']} (node {child['node']})"
        )
    table = Table("node", "status", "outcome", "attempts", "visits", "error")
    for node_id, node in result["nodes"].items():
        reused = f" (reused from {node['reused_from']})" if node.get("reused_from") else ""
        table.add_row(
            node_id,
            node["status"] + reused,
            node["outcome"] or "",
            str(node["attempts"]),
            str(node["visits"]),
            (node["error"] or "")[:60],
        )
    console.print(table)


@get.command("workflow")
@click.argument("name")
@click.option("--version", default="", help="Exact version (default: the latest).")
@server_option
def get_workflow(name: str, version: str, server: str | None) -> None:
    """Print a registered workflow's definition as submitted."""
    wf = _client_call(server, lambda c: c.workflow(name, version))
    click.echo(wf.source, nl=not wf.source.endswith("\n"))


@click.group("list")
def list_() -> None:
    """List workflows or executions."""


@list_.command("workflows")
@output_option
@server_option
def list_workflows(output_format: str, server: str | None) -> None:
    """Registered workflows and their versions."""
    workflows = _client_call(server, lambda c: c.workflows())
    if output_format == "json":
        click.echo(
            json.dumps(
                [
                    {"name": w.name, "latest": w.latest_version, "versions": list(w.versions)}
                    for w in workflows
                ],
                indent=2,
            )
        )
        return
    table = Table("name", "latest", "versions", "description")
    for w in workflows:
        table.add_row(w.name, w.latest_version, ", ".join(w.versions), w.description[:50])
    Console().print(table)


@list_.command("executions")
@click.option("--workflow", default="", help="Only this workflow's executions.")
@click.option(
    "--status",
    type=click.Choice(["pending", "running", "waiting", "completed", "failed", "cancelled"]),
    help="Only executions in this status (waiting: parked until a task, signal or timer).",
)
@click.option("--parent", default="", metavar="ID", help="Only the children of this execution.")
@click.option("--limit", default=50, show_default=True)
@output_option
@server_option
def list_executions(
    workflow: str,
    status: str | None,
    parent: str,
    limit: int,
    output_format: str,
    server: str | None,
) -> None:
    """Executions, newest first."""
    code = codec.EXECUTION_STATUS_TO_PB[status] if status else 0
    rows = _client_call(
        server, lambda c: c.executions(workflow=workflow, status=code, limit=limit, parent=parent)
    )
    items = [
        {
            "id": r.id,
            "workflow": r.workflow,
            "version": r.version,
            "status": str(codec.EXECUTION_STATUS_FROM_PB[r.status]),
            "engine": r.engine_id or None,
            "parent": r.parent_execution_id or None,
            "retry_of": r.retry_of or None,
            "retried_by": r.retried_by or None,
        }
        for r in rows
    ]
    if output_format == "json":
        click.echo(json.dumps(items, indent=2))
        return
    columns: tuple[str, ...] = ("id", "workflow", "version", "status", "engine", "parent")
    for link in ("retry_of", "retried_by"):  # only when a listed execution has one
        if any(item[link] for item in items):
            columns += (link,)
    table = Table(*columns)
    for item in items:
        table.add_row(*(str(item[k] or "") for k in columns))
    Console().print(table)


@click.command()
@click.argument("execution_id")
@click.option("--reason", default="", help="Recorded as the execution's error message.")
@server_option
def cancel(execution_id: str, reason: str, server: str | None) -> None:
    """Cancel a running or queued execution."""
    m = _client_call(server, lambda c: c.cancel(execution_id, reason))
    click.echo(f"{m.id}: cancel requested")


@click.command()
@output_option
@server_option
def engines(output_format: str, server: str | None) -> None:
    """Engines the orchestrator knows: id, address, health and load."""
    rows = _client_call(server, lambda c: c.engines())
    items: list[dict[str, Any]] = [
        {
            "id": e.id,
            "address": e.address,
            "state": pb.EngineInfo.State.Name(e.state).removeprefix("STATE_").lower(),
            "healthy": e.healthy,
            "in_flight": e.in_flight,
            "capacity": e.capacity,
            "version": e.version,
        }
        for e in rows
    ]
    if output_format == "json":
        click.echo(json.dumps(items, indent=2))
        return
    table = Table("id", "address", "state", "healthy", "in flight", "version")
    for i in items:
        table.add_row(
            i["id"],
            i["address"],
            i["state"],
            "yes" if i["healthy"] else "no",
            f"{i['in_flight']}/{i['capacity']}",
            i["version"],
        )
    Console().print(table)


__all__ = ["apply", "cancel", "engines", "get", "list_", "retry", "start"]
