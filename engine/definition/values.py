"""Execution inputs: type checks, defaults, and reading ``--input k=v`` text by declared type."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from engine.definition.checks import did_you_mean
from engine.definition.model import Definition, InputParam
from engine.errors import InputError, Issue

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def type_error(kind: str, value: Any) -> str | None:
    """Why ``value`` is not of the declared input ``kind``, or None when it is."""
    if kind == "any":
        return None
    ok = isinstance(value, _PYTHON_TYPES[kind]) and not (
        kind != "boolean" and isinstance(value, bool)
    )
    if kind == "number" and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if ok:
        return None
    return f"expected {kind}, got {_describe(value)}"


def _describe(value: Any) -> str:
    names = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        dict: "object",
        list: "array",
        type(None): "null",
    }
    shown = json.dumps(value) if isinstance(value, str | int | float | bool) else ""
    return f"{names.get(type(value), type(value).__name__)} {shown}".rstrip()


def resolve_inputs(definition: Definition, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``given`` against the declared inputs and fill defaults.

    Raises ``InputError`` listing every undeclared, missing or mistyped input at once.
    """
    issues = []
    for name in given:
        if name not in definition.inputs:
            declared = ", ".join(definition.inputs) or "none"
            issues.append(
                Issue(
                    f"inputs.{name}",
                    f"undeclared input{did_you_mean(name, definition.inputs)} "
                    f"(declared: {declared})",
                )
            )
    resolved: dict[str, Any] = {}
    for name, param in definition.inputs.items():
        if name in given:
            value = given[name]
            problem = type_error(param.type, value) if value is not None else None
            if problem:
                issues.append(Issue(f"inputs.{name}", problem))
            resolved[name] = value
        elif param.required:
            issues.append(Issue(f"inputs.{name}", f"required input missing ({param.type})"))
        else:
            resolved[name] = param.default
    if issues:
        raise InputError(issues, source=f"{definition.name}@{definition.version}")
    return resolved


def parse_input_text(param: InputParam | None, text: str) -> Any:
    """Read a command-line value: as-is for strings, JSON for everything else.

    An undeclared name is still parsed (JSON if it parses, else text) so that
    ``resolve_inputs`` can report it together with every other problem.
    """
    if param is not None and param.type == "string":
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text
