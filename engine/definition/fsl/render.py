"""Write an FSL tree back as FSL text: the inverse of the parser, for tools and tests.

``parse(render(tree)) == tree`` for every tree the parser can produce (positions aside).
"""

from __future__ import annotations

import math

from engine.definition.fsl.tree import Action, Flow, FslFile, Step, Value

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


def render(tree: FslFile) -> str:
    """``tree`` as FSL text: one statement a line, blocks separated by ``/``."""
    blocks = [_action(a) for a in tree.actions] + [_flow(tree.flow)]
    return "/\n".join(blocks)


def literal(value: Value) -> str:
    """An FSL literal: ``"text"`` (escaped), ``10``, ``1.5``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"FSL has no literal for {value}")
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def _action(action: Action) -> str:
    lines = [f"action {action.name}", f"addr = {literal(action.addr)};"]
    lines.append(f"method = {action.method};")
    if action.args:
        lines.append(f"args = ({', '.join(f'{p.type} {p.name}' for p in action.args)});")
    lines.append(f"return = ({' | '.join(action.returns)});")
    lines.append("action_end")
    return "\n".join(lines) + "\n"


def _flow(flow: Flow) -> str:
    lines = [f"flow_run {flow.name}"]
    if flow.version is not None:
        lines.append(f"version = {literal(flow.version)};")
    if flow.description is not None:
        lines.append(f"description = {literal(flow.description)};")
    lines.extend(_step(s) for s in flow.steps)
    lines.append("flow_run_end")
    return "\n".join(lines) + "\n"


def _step(step: Step) -> str:
    transitions = " | ".join(f"{t.outcome} -> {t.target}" for t in step.transitions)
    lines = [f"step {step.name} => ({transitions}) {{", f"    action = {literal(step.action)};"]
    if step.args:
        args = ", ".join(f"{a.key} = {literal(a.value)}" for a in step.args)
        lines.append(f"    args = ({args});")
    lines.append("};")
    return "\n".join(lines)
