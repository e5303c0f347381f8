"""``weir triggers list|set|delete``: cron triggers, those of definitions and those of the API.

``set`` adds or replaces an API trigger; the server validates the spec (cron, timezone, inputs,
overlap, catch_up, catch_up_window, enabled) and says which field is wrong (exit 2). A
definition's own triggers change with the definition, so ``set`` and ``delete`` refuse them.
"""

from __future__ import annotations

import json
from datetime import tzinfo
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from weir import Client
from weir.proto.v1 import orchestrator_pb2 as pb

from engine.server import codec
from engine.state.result import iso
from orchestrator.cli.remote import _client_call, _declared_inputs, output_option, server_option
from orchestrator.cli.run import _inputs
from orchestrator.cli.timeline import SHORT_ID, parse_iso, timestamp


def trigger_spec(
    cron: str,
    *,
    timezone: str | None = None,
    inputs: dict[str, Any] | None = None,
    overlap: str | None = None,
    catch_up: str | None = None,
    catch_up_window: str | None = None,
    enabled: bool = True,
) -> dict[str, Any]:
    """The spec ``PutTrigger`` takes; options not given are left to the server's defaults."""
    spec: dict[str, Any] = {"cron": cron}
    if timezone is not None:
        spec["timezone"] = timezone
    if inputs:
        spec["inputs"] = inputs
    if overlap is not None:
        spec["overlap"] = overlap
    if catch_up is not None:
        spec["catch_up"] = catch_up
    if catch_up_window is not None:
        spec["catch_up_window"] = catch_up_window
    spec["enabled"] = enabled
    return spec


def trigger_json(m: pb.Trigger) -> dict[str, Any]:
    """A trigger as ``-o json`` prints it: its spec decoded, times in ISO 8601 UTC."""
    return {
        "workflow": m.workflow,
        "name": m.name,
        "source": m.source,
        "spec": codec.from_json(m.spec_json, "spec_json") or {},
        "last_fire_at": iso(codec.seconds(m.last_fire_at)) if m.HasField("last_fire_at") else None,
        "next_fire_at": iso(codec.seconds(m.next_fire_at)) if m.HasField("next_fire_at") else None,
        "last_execution_id": m.last_execution_id or None,
    }


def trigger_row(item: dict[str, Any], tz: tzinfo | None = None) -> tuple[str, ...]:
    """A ``trigger_json`` item as the text table's cells (``COLUMNS``); times to the minute."""
    spec = item["spec"]

    def when(value: str | None) -> str:
        seconds = parse_iso(value)
        return "" if seconds is None else timestamp(seconds, tz)[:16]

    enabled = bool(spec.get("enabled", True))
    schedule = str(spec.get("cron", ""))
    if spec.get("timezone") and spec["timezone"] != "UTC":
        schedule += f" ({spec['timezone']})"
    return (
        item["workflow"],
        item["name"],
        item["source"],
        schedule,
        "yes" if enabled else "no",
        when(item["next_fire_at"]) if enabled else "",
        when(item["last_fire_at"]),
        (item["last_execution_id"] or "")[:SHORT_ID],
    )


COLUMNS = (
    "workflow",
    "name",
    "source",
    "schedule",
    "enabled",
    "next fire",
    "last fire",
    "last run",
)


@click.group()
def triggers() -> None:
    """Cron triggers: list, set (add or replace an API trigger), delete."""


@triggers.command("list")
@click.argument("workflow", required=False, default="")
@output_option
@server_option
def list_triggers(workflow: str, output_format: str, server: str | None) -> None:
    """Every workflow's triggers, or WORKFLOW's."""
    items = [trigger_json(t) for t in _client_call(server, lambda c: c.triggers(workflow))]
    if output_format == "json":
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    table = Table(*COLUMNS)
    for item in items:
        table.add_row(*trigger_row(item))
    Console().print(table)


@triggers.command("set")
@click.argument("workflow")
@click.argument("name")
@click.option("--cron", required=True, metavar="EXPR", help='Five fields or "@daily" and co.')
@click.option("--timezone", metavar="TZ", help="IANA time zone (default UTC).")
@click.option(
    "--input",
    "-i",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An input of the executions it starts. Repeatable.",
)
@click.option(
    "--overlap",
    type=click.Choice(["allow", "skip", "cancel-previous"]),
    help="What a tick does while the previous execution runs (default skip).",
)
@click.option(
    "--catch-up",
    type=click.Choice(["none", "latest", "all"]),
    help="Which ticks missed while the orchestrator was down still fire (default none).",
)
@click.option(
    "--catch-up-window", metavar="DURATION", help="How far back --catch-up looks (default 1h)."
)
@click.option("--disabled", is_flag=True, help="Save it without letting it fire.")
@output_option
@server_option
def set_trigger(
    workflow: str,
    name: str,
    cron: str,
    timezone: str | None,
    pairs: tuple[str, ...],
    overlap: str | None,
    catch_up: str | None,
    catch_up_window: str | None,
    disabled: bool,
    output_format: str,
    server: str | None,
) -> None:
    """Add or replace the API trigger NAME of WORKFLOW."""

    async def call(client: Client) -> pb.Trigger:
        declared = _declared_inputs(await client.workflow(workflow)) if pairs else {}
        spec = trigger_spec(
            cron,
            timezone=timezone,
            inputs=_inputs(declared, pairs, None),
            overlap=overlap,
            catch_up=catch_up,
            catch_up_window=catch_up_window,
            enabled=not disabled,
        )
        return await client.put_trigger(workflow, name, spec)

    item = trigger_json(_client_call(server, call))
    if output_format == "json":
        click.echo(json.dumps(item, indent=2, ensure_ascii=False))
        return
    state = "saved" if item["spec"].get("enabled", True) else "saved (disabled)"
    click.echo(f"{item['workflow']}/{item['name']}: {state}")
    next_fire = parse_iso(item["next_fire_at"])
    if next_fire is not None:
        click.echo(f"next fire: {timestamp(next_fire)}")


@triggers.command("delete")
@click.argument("workflow")
@click.argument("name")
@server_option
def delete_trigger(workflow: str, name: str, server: str | None) -> None:
    """Delete the API trigger NAME of WORKFLOW."""
    _client_call(server, lambda c: c.delete_trigger(workflow, name))
    click.echo(f"{workflow}/{name}: deleted")


__all__ = ["triggers"]
