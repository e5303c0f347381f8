"""What changed between two versions of a workflow, and whether a running execution survives it.

``diff_definitions(old, new)`` lists nodes added, removed and changed (with the node keys that
changed: the executor's kind — ``lua``, ``http``, ``python``, ``workflow``, ``noop``, ``sleep`` —
when its content changed, ``executor`` when the kind itself changed, then ``args``,
``depends_on``, ``trigger_rule``, ``when``, ``next``, ``max_visits``, ``retry``, ``timeout``,
``description``, ``map``) and workflow-level changes in ``other`` (inputs, outputs, timeout,
concurrency, description, cron triggers added, removed or changed). Pure code: no I/O.

``can_continue`` answers: could an execution that is running on ``old`` go on with ``new``? A
checkpoint is a journal of node results replayed by node id through the state machine
(``engine.state.machine.ExecutionState.resume``), so the rules are:

- **blocks**: a node of ``old`` missing from ``new`` — any node may already have run, and its
  result would be dropped on replay;
- **blocks**: a changed ``depends_on``, ``trigger_rule``, ``when`` or ``next`` of a node present
  in both — replaying the same results could take a different path (run a node the journal says
  was skipped, skip one it says ran, or route a loop elsewhere);
- **blocks**: a lower ``max_visits`` on a node that ``old`` can enter again (a ``next`` target):
  an execution that already looped more often than the new limit would fail on its next visit.
  A lower limit on a node that is never re-entered changes nothing (it runs at most once), and a
  higher limit never hurts; both are notes;
- **blocks**: ``map`` added to or removed from a node: its checkpoint records (an expansion and
  one record per item attempt, or plain attempts) would not fit the other shape. A changed
  ``map`` (its items, concurrency, tolerate) is a note: the expansion is replayed as recorded;
- **blocks**: a new input without a default — running executions were started without it;
- **notes**, not blockers: changed executors, ``args``, ``retry``, ``timeout`` or
  ``description`` (runs that finished keep their outputs, later runs use the new definition);
  added nodes (they run when their dependencies have finished, when the resumed execution starts
  them, or when a transition leads to them — new edges from existing nodes are blockers by the
  ``next`` rule above); an input whose type or default changed (running executions keep the
  values they started with). Other workflow-level changes (outputs, timeout, concurrency,
  removed or new optional inputs, cron triggers) are listed in ``other`` and block nothing.

Identical definitions give an empty diff that can continue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.definition.duration import format_duration
from engine.definition.model import (
    Definition,
    Executor,
    HttpTask,
    InputParam,
    LuaTask,
    Node,
    NoopTask,
    PythonTask,
    QueueTask,
    SleepTask,
    SubWorkflowTask,
    Transitions,
    WaitTask,
)


@dataclass(frozen=True, slots=True)
class NodeChange:
    """A node present in both versions and the node keys that differ."""

    node: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DefinitionDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[NodeChange, ...]
    other: tuple[str, ...]
    """Workflow-level changes, one human line each."""
    can_continue: bool
    """Whether an execution running on the old version could continue on the new one."""
    reasons: tuple[str, ...]
    """Why it could not (empty when it could)."""
    notes: tuple[str, ...]
    """Changes a running execution would notice without being stopped by them."""


_BLOCKING = ("depends_on", "trigger_rule", "when", "next")


def _kind(executor: Executor) -> str:
    match executor:
        case LuaTask():
            return "lua"
        case HttpTask():
            return "http"
        case PythonTask():
            return "python"
        case SubWorkflowTask():
            return "workflow"
        case QueueTask():
            return "task"
        case WaitTask():
            return "wait"
        case NoopTask():
            return "noop"
        case SleepTask():
            return "sleep"
    raise TypeError(f"unknown executor {executor!r}")  # pragma: no cover


def _next_key(t: Transitions | None) -> object:
    """``next`` without the chunk names of its conditions, which follow the listed order."""
    if t is None:
        return None
    if t.by_outcome is not None:
        return dict(t.by_outcome)
    return tuple((e.to, e.when.source if e.when else None, e.outcome, e.priority) for e in t.edges)


def _node_fields(a: Node, b: Node) -> tuple[str, ...]:
    fields: list[str] = []
    if _kind(a.executor) != _kind(b.executor):
        fields.append("executor")
    elif a.executor != b.executor:
        fields.append(_kind(a.executor))
    if a.args != b.args:
        fields.append("args")
    if set(a.depends_on) != set(b.depends_on):
        fields.append("depends_on")
    if a.trigger_rule != b.trigger_rule:
        fields.append("trigger_rule")
    if (a.when.source if a.when else None) != (b.when.source if b.when else None):
        fields.append("when")
    if _next_key(a.next) != _next_key(b.next):
        fields.append("next")
    for name in ("max_visits", "retry", "timeout", "description"):
        if getattr(a, name) != getattr(b, name):
            fields.append(name)
    if a.map != b.map:
        fields.append("map")
    return tuple(fields)


def _why(field: str, a: Node, b: Node) -> str:
    if field == "depends_on":
        return (
            f"depends_on changed ({_list(a.depends_on)} -> {_list(b.depends_on)}): the replay "
            "could start it at a different point"
        )
    if field == "trigger_rule":
        return (
            f"trigger_rule changed ({a.trigger_rule} -> {b.trigger_rule}): the same dependency "
            "results could run or skip it differently"
        )
    if field == "map":
        return "map added or removed: the checkpoint's records of this node have the other shape"
    if field == "when":
        return (
            "when changed: the replay could run a node the checkpoint skipped, or skip one it ran"
        )
    return "next changed: a replayed outcome could lead to a different node"


def _list(ids: tuple[str, ...]) -> str:
    return "[" + ", ".join(ids) + "]"


def _value(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _seconds(value: float | None) -> str:
    return "none" if value is None else format_duration(value)


def _input_spec(p: InputParam) -> str:
    return f"{p.type}, required" if p.required else f"{p.type}, default {_value(p.default)}"


def _inputs(old: Definition, new: Definition) -> tuple[list[str], list[str], list[str]]:
    """``other`` lines, blockers and notes about the declared inputs."""
    other: list[str] = []
    reasons: list[str] = []
    notes: list[str] = []
    for name, p in new.inputs.items():
        if name not in old.inputs:
            other.append(f"input {name} added ({_input_spec(p)})")
            if p.required:
                reasons.append(
                    f"input {name} is new and required: running executions were started without it"
                )
    for name, p in old.inputs.items():
        q = new.inputs.get(name)
        if q is None:
            other.append(f"input {name} removed")
            continue
        if p.type != q.type:
            other.append(f"input {name}: type {p.type} -> {q.type}")
        if p.required != q.required or p.default != q.default:
            other.append(f"input {name}: {_input_spec(p)} -> {_input_spec(q)}")
        if p.type != q.type or p.required != q.required or p.default != q.default:
            notes.append(
                f"input {name} changed: running executions keep the value they started with"
            )
    return other, reasons, notes


def _workflow(old: Definition, new: Definition) -> list[str]:
    other: list[str] = []
    if old.outputs != new.outputs:
        other.append("outputs changed")
    if old.timeout != new.timeout:
        other.append(f"timeout {_seconds(old.timeout)} -> {_seconds(new.timeout)}")
    if old.concurrency != new.concurrency:
        other.append(f"concurrency {old.concurrency or 'none'} -> {new.concurrency or 'none'}")
    if old.description != new.description:
        other.append("description changed")
    other.extend(_triggers(old, new))
    return other


_TRIGGER_FIELDS = (
    "cron",
    "timezone",
    "inputs",
    "overlap",
    "catch_up",
    "catch_up_window",
    "enabled",
)


def _triggers(old: Definition, new: Definition) -> list[str]:
    """``other`` lines about cron triggers: they start executions, running ones never notice."""
    before = {t.name: t for t in old.triggers}
    after = {t.name: t for t in new.triggers}
    lines = [f"trigger {name} added ({after[name].cron})" for name in after if name not in before]
    lines += [f"trigger {name} removed" for name in before if name not in after]
    for name, a in before.items():
        b = after.get(name)
        if b is None:
            continue
        fields = [f for f in _TRIGGER_FIELDS if getattr(a, f) != getattr(b, f)]
        if fields:
            lines.append(f"trigger {name}: {', '.join(fields)} changed")
    return lines


def _added_note(node: Node, new: Definition) -> str:
    if node.id in new.start_nodes:
        when = "starts when a running execution resumes"
    elif node.depends_on:
        when = (
            f"runs once {', '.join(node.depends_on)} finished, also in running executions that "
            "are past them"
        )
    else:
        when = "runs only when a transition leads to it"
    return f"node {node.id} is new: it {when}"


def diff_definitions(old: Definition, new: Definition) -> DefinitionDiff:
    """Compare two versions of a workflow; see the module docstring for ``can_continue``."""
    added = tuple(n.id for n in new.nodes if n.id not in old.by_id)
    removed = tuple(n.id for n in old.nodes if n.id not in new.by_id)
    reasons = [
        f"node {node_id} was removed: a running execution may already have run it"
        for node_id in removed
    ]
    notes: list[str] = []
    changed: list[NodeChange] = []
    for a in old.nodes:
        b = new.by_id.get(a.id)
        if b is None:
            continue
        fields = _node_fields(a, b)
        if not fields:
            continue
        changed.append(NodeChange(a.id, fields))
        reasons.extend(f"node {a.id}: {_why(f, a, b)}" for f in fields if f in _BLOCKING)
        if "map" in fields and (a.map is None) != (b.map is None):
            reasons.append(f"node {a.id}: {_why('map', a, b)}")
        noted = [f for f in fields if f not in _BLOCKING and f != "max_visits"]
        if "max_visits" in fields:
            if b.max_visits < a.max_visits and a.id in old.transition_targets:
                reasons.append(
                    f"node {a.id}: max_visits lowered ({a.max_visits} -> {b.max_visits}): an "
                    "execution that already entered it more often would fail on its next visit"
                )
            else:
                noted.append("max_visits")
        if noted:
            notes.append(
                f"node {a.id}: {', '.join(noted)} changed; runs that finished keep their "
                "outputs, later runs use the new definition"
            )
    notes.extend(_added_note(new.by_id[node_id], new) for node_id in added)
    inputs_other, inputs_reasons, inputs_notes = _inputs(old, new)
    reasons.extend(inputs_reasons)
    notes.extend(inputs_notes)
    return DefinitionDiff(
        added=added,
        removed=removed,
        changed=tuple(changed),
        other=tuple(inputs_other + _workflow(old, new)),
        can_continue=not reasons,
        reasons=tuple(reasons),
        notes=tuple(notes),
    )


def format_diff(d: DefinitionDiff, old: str, new: str) -> str:
    """The diff as text for the CLI: node lines, other changes, the verdict, then notes."""
    lines = [f"+ {node}" for node in d.added]
    lines += [f"- {node}" for node in d.removed]
    lines += [f"~ {c.node} ({', '.join(c.fields)})" for c in d.changed]
    lines += [f"* {line}" for line in d.other]
    if not lines:
        lines.append("no changes")
    if d.can_continue:
        lines.append(f"a running execution of {old} can continue on {new}")
    else:
        lines.append(f"a running execution of {old} cannot continue on {new}:")
        lines += [f"  - {reason}" for reason in d.reasons]
    if d.notes:
        lines.append("notes:")
        lines += [f"  - {note}" for note in d.notes]
    return "\n".join(lines)
