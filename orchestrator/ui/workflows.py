"""``/ui/workflows``: workflows, their versions, a version's definition and graph, the diff of
two versions, and the start form built from a version's declared inputs.

The start form has one field per declared input, by type: ``string`` a text input,
``integer`` and ``number`` a number input, ``boolean`` a checkbox, ``object``, ``array`` and
``any`` a JSON textarea; each shows its default. Reading it back (``read_form``):

- an empty field (or one missing from the form) is *not given*: a required input is then
  reported missing, an optional one takes its default -- except an empty ``string`` field of an
  input whose default is not null, which is the empty string (what the user sees is what the
  execution gets);
- a checkbox always gives a value (unticked is ``false``), so a required boolean carries no
  HTML ``required`` (which would mean "must be ticked");
- a number that is not a number, or JSON that does not parse, is an error on that field; the
  rest (missing inputs, wrong JSON types) is the service's ``InputError``, whose issue paths
  (``inputs.<name>``) put each message beside its field.

A form with errors comes back with status 422 and every value as typed: the form alone for
htmx (it targets its own container), the whole version page for a plain POST. Errors of the
service that are not about a field (a deprecated version's ``FailedPrecondition``, a full
queue) are shown as the form's error, with the status the REST API would answer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response

from engine.definition.model import Definition, InputParam
from engine.definition.values import resolve_inputs
from engine.errors import InputError
from orchestrator.api.errors import classify
from orchestrator.registry import WorkflowVersion
from orchestrator.ui.graph import Graph, executor_kind
from orchestrator.ui.svg import render_graph
from orchestrator.ui.web import PREFIX, Action, Page, UiRoute, View

router = APIRouter(prefix=PREFIX, route_class=UiRoute, include_in_schema=False)

Name = Annotated[str, Path(min_length=1, max_length=63)]
VersionText = Annotated[str, Path(min_length=1, max_length=256)]
Expand = Annotated[list[str], Query(max_length=100)]

FIELD_PREFIX = "input."
"""Form field names are ``input.<name>``, so no input name can clash with ``csrf``."""
WIDGETS = {
    "string": "text",
    "integer": "number",
    "number": "number",
    "boolean": "checkbox",
    "object": "json",
    "array": "json",
    "any": "json",
}
_INTEGER = re.compile(r"[+-]?\d+")


# --- the start form ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormField:
    """One input's field as the template draws it."""

    index: int
    param: InputParam
    widget: str
    """``text``, ``number``, ``checkbox`` or ``json``."""
    value: str
    checked: bool
    error: str

    @property
    def name(self) -> str:
        return FIELD_PREFIX + self.param.name

    @property
    def id(self) -> str:
        """An id from the position, not the name: an input's name may be any text."""
        return f"input-{self.index}"

    @property
    def step(self) -> str:
        """``1`` for an integer -- unless the value kept after an error is not whole: a browser
        counts steps from the ``value`` attribute, and every integer would then be refused."""
        whole = self.value.strip().lstrip("+-").isdigit() or not self.value.strip()
        return "1" if self.param.type == "integer" and whole else "any"


def widget_of(param: InputParam) -> str:
    return WIDGETS.get(param.type, "json")


