"""The product's import graph: no cycle among its modules, and ``engine`` never imports
``orchestrator``.

Every ``import`` statement counts, wherever it is: at the top, inside a function (a deferred
import), or under ``if TYPE_CHECKING:`` (a type-only import is still a dependency a reader must
follow). ``from package import name`` is an edge to the submodule ``package.name`` when there is
one, else to the package itself (its ``__init__``); a package is not counted as importing its
parent (Python runs the parent's ``__init__`` first, but nothing there depends on the child).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("engine", "orchestrator")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The product modules ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _path(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """One cycle through ``start`` inside ``members``, for the failure message."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    return [start]


def test_the_graph_sees_the_modules_and_their_imports() -> None:
    assert {"engine.driver", "orchestrator.wiring", "orchestrator.store.sql"} <= set(GRAPH)
    assert "orchestrator.lifecycle" in GRAPH["orchestrator.wiring"]
    assert "orchestrator.store.tables" in GRAPH["orchestrator.store.sql"]  # from pkg import mod


def test_no_import_cycle_among_the_products_modules() -> None:
    cycles = _cycles(GRAPH)
    shown = [" -> ".join(_path(GRAPH, c[0], set(c))) for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(shown)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("engine")))
def test_the_engine_never_imports_the_orchestrator(module: str) -> None:
    assert not {t for t in GRAPH[module] if t.startswith("orchestrator")}


def test_a_cycle_is_found_and_shown() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _path(graph, "a", {"a", "b", "c"}) == ["a", "b", "c", "a"]
