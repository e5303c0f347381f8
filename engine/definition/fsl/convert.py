"""Convert a checked FSL tree into weir's definition document (the equivalent YAML).

Each step becomes an HTTP node that calls its action asynchronously with the seed's protocol::

    - id: A
      description: action ci
      http:
        url: http://localhost:18080/ci
        method: POST
        json: {project: "https://...", version: v0.1.0, retry_count: 10}
        callback: {protocol: fsl, ack_states: [SUCCESS, FAIL]}
      next: {SUCCESS: D, FAIL: A}

FSL starts a flow at its first step; weir starts the nodes no other node enters. They agree
unless another step leads back to the first one: then a ``noop`` node named ``start`` (or
``start_2``, ... if a step has that name) is put first, with ``next: {SUCCESS: FIRST}``.
"""

from __future__ import annotations

from typing import Any

from engine.definition.fsl.checks import check, to_issues, workflow_name
from engine.definition.fsl.tree import DONE, Action, FslFile, Step
from engine.definition.model import END
from engine.errors import DefinitionError

DEFAULT_VERSION = "1.0.0"
"""The version of a converted flow that sets none (FSL has no versions)."""


def to_document(tree: FslFile, *, source: str = "<definition>") -> dict[str, Any]:
    """The weir definition document of ``tree``, keys in the order a person would write them.

    Raises ``DefinitionError`` listing every problem ``check`` finds, each with its position.
    """
    problems = check(tree)
    if problems:
        raise DefinitionError(to_issues(problems), source=source)
    flow = tree.flow
    actions = {a.name: a for a in tree.actions}
    nodes: list[dict[str, Any]] = []
    first = flow.steps[0].name
    if any(t.target == first for s in flow.steps if s.name != first for t in s.transitions):
        nodes.append(_start_node(first, {s.name for s in flow.steps}))
    nodes.extend(_node(step, actions[step.action]) for step in flow.steps)
    return {
        "apiVersion": "weir/v1",
        "kind": "Workflow",
        "name": workflow_name(flow.name),
        "version": flow.version or DEFAULT_VERSION,
        "description": flow.description or f"converted from FSL flow_run {flow.name}",
        "nodes": nodes,
    }


def _node(step: Step, action: Action) -> dict[str, Any]:
    floats = {p.name for p in action.args if p.type == "float"}
    return {
        "id": step.name,
        "description": f"action {action.name}",
        "http": {
            "url": action.addr,
            "method": "POST",
            "json": {a.key: float(a.value) if a.key in floats else a.value for a in step.args},
            "callback": {"protocol": "fsl", "ack_states": list(action.returns)},
        },
        "next": {t.outcome: END if t.target == DONE else t.target for t in step.transitions},
    }


def _start_node(first: str, taken: set[str]) -> dict[str, Any]:
    name, n = "start", 1
    while name in taken:
        n += 1
        name = f"start_{n}"
    return {
        "id": name,
        "description": f"starts the flow at its first step, {first}, which other steps re-enter",
        "noop": {},
        "next": {"SUCCESS": first},
    }
