"""The rules an FSL tree must follow before it converts, each problem with its position.

``check`` returns every problem, not just the first: duplicate names, steps that use unknown
actions or undeclared args, args missing or of the wrong type, transitions on outcomes the
action cannot return or to unknown steps, methods other than ``http``, names that do not map to
weir's, and steps that nothing enters (weir would start them with the flow).
"""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

from engine.definition.checks import did_you_mean
from engine.definition.fsl.parser import Problem
from engine.definition.fsl.tree import (
    DONE,
    TYPES,
    Action,
    Arg,
    Flow,
    FslFile,
    Param,
    Pos,
    Step,
    Value,
)
from engine.definition.model import END
from engine.definition.schema import NAME_PATTERN, NODE_ID_PATTERN
from engine.definition.semver import Version
from engine.errors import Issue
from engine.templates import TemplateSyntaxError, compile_template

PROTOCOL_FIELDS = ("flowId", "stepName", "ackStates", "uuid")
"""What weir puts in every FSL action request besides the args; an arg may not take these names."""


def workflow_name(flow_name: str) -> str:
    """The workflow name of a flow: lowercase, ``_`` -> ``-`` (``my_flow_run``: ``my-flow-run``)."""
    return flow_name.lower().replace("_", "-")


def check(tree: FslFile) -> list[Problem]:
    """Every problem of ``tree``, ordered by position."""
    problems: list[Problem] = []
    actions: dict[str, Action] = {}
    for action in tree.actions:
        if action.name in actions:
            first = actions[action.name].at.line
            problems.append(
                (action.at, f"action {action.name} is declared twice (first at line {first})")
            )
        else:
            actions[action.name] = action
        problems.extend(_check_action(action))
    problems.extend(_check_flow(tree.flow, actions))
    return sorted(problems, key=lambda p: (p[0].line, p[0].col))


def _check_action(action: Action) -> list[Problem]:
    problems: list[Problem] = []
    owner = f"action {action.name}"
    if not action.addr:
        problems.append((action.at, f'{owner} has no addr (addr = "http://host/path";)'))
    else:
        url = urlsplit(action.addr)
        if url.scheme not in ("http", "https") or not url.netloc:
            problems.append(
                (
                    action.addr_at,
                    f"addr of {owner} must be an http:// or https:// URL, got {action.addr!r}",
                )
            )
        problems.extend(_template_problems(action.addr, action.addr_at))
    if action.method != "http":
        problems.append(
            (
                action.method_at,
                f"method of {owner} must be http (weir calls FSL actions over HTTP), "
                f"found '{action.method}'",
            )
        )
    declared: set[str] = set()
    for param in action.args:
        if param.type not in TYPES:
            problems.append(
                (
                    param.at,
                    f"unknown type '{param.type}' for arg {param.name} of {owner} "
                    f"(expected {', '.join(TYPES[:-1])} or {TYPES[-1]})",
                )
            )
        if param.name in declared:
            problems.append((param.at, f"arg {param.name} is declared twice in {owner}"))
        elif param.name in PROTOCOL_FIELDS:
            problems.append(
                (
                    param.at,
                    f"arg {param.name} of {owner} is a field of the FSL protocol's request "
                    f"({', '.join(PROTOCOL_FIELDS)}); rename it",
                )
            )
        declared.add(param.name)
    if not action.returns:
        problems.append((action.at, f"{owner} has no return (return = (SUCCESS | FAIL);)"))
    listed: set[str] = set()
    for i, state in enumerate(action.returns):
        if state in listed:
            at = action.returns_at[i] if i < len(action.returns_at) else action.at
            problems.append((at, f"outcome {state} is listed twice in the return of {owner}"))
        listed.add(state)
    return problems


