"""Rules a definition must satisfy beyond its shape: ids, references, cycles, executors.

Each check returns ``Issue``s whose paths point into the document as written
(``nodes[3].depends_on: unknown node 'lod'``), so ``weir validate`` can list every problem at once.
"""

from __future__ import annotations

import difflib
import functools
import re
import zoneinfo
from collections.abc import Iterable
from datetime import datetime

from croniter import croniter

from engine.definition.model import END
from engine.definition.schema import NodeDoc, TriggerDoc, WorkflowDoc
from engine.errors import Issue

CRON_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
_RANDOM_OR_HASHED = re.compile(r"(?<![A-Za-z])[HhRr](?![A-Za-z])")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_graph(doc: WorkflowDoc) -> list[Issue]:
    """Duplicate ids, unknown dependencies and targets, ``depends_on`` cycles, executors."""
    issues: list[Issue] = []
    first_at: dict[str, int] = {}
    for i, node in enumerate(doc.nodes):
        if node.id == END:
            issues.append(Issue(f"nodes[{i}].id", f"'{END}' is reserved: it ends a branch in next"))
        if node.id in first_at:
            issues.append(
                Issue(
                    f"nodes[{i}].id",
                    f"duplicate id '{node.id}' (first at nodes[{first_at[node.id]}])",
                )
            )
        else:
            first_at[node.id] = i
        issues.extend(_check_executor(i, node))
    ids = set(first_at)
    for i, node in enumerate(doc.nodes):
        seen: set[str] = set()
        for j, dep in enumerate(node.depends_on):
            path = f"nodes[{i}].depends_on[{j}]"
            if dep == node.id:
                issues.append(Issue(path, f"node '{node.id}' depends on itself"))
            elif dep not in ids:
                issues.append(Issue(path, f"unknown node '{dep}'{did_you_mean(dep, ids)}"))
            elif dep in seen:
                issues.append(Issue(path, f"'{dep}' is listed twice"))
            seen.add(dep)
        issues.extend(_check_next(i, node, ids))
    cycle = find_cycle(
        {n.id: [d for d in n.depends_on if d in ids and d != n.id] for n in doc.nodes}
    )
    if cycle:
        issues.append(Issue("nodes", "depends_on cycle: " + " -> ".join(cycle)))
    return issues


def trigger_name(index: int, trigger: TriggerDoc) -> str:
    """The trigger's name: as written, or ``cron-<index>``."""
    return trigger.name if trigger.name is not None else f"cron-{index}"


def check_triggers(doc: WorkflowDoc) -> list[Issue]:
    """Cron expressions, time zones and unique names of ``triggers``."""
    issues: list[Issue] = []
    first_at: dict[str, int] = {}
    for i, trigger in enumerate(doc.triggers):
        name = trigger_name(i, trigger)
        if name in first_at:
            issues.append(
                Issue(
                    f"triggers[{i}].name",
                    f"duplicate trigger name '{name}' (first at triggers[{first_at[name]}])",
                )
            )
        else:
            first_at[name] = i
        issues.extend(check_trigger(trigger, f"triggers[{i}]."))
    return issues


