"""A completed attempt's outcome, which routes ``next``."""

from __future__ import annotations

from typing import Any

from engine.definition.model import SUCCESS, HttpTask, Node
from engine.errors import HttpTaskError
from engine.executors import http as http_executor


def outcome_of(node: Node, output: Any) -> str:
    """``http.outcome``'s field of the response for an ``http`` node that names one (a missing
    field fails the node, not retried); else the output's ``outcome`` when it is a non-empty
    string; else ``SUCCESS``. (An answer with an explicit outcome -- a callback's, a signal's --
    does not come here: ``Routed``.)"""
    task = node.executor
    if isinstance(task, HttpTask) and task.outcome:
        try:
            value = http_executor.field(output, task.outcome)
        except KeyError as exc:
            raise HttpTaskError(
                f"response has no field '{task.outcome}' for the outcome (missing '{exc.args[0]}')",
                retryable=False,
            ) from None
        return str(value)
    if isinstance(output, dict):
        value = output.get("outcome")
        if isinstance(value, str) and value:
            return value
    return SUCCESS
