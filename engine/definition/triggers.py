"""Cron triggers of a definition: from the document to ``CronTrigger``, with every problem's path.

The parser calls ``build_trigger`` for each entry of ``triggers:`` (paths ``triggers[0].cron``),
and for a trigger submitted on its own through the API (``parser.trigger_from_spec``; paths
relative to the trigger: ``cron``, ``inputs.day``). Both validate with the same pydantic document
(``schema.TriggerDoc``) and the same checks.

Trigger input templates are evaluated when the trigger fires. Their only scope is ``trigger``:
``TRIGGER_FIELDS`` (``time``, ``utc``, ``name``, ``workflow``, ``fired_at``); ``inputs``,
``outputs``, ``execution`` and ``args`` do not exist yet and are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.definition import checks
from engine.definition.model import CatchUp, CronTrigger, InputParam, Overlap
from engine.definition.schema import TriggerDoc
from engine.definition.values import type_error
from engine.errors import Issue
from engine.lua import LuaSandbox
from engine.templates import (
    Const,
    DictT,
    Template,
    TemplateSyntaxError,
    compile_template,
    expressions,
    references,
)

TRIGGER_FIELDS = ("time", "utc", "name", "workflow", "fired_at")
"""What a trigger template reads from ``trigger``: the scheduled tick in the trigger's zone and
in UTC (ISO 8601), the trigger's and the workflow's names, and when it actually fired (UTC)."""

_OTHER_SCOPES = ("inputs", "outputs", "execution", "args")


def build_trigger(
    index: int,
    doc: TriggerDoc,
    inputs: Mapping[str, InputParam],
    sandbox: LuaSandbox,
    *,
    prefix: str = "",
    document: Mapping[str, Any] | None = None,
) -> tuple[CronTrigger, list[Issue]]:
    """The model of one shape-valid trigger and the problems of its inputs (paths start with
    ``prefix``); ``checks.check_trigger`` checks its cron expression and time zone."""
    name = checks.trigger_name(index, doc)
    issues: list[Issue] = []
    template = _inputs(name, doc, inputs, sandbox, prefix, issues)
    trigger = CronTrigger(
        name=name,
        cron=doc.cron.strip(),
        timezone=doc.timezone,
        inputs=template,
        overlap=Overlap(doc.overlap),
        catch_up=CatchUp(doc.catch_up),
        catch_up_window=doc.catch_up_window,
        enabled=doc.enabled,
        document=dict(document) if document is not None else doc.model_dump(exclude_unset=True),
    )
    return trigger, issues


def _inputs(
    name: str,
    doc: TriggerDoc,
    declared: Mapping[str, InputParam],
    sandbox: LuaSandbox,
    prefix: str,
    issues: list[Issue],
) -> Template:
    path = f"{prefix}inputs"
    try:
        template = compile_template(doc.inputs, f"trigger {name}.inputs")
    except TemplateSyntaxError as exc:
        issues.append(Issue(path, f"template: {exc}"))
        return Const({})
    items: list[tuple[str, Template]] = (
        list(template.items)
        if isinstance(template, DictT)
        else [(k, Const(v)) for k, v in doc.inputs.items()]
    )
    for key, sub in items:
        param = declared.get(key)
        if param is None:
            names = ", ".join(sorted(declared)) or "none"
            issues.append(
                Issue(
                    f"{path}.{key}",
                    f"undeclared input{checks.did_you_mean(key, declared)} (declared: {names})",
                )
            )
        elif isinstance(sub, Const) and sub.value is not None:
            problem = type_error(param.type, sub.value)
            if problem:
                issues.append(Issue(f"{path}.{key}", problem))
        for code in expressions(sub):
            _check_expression(code.source, sandbox.syntax_error(code), f"{path}.{key}", issues)
    for param in declared.values():
        if param.required and param.name not in doc.inputs:
            issues.append(Issue(path, f"required input '{param.name}' ({param.type}) is not given"))
    return template


def _check_expression(source: str, syntax: str | None, path: str, issues: list[Issue]) -> None:
    if syntax is not None:
        issues.append(Issue(path, f"Lua expression syntax error: {syntax}"))
        return
    for scope in _OTHER_SCOPES:
        if references(source, scope):
            issues.append(
                Issue(
                    path,
                    f"'{scope}' is not available in a trigger template: only trigger "
                    f"({', '.join(TRIGGER_FIELDS)})",
                )
            )
    for field in sorted(references(source, "trigger")):
        if field not in TRIGGER_FIELDS:
            issues.append(
                Issue(
                    path,
                    f"trigger.{field}: unknown field{checks.did_you_mean(field, TRIGGER_FIELDS)}"
                    f" (fields: {', '.join(TRIGGER_FIELDS)})",
                )
            )
