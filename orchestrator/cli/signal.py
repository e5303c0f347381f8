"""``weir signal ID NAME``: send a signal to an execution.

A ``wait: {signal: NAME}`` node waiting for it completes with the data as its output and the
outcome routing its ``next``; a signal no node waits for yet is kept and consumed when one
does. An unknown execution, a finished one or a name no ``wait`` node waits for exits 2 with
the server's message.
"""

from __future__ import annotations

import json
from typing import Any

import click
from weir.proto.v1 import orchestrator_pb2 as pb

from engine.server import codec
from engine.state.result import iso
from orchestrator.cli.remote import _client_call, output_option, server_option


def receipt_json(m: pb.SignalExecutionResponse, outcome: str) -> dict[str, Any]:
    """The answer as ``--output json`` prints it (the REST API's shape)."""
    return {
        "id": m.id,
        "execution_id": m.execution_id,
        "name": m.name,
        "outcome": outcome,
        "sent_at": iso(codec.seconds(m.sent_at)) if m.HasField("sent_at") else None,
        "node": m.node or None,
        "visit": m.visit if m.HasField("visit") else None,
        "consumed": bool(m.node),
    }


@click.command("signal")
@click.argument("execution_id")
@click.argument("name")
@click.option(
    "--outcome",
    default="",
    metavar="OUTCOME",
    help="Routes the waiting node's next (default: the data's outcome field, or SUCCESS).",
)
@click.option(
    "--data-json", "data", default=None, metavar="JSON", help="The waiting node's output (JSON)."
)
@output_option
@server_option
def signal(
    execution_id: str,
    name: str,
    outcome: str,
    data: str | None,
    output_format: str,
    server: str | None,
) -> None:
    """Send the signal NAME to the execution EXECUTION_ID."""
    value: Any = None
    if data is not None:
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--data-json") from None
    sent = _client_call(server, lambda c: c.signal(execution_id, name, outcome=outcome, data=value))
    if output_format == "json":
        click.echo(json.dumps(receipt_json(sent, outcome), indent=2, ensure_ascii=False))
        return
    if sent.node:
        visit = f" (visit {sent.visit})" if sent.HasField("visit") else ""
        where = f"consumed by node {sent.node}{visit}"
    else:
        where = "kept until a node waits for it"
    click.echo(f"signal {sent.name} sent to {sent.execution_id}: {where}")


__all__ = ["signal"]