def _shown_default(param: InputParam) -> str:
    """The default as its field shows it (empty for null)."""
    value = param.default
    if value is None:
        return ""
    widget = widget_of(param)
    if widget == "text" and isinstance(value, str):
        return value
    if widget == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def form_fields(
    definition: Definition,
    submitted: Mapping[str, list[str]] | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[FormField]:
    """The fields of ``definition``'s inputs: the defaults, or what was ``submitted``."""
    errors = errors or {}
    fields = []
    for index, param in enumerate(definition.inputs.values()):
        widget = widget_of(param)
        if submitted is None:
            value = _shown_default(param)
            checked = param.default is True
        else:
            given = submitted.get(FIELD_PREFIX + param.name)
            value = given[0] if given else ""
            checked = value == "true"
        fields.append(FormField(index, param, widget, value, checked, errors.get(param.name, "")))
    return fields


def _number(param: InputParam, text: str) -> int | float:
    if _INTEGER.fullmatch(text):
        return int(text)
    if param.type == "integer":
        raise ValueError(f"{text!r} is not a whole number")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def read_form(
    definition: Definition, form: Mapping[str, list[str]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """``(inputs, errors by input name)`` from a submitted start form (module docstring)."""
    inputs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for param in definition.inputs.values():
        given = form.get(FIELD_PREFIX + param.name)
        widget = widget_of(param)
        if widget == "checkbox":  # a browser sends a ticked box only
            inputs[param.name] = given is not None and given[0] == "true"
            continue
        if not given:  # not in the form at all (a client that is not this page)
            continue
        text = given[0]
        if widget == "text":
            if text or (not param.required and param.default is not None):
                inputs[param.name] = text
            continue
        text = text.strip()
        if not text:
            continue
        if widget == "number":
            try:
                inputs[param.name] = _number(param, text)
            except ValueError as exc:
                errors[param.name] = str(exc)
            continue
        try:
            inputs[param.name] = json.loads(text)
        except ValueError as exc:
            errors[param.name] = f"is not JSON: {exc}"
    return inputs, errors


def field_errors(definition: Definition, exc: InputError) -> tuple[dict[str, str], list[str]]:
    """An ``InputError``'s issues by input name, and those about no declared input."""
    by_field: dict[str, str] = {}
    other: list[str] = []
    for issue in exc.issues:
        name = issue.path.removeprefix("inputs.")
        if issue.path.startswith("inputs.") and name in definition.inputs:
            by_field[name] = (
                f"{by_field[name]}; {issue.message}" if name in by_field else issue.message
            )
        else:
            other.append(str(issue))
    return by_field, other


# --- pages ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    """One line of the workflow list."""

    name: str
    latest: WorkflowVersion
    count: int
    deprecated: tuple[str, ...]
    description: str


@router.get("/workflows")
async def workflows(page: Page) -> HTMLResponse:
    api = page.services.workflows
    rows = []
    for summary in api.summaries():
        versions = api.versions(summary.name)
        rows.append(
            WorkflowRow(
                name=summary.name,
                latest=versions[-1],
                count=len(versions),
                deprecated=tuple(v.version for v in versions if v.deprecated),
                description=summary.description,
            )
        )
    return page.render("workflows.html", rows=rows)


@router.get("/workflows/{name}")
async def workflow(page: Page, name: Name) -> HTMLResponse:
    api = page.services.workflows
    versions = list(reversed(api.versions(name)))
    return page.render(
        "workflow.html",
        name=name,
        versions=[(v, api.used_by(v)) for v in versions],
        choices=[v.version for v in versions],
        diff_from=versions[1].version if len(versions) > 1 else "",
        diff_to=versions[0].version,
    )


def _graph(
    view: View, wf: WorkflowVersion, expand: list[str], expand_all: bool
) -> tuple[Graph, object]:
    """The version's layout (cached) and its drawing, every node ``pending``."""
    graph = view.ui.layouts.of(wf, frozenset(expand), expand_all)
    return graph, render_graph(graph)


def _page_url(wf: WorkflowVersion) -> str:
    return f"{PREFIX}/workflows/{quote(wf.name)}/versions/{quote(wf.version)}"


def _graph_url(wf: WorkflowVersion) -> str:
    return f"{_page_url(wf)}/graph"


def _version_page(
    view: View,
    wf: WorkflowVersion,
    *,
    fields: list[FormField] | None = None,
    form_error: str = "",
    form_issues: list[str] | None = None,
    status: int = 200,
    expand: list[str] | None = None,
    expand_all: bool = False,
) -> HTMLResponse:
    expand = expand or []
    graph, svg = _graph(view, wf, expand, expand_all)
    nodes = []
    documents = {
        item.get("id"): item
        for item in wf.definition.document.get("nodes", ())
        if isinstance(item, Mapping)
    }
    for node in wf.definition.nodes:
        written = documents.get(node.id, {})
        nodes.append((node, executor_kind(node.executor), written.get("args")))
    return view.render(
        "version.html",
        status=status,
        wf=wf,
        used_by=view.services.workflows.used_by(wf),
        nodes=nodes,
        graph=graph,
        svg=svg,
        graph_url=_graph_url(wf),
        expand=expand,
        expand_all=expand_all,
        fields=fields if fields is not None else form_fields(wf.definition),
        form_error=form_error,
        form_issues=form_issues or [],
    )


@router.get("/workflows/{name}/versions/{version}")
async def version_page(
    page: Page,
    name: Name,
    version: VersionText,
    expand: Expand = [],  # noqa: B006
    expand_all: bool = False,
) -> HTMLResponse:
    wf = page.services.workflows.get(name, version)
    return _version_page(page, wf, expand=expand, expand_all=expand_all)


@router.get("/workflows/{name}/versions/{version}/graph")
async def graph_fragment(
    page: Page,
    name: Name,
    version: VersionText,
    expand: Expand = [],  # noqa: B006
    expand_all: bool = False,
) -> HTMLResponse:
    wf = page.services.workflows.get(name, version)
    graph, svg = _graph(page, wf, expand, expand_all)
    return page.render(
        "_definition_graph.html",
        wf=wf,
        graph=graph,
        svg=svg,
        graph_url=_graph_url(wf),
        expand=expand,
        expand_all=expand_all,
    )


@router.get("/workflows/{name}/diff")
async def diff(
    page: Page,
    name: Name,
    from_version: Annotated[str, Query(alias="from", min_length=1, max_length=256)],
    to_version: Annotated[str, Query(alias="to", min_length=1, max_length=256)],
) -> HTMLResponse:
    api = page.services.workflows
    old, new = api.get(name, from_version), api.get(name, to_version)
    return page.render(
        "diff.html",
        name=name,
        old=old,
        new=new,
        choices=[v.version for v in reversed(api.versions(name))],
        diff_from=old.version,
        diff_to=new.version,
        diff=api.diff(name, old.version, new.version),
    )


# --- actions ----------------------------------------------------------------------------------


@router.post("/workflows/{name}/versions/{version}/start")
async def start(act: Action, name: Name, version: VersionText) -> Response:
    """Start an execution from the form; errors come back beside their fields (422)."""
    wf = act.services.workflows.get(name, version)
    definition = wf.definition
    inputs, errors = read_form(definition, act.form)
    other: list[str] = []
    form_error = ""
    status = 422
    if errors:
        try:  # every other problem at once, as the service would report it
            resolve_inputs(definition, {k: v for k, v in inputs.items() if k not in errors})
        except InputError as exc:
            found, other = field_errors(definition, exc)
            errors = {**found, **errors}
    else:
        try:
            record = await act.services.executions.start(wf.name, wf.version, inputs)
        except InputError as exc:
            errors, other = field_errors(definition, exc)
        except Exception as exc:
            kind = classify(exc)
            if kind is None:
                raise
            form_error, status = str(exc), kind.http_status
        else:
            return act.redirect(f"{PREFIX}/executions/{quote(record.id)}")
    if other and not form_error:
        form_error = "The inputs are not valid."
    fields = form_fields(definition, act.form, errors)
    if act.fragment:
        return act.render(
            "_start_form.html",
            status=status,
            wf=wf,
            fields=fields,
            form_error=form_error,
            form_issues=other,
        )
    return _version_page(
        act, wf, fields=fields, form_error=form_error, form_issues=other, status=status
    )


@router.post("/workflows/{name}/versions/{version}/deprecate")
async def deprecate(act: Action, name: Name, version: VersionText) -> Response:
    """Deprecate the version (``deprecated=false`` in the form: use it again)."""
    wf = await act.services.workflows.deprecate(
        name, version, act.field("deprecated", "true") != "false"
    )
    return act.redirect(_page_url(wf))
