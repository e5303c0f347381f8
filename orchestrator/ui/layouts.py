"""``Layouts``: the UI's cache of laid-out graphs, one per workflow version and expanded set.

A registered version never changes, so its layout is computed once (a 1,000-node graph takes
milliseconds, but every page load and live refresh would pay them) and kept while it is among
the ``size`` most recently used. Keyed by the version's digest, so two versions that share a
name and number in different stores (tests, a re-created database) never share a layout.
"""

from __future__ import annotations

from collections import OrderedDict

from orchestrator.registry import WorkflowVersion
from orchestrator.ui.graph import Graph, build_graph


class Layouts:
    """Graph layouts by (version digest, expanded groups, everything expanded)."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._graphs: OrderedDict[tuple[str, frozenset[str], bool], Graph] = OrderedDict()

    def of(self, wf: WorkflowVersion, expand: frozenset[str], expand_all: bool) -> Graph:
        key = (wf.digest, expand, expand_all)
        graph = self._graphs.get(key)
        if graph is None:
            graph = build_graph(wf.definition, expand=expand, expand_all=expand_all)
            self._graphs[key] = graph
            if len(self._graphs) > self._size:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        return graph
