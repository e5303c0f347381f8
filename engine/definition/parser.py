"""Load definitions from YAML or JSON into the validated model.

``load_file``/``loads``/``from_document`` collect every problem before raising one
``DefinitionError``: pydantic's shape errors first (converted to ``nodes[3].timeout: ...`` paths),
then graph rules, template syntax, Lua syntax and references to undeclared inputs or unknown nodes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic
import yaml

from engine.definition import checks, fsl
from engine.definition.model import (
    DEFAULT_MAX_VISITS,
    NO_RETRY,
    Callback,
    CronTrigger,
    Definition,
    Edge,
    Executor,
    HttpTask,
    InputParam,
    LuaTask,
    MapSpec,
    Node,
    NoopTask,
    PythonTask,
    QueueTask,
    RetryPolicy,
    SleepTask,
    SubWorkflowTask,
    Transitions,
    TriggerRule,
    WaitTask,
)
from engine.definition.schema import LuaDoc, MapDoc, NodeDoc, TaskDoc, TriggerDoc, WorkflowDoc
from engine.definition.triggers import build_trigger
from engine.definition.values import type_error
from engine.errors import DefinitionError, Issue
from engine.lua import LuaCode, LuaSandbox
from engine.templates import (
    Const,
    Template,
    TemplateSyntaxError,
    compile_template,
    expressions,
    references,
)

_KNOWN_KEYS = {
    *WorkflowDoc.model_fields,
    "apiVersion",
    *NodeDoc.model_fields,
    *TriggerDoc.model_fields,
    "json",
    "attempts",
    "backoff",
    "factor",
    "max_backoff",
    "jitter",
    "code",
    "max_memory",
    "instructions",
    "url",
    "method",
    "headers",
    "body",
    "outcome",
    "callback",
    "protocol",
    "ack_states",
    "signal",
    "to",
    "priority",
    "type",
    "default",
    *TaskDoc.model_fields,
    *MapDoc.model_fields,
}


def load_file(path: str | Path, *, sandbox: LuaSandbox | None = None) -> Definition:
    """Read and validate the definition in ``path`` (``.yaml``, ``.yml``, ``.json`` or ``.fsl``)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(
            [Issue("", f"cannot read file: {exc.strerror}")], source=source
        ) from None
    except UnicodeDecodeError:
        raise DefinitionError([Issue("", "file is not UTF-8 text")], source=source) from None
    return loads(text, source=source, sandbox=sandbox)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: about 10x faster on big definitions."""


def loads(
    text: str, *, source: str = "<definition>", sandbox: LuaSandbox | None = None
) -> Definition:
    """Parse YAML (JSON is a subset of it) or FSL (``.fsl``, docs/fsl.md) and validate."""
    if fsl.is_fsl(text) or source.endswith(".fsl"):
        return from_document(fsl.convert(text, source=source), source=source, sandbox=sandbox)
    try:
        document = yaml.load(text, Loader=_LOADER)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DefinitionError(
            [Issue("", f"{where}invalid YAML/JSON: {problem}")], source=source
        ) from None
    return from_document(document, source=source, sandbox=sandbox)


def from_document(
    document: Any, *, source: str = "<definition>", sandbox: LuaSandbox | None = None
) -> Definition:
    """Validate an already-parsed document (a mapping) and build the ``Definition``."""
    if not isinstance(document, Mapping):
        kind = type(document).__name__ if document is not None else "nothing"
        raise DefinitionError(
            [Issue("", f"expected a mapping at the top level, got {kind}")], source=source
        )
    try:
        doc = WorkflowDoc.model_validate(document)
    except pydantic.ValidationError as exc:
        raise DefinitionError(pydantic_issues(exc), source=source) from None
    issues = checks.check_graph(doc) + checks.check_triggers(doc)
    builder = _Builder(doc, sandbox or syntax_sandbox())
    definition = builder.build(dict(document))
    if not issues and not definition.start_nodes:  # the model derives who starts; ask it
        issues.append(checks.NO_START)
    issues.extend(builder.issues)
    if issues:
        raise DefinitionError(issues, source=source)
    return definition


@functools.cache
def syntax_sandbox() -> LuaSandbox:
    """The sandbox that compiles Lua to check its syntax when the caller gives none."""
    return LuaSandbox(workers=1)


def trigger_from_spec(
    spec: Any,
    definition: Definition,
    *,
    name: str = "",
    sandbox: LuaSandbox | None = None,
) -> CronTrigger:
    """Validate one trigger submitted on its own (the API) against ``definition``'s inputs.

    ``name``, when given, overrides the spec's own. Raises ``DefinitionError`` whose paths are
    relative to the trigger (``cron``, ``timezone``, ``inputs.day``).
    """
    source = f"trigger {name or '?'} of {definition.name}"
    if not isinstance(spec, Mapping):
        raise DefinitionError([Issue("", "expected a mapping (the trigger)")], source=source)
    document = dict(spec)
    if name:
        document["name"] = name
    try:
        doc = TriggerDoc.model_validate(document)
    except pydantic.ValidationError as exc:
        raise DefinitionError(pydantic_issues(exc, trigger=True), source=source) from None
    trigger, issues = build_trigger(
        0, doc, definition.inputs, sandbox or syntax_sandbox(), document=document
    )
    issues = checks.check_trigger(doc) + issues
    if issues:
        raise DefinitionError(issues, source=source)
    return trigger


def pydantic_issues(exc: pydantic.ValidationError, *, trigger: bool = False) -> list[Issue]:
    """Convert pydantic's errors into Issues with document paths and plain messages.

    ``trigger``: the document validated was one trigger (the API), not a workflow.
    """
    issues = []
    for error in exc.errors(include_url=False):
        loc = [
            part for part in error["loc"] if not (isinstance(part, str) and part.startswith("<"))
        ]
        path = format_path(loc)
        kind = error["type"]
        message = str(error["msg"])
        if kind == "missing":
            message = "required"
        elif kind == "extra_forbidden":
            key = str(loc[-1]) if loc else ""
            message = f"unknown key{checks.did_you_mean(key, _KNOWN_KEYS - {key})}"
        elif kind == "string_pattern_mismatch":
            field = str(loc[-1]) if loc else ""
            if field == "name" and (trigger or loc[0] == "triggers"):
                field = "id"  # a trigger's name follows the node id pattern
            message = _PATTERN_MESSAGES.get(field, message)
        elif kind == "union_tag_not_found" or kind == "union_tag_invalid":
            message = _UNION_MESSAGES.get(str(loc[-1]) if loc else "", message)
        message = message.removeprefix("Value error, ").replace("Input should be", "expected")
        issues.append(Issue(path, message))
    return issues


_PATTERN_MESSAGES = {
    "name": "must be a DNS label: lowercase letters, digits and '-', at most 63 characters",
    "id": "must start with a letter or '_' and hold only letters, digits, '_' and '-' (at most 63)",
    "python": 'expected "package.module:function"',
    "method": "expected an HTTP method such as GET or POST",
}
_UNION_MESSAGES = {
    "next": "expected a map of outcome -> node, or a list of edges {to, when, outcome, priority}",
    "lua": "expected Lua code, or {code, max_memory, instructions}",
}


def format_path(loc: list[int | str] | tuple[int | str, ...]) -> str:
    """``("nodes", 3, "depends_on")`` -> ``nodes[3].depends_on``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Builder:
    """Turns a shape-valid document into the model, collecting template and Lua issues."""

    def __init__(self, doc: WorkflowDoc, sandbox: LuaSandbox) -> None:
        self.doc = doc
        self.sandbox = sandbox
        self.issues: list[Issue] = []
        self.node_ids = {n.id for n in doc.nodes}

    def build(self, document: dict[str, Any]) -> Definition:
        doc = self.doc
        inputs = {}
        for name, spec in doc.inputs.items():
            has_default = "default" in spec.model_fields_set
            if (
                has_default
                and spec.default is not None
                and (problem := type_error(spec.type, spec.default))
            ):
                self.issues.append(Issue(f"inputs.{name}.default", problem))
            inputs[name] = InputParam(
                name, spec.type, not has_default, spec.default, spec.description
            )
        nodes = tuple(self._node(i, n) for i, n in enumerate(doc.nodes))
        outputs = self._template(doc.outputs, "outputs") if doc.outputs else None
        written = document.get("triggers")
        triggers = []
        for i, t in enumerate(doc.triggers):
            trigger, issues = build_trigger(
                i,
                t,
                inputs,
                self.sandbox,
                prefix=f"triggers[{i}].",
                document=written[i] if isinstance(written, list) else None,
            )
            triggers.append(trigger)
            self.issues.extend(issues)
        return Definition(
            name=doc.name,
            version=doc.version,
            nodes=nodes,
            inputs=inputs,
            outputs=outputs,
            timeout=doc.timeout,
            concurrency=doc.concurrency,
            description=doc.description,
            triggers=tuple(triggers),
            document=document,
        )

    def _node(self, i: int, n: NodeDoc) -> Node:
        path = f"nodes[{i}]"
        return Node(
            id=n.id,
            executor=self._executor(path, n),
            args=self._template(n.args, f"{path}.args", chunkname=f"{n.id}.args"),
            depends_on=tuple(n.depends_on),
            trigger_rule=TriggerRule(n.trigger_rule),
            when=self._lua(n.when, f"{path}.when", f"{n.id}.when", expression=True)
            if n.when
            else None,
            next=self._next(path, n),
            max_visits=n.max_visits or DEFAULT_MAX_VISITS,
            retry=RetryPolicy(**n.retry.model_dump()) if n.retry else NO_RETRY,
            timeout=n.timeout,
            description=n.description,
            map=self._map(path, n),
        )

    def _map(self, path: str, n: NodeDoc) -> MapSpec | None:
        if n.map is None:
            return None
        m = n.map
        items = self._template(m.items, f"{path}.map.items", chunkname=f"{n.id}.items")
        if isinstance(items, Const) and not isinstance(items.value, list):
            self.issues.append(
                Issue(
                    f"{path}.map.items",
                    f'must be a list or a template such as "${{outputs.NODE.list}}", '
                    f"got {type(items.value).__name__}",
                )
            )
        if isinstance(m.tolerate, str):
            return MapSpec(items, m.concurrency, 0, float(m.tolerate[:-1]))
        return MapSpec(items, m.concurrency, m.tolerate)

    def _executor(self, path: str, n: NodeDoc) -> Executor:
        if n.lua is not None:
            lua = n.lua if isinstance(n.lua, LuaDoc) else LuaDoc(code=n.lua)
            code = self._lua(lua.code, f"{path}.lua", n.id, expression=False)
            return LuaTask(code, lua.max_memory, lua.instructions)
        if n.http is not None:
            h = n.http
            has_body = h.json_body is not None or h.body is not None or h.callback is not None
            if h.timeout is not None and h.callback is None:
                self.issues.append(
                    Issue(
                        f"{path}.http.timeout",
                        "only with callback (how long to wait for it); a request's own time "
                        "limit is the node's timeout",
                    )
                )
            if h.callback is not None and h.body is not None:
                self.issues.append(
                    Issue(f"{path}.http.body", "not with callback: the token travels in json")
                )
            return HttpTask(
                method=(h.method or ("POST" if has_body else "GET")).upper(),
                url=self._template(h.url, f"{path}.http.url", chunkname=f"{n.id}.url"),
                headers=self._template(
                    h.headers, f"{path}.http.headers", chunkname=f"{n.id}.headers"
                ),
                json_body=self._template(h.json_body, f"{path}.http.json", chunkname=f"{n.id}.json")
                if h.json_body is not None
                else None,
                body=self._template(h.body, f"{path}.http.body", chunkname=f"{n.id}.body")
                if h.body is not None
                else None,
                outcome=h.outcome,
                callback=self._callback(n) if h.callback is not None else None,
                timeout=h.timeout,
            )
        if n.python is not None:
            return PythonTask(n.python)
        if n.workflow is not None:
            return SubWorkflowTask(n.workflow.name, n.workflow.version)
        if n.task is not None:
            t = n.task if isinstance(n.task, TaskDoc) else TaskDoc(queue=n.task)
            return QueueTask(t.queue, t.timeout, t.heartbeat, t.schedule_to_start)
        if n.wait is not None:
            return WaitTask(n.wait.signal, n.wait.timeout)
        if n.sleep is not None:
            return SleepTask(n.sleep)
        return NoopTask()

    @staticmethod
    def _callback(n: NodeDoc) -> Callback:
        assert n.http is not None and n.http.callback is not None
        c = n.http.callback
        states = c.ack_states
        if states is None and isinstance(n.next, dict):
            states = list(n.next)
        return Callback(c.protocol, tuple(states or ()))

    def _next(self, path: str, n: NodeDoc) -> Transitions | None:
        if n.next is None:
            return None
        if isinstance(n.next, dict):
            return Transitions(by_outcome=dict(n.next))
        edges = []
        for j, e in enumerate(n.next):
            when = (
                self._lua(e.when, f"{path}.next[{j}].when", f"{n.id}.next[{j}]", expression=True)
                if e.when
                else None
            )
            edges.append(Edge(e.to, when, e.outcome, e.priority))
        # Lowest priority value first; edges without one after those with one; ties keep order.
        order = sorted(
            range(len(edges)), key=lambda k: (edges[k].priority is None, edges[k].priority or 0, k)
        )
        return Transitions(edges=tuple(edges[k] for k in order))

    def _template(self, value: Any, path: str, *, chunkname: str | None = None) -> Template:
        try:
            template = compile_template(value, chunkname or path)
        except TemplateSyntaxError as exc:
            self.issues.append(Issue(path, f"template: {exc}"))
            return compile_template(None, path)
        for code in expressions(template):
            self._check_lua(code, path)
        return template

    def _lua(self, source: str, path: str, chunkname: str, *, expression: bool) -> LuaCode:
        code = LuaCode(source, chunkname, expression=expression)
        self._check_lua(code, path)
        return code

    def _check_lua(self, code: LuaCode, path: str) -> None:
        error = self.sandbox.syntax_error(code)
        if error is not None:
            kind = "Lua expression" if code.expression else "Lua"
            self.issues.append(Issue(path, f"{kind} syntax error: {error}"))
            return
        for name in sorted(references(code.source, "inputs")):
            if name not in self.doc.inputs:
                declared = ", ".join(sorted(self.doc.inputs)) or "none"
                self.issues.append(
                    Issue(
                        path,
                        f"undeclared input '{name}'{checks.did_you_mean(name, self.doc.inputs)}"
                        f" (declared: {declared})",
                    )
                )
        for name in sorted(references(code.source, "outputs")):
            if name not in self.node_ids:
                self.issues.append(
                    Issue(
                        path,
                        f"outputs.{name}: unknown node{checks.did_you_mean(name, self.node_ids)}",
                    )
                )
