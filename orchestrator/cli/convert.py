"""``weir convert FILE``: print the weir definition an FSL file stands for, as YAML or JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import yaml

from engine.definition import load_file
from engine.errors import DefinitionError

_FLOW_WIDTH = 72
"""Short maps and lists of scalars are written on one line (JSON length at most this)."""


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--output",
    "-o",
    "output_format",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
)
def convert(file: str, output_format: str) -> None:
    """Print the YAML (or JSON) definition that FILE, an FSL file, converts to.

    The output validates as it is, and loads to the same workflow as FILE. FILE may also be a
    YAML or JSON definition, printed in the other format. Exit 2 if FILE is invalid, listing
    every problem with its line and column.
    """
    try:
        definition = load_file(file)
    except DefinitionError as exc:
        for issue in exc.issues:
            click.echo(f"{file}: {issue}", err=True)
        sys.exit(2)
    document = dict(definition.document)
    if output_format == "json":
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        click.echo(dump_yaml(document), nl=False)


def dump_yaml(document: dict[str, Any]) -> str:
    """``document`` as block YAML, short maps and lists of scalars on one line, keys unsorted."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # lists indented under their key


def _is_short(items: list[Any]) -> bool:
    """Scalars (or lists of scalars) without line breaks that fit on one line."""
    flat = [x for v in items for x in (v if isinstance(v, list) else [v])]
    scalars = (str, int, float, bool, type(None))
    if not all(isinstance(v, scalars) and "\n" not in str(v) for v in flat):
        return False
    return len(json.dumps(items, ensure_ascii=False)) <= _FLOW_WIDTH


def _mapping(dumper: _Dumper, data: dict[Any, Any]) -> yaml.Node:
    flow = _is_short([*data.keys(), *data.values()])
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


def _sequence(dumper: _Dumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=_is_short(data))


_Dumper.add_representer(dict, _mapping)
_Dumper.add_representer(list, _sequence)
