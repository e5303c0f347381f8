"""Rules a definition must satisfy beyond its shape: ids, references, cycles, executors.

Each check returns ``Issue``s whose paths point into the document as written
(``nodes[3].depends_on: unknown node 'lod'``), so ``weir validate`` can list every problem at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from engine.definition.model import END
from engine.definition.schema import NodeDoc, WorkflowDoc
from engine.errors import Issue


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


def _check_executor(i: int, node: NodeDoc) -> list[Issue]:
    present = node.executors()
    if not present:
        return [
            Issue(
                f"nodes[{i}]",
                f"node '{node.id}' has no executor: "
                "set one of lua, http, python, workflow, noop, sleep",
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