def _check_flow(flow: Flow, actions: dict[str, Action]) -> list[Problem]:
    problems: list[Problem] = []
    name = workflow_name(flow.name)
    if not re.match(NAME_PATTERN, name):
        problems.append(
            (
                flow.at,
                f"flow_run {flow.name} becomes the workflow name {name!r}, which is not valid: "
                "lowercase letters, digits and '-' (written '_' in FSL), starting and ending "
                "with a letter or digit, at most 63 characters",
            )
        )
    if flow.version is not None:
        try:
            Version.parse(flow.version)
        except ValueError as exc:
            problems.append((flow.version_at, f"version: {exc}"))
    if not flow.steps:
        problems.append((flow.at, f"flow_run {flow.name} has no step"))
    steps: dict[str, Step] = {}
    for step in flow.steps:
        if step.name in steps:
            first = steps[step.name].at.line
            problems.append(
                (step.at, f"step {step.name} is declared twice (first at line {first})")
            )
        else:
            steps[step.name] = step
        if step.name in (DONE, END):
            problems.append(
                (step.at, f"'{step.name}' is reserved: it ends the flow, it cannot name a step")
            )
        elif not re.match(NODE_ID_PATTERN, step.name):
            problems.append((step.at, f"step name {step.name} is longer than 63 characters"))
    for step in flow.steps:
        problems.extend(_check_step(step, actions, steps))
    entered = {t.target for s in flow.steps for t in s.transitions if t.target != s.name}
    problems.extend(
        (
            step.at,
            f"step {step.name} is never entered: no other step's transition leads to it "
            "(a flow starts at its first step only)",
        )
        for step in flow.steps[1:]
        if step.name not in entered and steps[step.name] is step
    )
    return problems


def _check_step(step: Step, actions: dict[str, Action], steps: dict[str, Step]) -> list[Problem]:
    problems: list[Problem] = []
    owner = f"step {step.name}"
    outcomes: set[str] = set()
    for t in step.transitions:
        if t.outcome in outcomes:
            problems.append((t.at, f"outcome {t.outcome} has two transitions in {owner}"))
        outcomes.add(t.outcome)
        if t.target != DONE and t.target not in steps:
            hint = did_you_mean(t.target, [*steps, DONE])
            problems.append(
                (
                    t.target_at,
                    f"unknown step '{t.target}' after '{t.outcome} ->' in {owner}{hint} "
                    "(a target is a step or done)",
                )
            )
    if not step.action:
        problems.append((step.at, f'{owner} has no action (action = "NAME";)'))
        return problems
    action = actions.get(step.action)
    if action is None:
        hint = did_you_mean(step.action, actions)
        problems.append((step.action_at, f"unknown action '{step.action}' in {owner}{hint}"))
        return problems
    if action.returns:
        returns = " | ".join(action.returns)
        problems.extend(
            (
                t.at,
                f"outcome {t.outcome} of {owner} is not in the return of action {action.name} "
                f"({returns})",
            )
            for t in step.transitions
            if t.outcome not in action.returns
        )
    declared = {p.name: p for p in action.args}
    given: set[str] = set()
    for arg in step.args:
        if arg.key in given:
            problems.append((arg.at, f"arg {arg.key} is given twice in {owner}"))
            continue
        given.add(arg.key)
        param = declared.get(arg.key)
        if param is None:
            problems.append(
                (
                    arg.at,
                    f"action {action.name} has no arg {arg.key}{did_you_mean(arg.key, declared)} "
                    f"(declared: {_signature(action)})",
                )
            )
            continue
        problems.extend(_check_value(arg, param, action))
    problems.extend(
        (step.at, f"{owner} misses arg {p.name} of action {action.name} ({p.type} {p.name})")
        for p in action.args
        if p.name not in given
    )
    return problems


def _check_value(arg: Arg, param: Param, action: Action) -> list[Problem]:
    got = _kind(arg.value)
    fits = {
        "str": got == "string",
        "int": got == "int",
        "float": got in ("int", "float"),
        "bool": got == "bool",
    }.get(param.type, True)  # an unknown type is reported at the action
    if not fits:
        hint = ""
        if isinstance(arg.value, str) and "${" in arg.value:
            hint = " (a template is accepted for a str arg only)"
        article = "an" if got == "int" else "a"
        return [
            (
                arg.value_at,
                f"arg {arg.key} of action {action.name} is {param.type}, got {article} {got}{hint}",
            )
        ]
    if isinstance(arg.value, float) and not math.isfinite(arg.value):
        return [(arg.value_at, f"arg {arg.key}: {arg.value} is not a finite number")]
    if isinstance(arg.value, str):
        return _template_problems(arg.value, arg.value_at)
    return []


def _kind(value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "string"


def _template_problems(text: str, at: Pos) -> list[Problem]:
    try:
        compile_template(text, "fsl")
    except TemplateSyntaxError as exc:
        return [(at, f"template: {exc}")]
    return []


def _signature(action: Action) -> str:
    return ", ".join(f"{p.type} {p.name}" for p in action.args) or "none"


def to_issues(problems: list[Problem]) -> list[Issue]:
    """``Issue``s whose path is the position (``line 3, column 7``), as weir's errors carry them.

    A tree built in code has no positions; its issues then have no path (the message names
    the action or step).
    """
    return [Issue(str(at) if at.line else "", message) for at, message in problems]
