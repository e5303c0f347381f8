"""Version management against a running orchestrator: list, deprecate, delete, diff.

``weir diff NAME V1 V2`` shows which nodes were added, removed or changed between two registered
versions and whether a running execution of V1 could continue on V2, and why not. It exits 0
when it could and 1 when it could not, so scripts can gate a migration on it.
"""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table
from weir.proto.v1 import orchestrator_pb2 as pb

from engine.definition.diff import DefinitionDiff, NodeChange, format_diff
from orchestrator.cli.remote import _client_call, list_, output_option, server_option


@list_.command("versions")
@click.argument("name")
@output_option
@server_option
def list_versions(name: str, output_format: str, server: str | None) -> None:
    """Every version of workflow NAME, ascending, with who uses it."""
    versions = _client_call(server, lambda c: c.versions(name))
    items = [
        {
            "version": v.version,
            "deprecated": v.deprecated,
            "digest": v.digest[:12],
            "uses": list(v.uses),
            "used_by": list(v.used_by),
        }
        for v in versions
    ]
    if output_format == "json":
        click.echo(json.dumps(items, indent=2))
        return
    table = Table("version", "deprecated", "digest", "uses", "used by")
    for item in items:
        table.add_row(
            str(item["version"]),
            "yes" if item["deprecated"] else "",
            str(item["digest"]),
            ", ".join(item["uses"]),  # type: ignore[arg-type]
            ", ".join(item["used_by"]),  # type: ignore[arg-type]
        )
    Console().print(table)


@click.command()
@click.argument("name")
@click.argument("version")
@click.option("--undo", is_flag=True, help="Make the version startable again.")
@server_option
def deprecate(name: str, version: str, undo: bool, server: str | None) -> None:
    """Stop new starts of NAME VERSION (running executions go on)."""
    wf = _client_call(server, lambda c: c.deprecate(name, version, not undo))
    click.echo(f"{wf.name} {wf.version}: {'deprecated' if wf.deprecated else 'startable'}")


@click.command()
@click.argument("name")
@click.argument("version")
@server_option
def delete(name: str, version: str, server: str | None) -> None:
    """Delete NAME VERSION; refused while a running execution or a dependent uses it."""
    _client_call(server, lambda c: c.delete(name, version))
    click.echo(f"{name} {version}: deleted")


@click.command()
@click.argument("name")
@click.argument("old")
@click.argument("new")
@output_option
@server_option
def diff(name: str, old: str, new: str, output_format: str, server: str | None) -> None:
    """Compare versions OLD and NEW of NAME; exit 1 if a running OLD could not continue on NEW."""
    m = _client_call(server, lambda c: c.diff(name, old, new))
    d = diff_from_pb(m)
    if output_format == "json":
        click.echo(
            json.dumps(
                {
                    "name": name,
                    "from": old,
                    "to": new,
                    "added": list(d.added),
                    "removed": list(d.removed),
                    "changed": [{"node": c.node, "fields": list(c.fields)} for c in d.changed],
                    "other": list(d.other),
                    "can_continue": d.can_continue,
                    "reasons": list(d.reasons),
                    "notes": list(d.notes),
                },
                indent=2,
            )
        )
    else:
        click.echo(f"{name} {old} -> {new}")
        click.echo(format_diff(d, old, new))
    sys.exit(0 if d.can_continue else 1)


def diff_from_pb(m: pb.WorkflowDiff) -> DefinitionDiff:
    return DefinitionDiff(
        added=tuple(m.added),
        removed=tuple(m.removed),
        changed=tuple(NodeChange(c.node, tuple(c.fields)) for c in m.changed),
        other=tuple(m.other),
        can_continue=m.can_continue,
        reasons=tuple(m.reasons),
        notes=tuple(m.notes),
    )