def check_trigger(trigger: TriggerDoc, prefix: str = "") -> list[Issue]:
    """The cron expression and the time zone of one trigger; paths start with ``prefix``."""
    issues = []
    problem = cron_problem(trigger.cron)
    if problem is not None:
        issues.append(Issue(f"{prefix}cron", problem))
    problem = timezone_problem(trigger.timezone)
    if problem is not None:
        issues.append(Issue(f"{prefix}timezone", problem))
    return issues


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron expression weir accepts, or None.

    Five fields (minute hour day-of-month month day-of-week, croniter's syntax with names,
    ranges, steps, ``L`` and ``#``) or one of ``CRON_ALIASES``. Seconds (croniter's sixth
    field) and its random (``R``) and hashed (``H``) forms are refused: replicas must agree on
    every tick.
    """
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in CRON_ALIASES:
            return (
                f"unknown cron alias '{text}'{did_you_mean(text.lower(), CRON_ALIASES)} "
                f"(aliases: {', '.join(CRON_ALIASES)})"
            )
    else:
        fields = text.split()
        if len(fields) != 5:
            return (
                f"invalid cron expression '{expression}': expected 5 fields (minute hour "
                f"day-of-month month day-of-week) or an alias like @daily, got {len(fields)}"
                + (" (seconds are not supported)" if len(fields) in (6, 7) else "")
            )
        if _RANDOM_OR_HASHED.search(text):
            return (
                f"invalid cron expression '{expression}': random (R) and hashed (H) fields "
                "are not supported"
            )
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)  # noqa: DTZ001 - wall clock
    except Exception as exc:  # croniter's errors have no common base besides ValueError/KeyError
        reason = str(exc).replace(f"[{text}] ", "") or type(exc).__name__
        if "failed to find next date" in reason:
            reason = "it matches no date"
        elif reason.startswith("is not acceptable"):
            reason = "a field is out of range or not understood"
        return f"invalid cron expression '{expression}': {reason}"
    return None


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone known here, or None."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone '{name}'{did_you_mean(name, _zones())}"
    return None


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_executor(i: int, node: NodeDoc) -> list[Issue]:
    present = node.executors()
    if not present:
        return [
            Issue(
                f"nodes[{i}]",
                f"node '{node.id}' has no executor: "
                "set one of lua, http, python, workflow, task, wait, noop, sleep",
            )
        ]
    if len(present) > 1:
        return [
            Issue(
                f"nodes[{i}]",
                f"node '{node.id}' has {len(present)} executors ({', '.join(present)}): "
                "a node takes exactly one",
            )
        ]
    key = present[0]
    if key != "noop" and getattr(node, key) is None:
        return [Issue(f"nodes[{i}].{key}", "must not be empty")]
    return []


def _check_next(i: int, node: NodeDoc, ids: set[str]) -> list[Issue]:
    if node.next is None:
        return []
    valid = ids | {END}
    issues = []
    if isinstance(node.next, dict):
        if not node.next:
            issues.append(Issue(f"nodes[{i}].next", "must name at least one transition"))
        for outcome, target in node.next.items():
            if target not in valid:
                issues.append(
                    Issue(
                        f"nodes[{i}].next.{outcome}",
                        f"unknown node '{target}'{did_you_mean(target, valid)}",
                    )
                )
    else:
        if not node.next:
            issues.append(Issue(f"nodes[{i}].next", "must list at least one edge"))
        for j, edge in enumerate(node.next):
            if edge.to not in valid:
                issues.append(
                    Issue(
                        f"nodes[{i}].next[{j}].to",
                        f"unknown node '{edge.to}'{did_you_mean(edge.to, valid)}",
                    )
                )
    return issues


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``edges`` (node -> nodes it points to) as ``[a, b, ..., a]``, or None.

    For ``depends_on`` edges the cycle reads "a depends on b ... depends on a".

    Iterative depth-first search, so 10,000-node chains do not hit the recursion limit.
    """
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(edges, white)
    for root in edges:
        if color[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        color[root] = grey
        while stack:
            node, index = stack[-1]
            targets = edges.get(node, [])
            if index < len(targets):
                stack[-1] = (node, index + 1)
                nxt = targets[index]
                if color.get(nxt, black) == grey:
                    path = [n for n, _ in stack]
                    return [*path[path.index(nxt) :], nxt]
                if color.get(nxt) == white:
                    color[nxt] = grey
                    stack.append((nxt, 0))
            else:
                color[node] = black
                stack.pop()
    return None


NO_START = Issue(
    "nodes",
    "no node starts the execution: every node waits for depends_on or is entered by a "
    "transition from another node",
)
