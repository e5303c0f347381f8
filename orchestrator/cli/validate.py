"""``weir validate FILE...`` and ``weir schema``."""

from __future__ import annotations

import json
import sys

import click

from engine.definition import load_file
from engine.definition.schema import json_schema
from engine.errors import DefinitionError


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check workflow definitions; list every problem with its path. Exit 2 if any is invalid."""
    invalid = 0
    for path in files:
        try:
            definition = load_file(path)
        except DefinitionError as exc:
            invalid += 1
            for issue in exc.issues:
                click.echo(f"{path}: {issue}", err=True)
            continue
        click.echo(
            f"{path}: ok ({definition.name} {definition.version}, {len(definition.nodes)} nodes)"
        )
    if invalid:
        click.echo(f"{invalid} of {len(files)} file(s) invalid", err=True)
        sys.exit(2)


@click.command()
def schema() -> None:
    """Print the JSON Schema of the definition format (for editors)."""
    click.echo(json.dumps(json_schema(), indent=2))
