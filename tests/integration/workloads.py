"""Workloads the integration tests share: a side-effect counter and a long workflow."""

from __future__ import annotations

import json

from tests.support.hits import Hits, hits_server

__all__ = ["Hits", "hits_server", "long_workflow"]


def long_workflow(steps: int, pause: str) -> str:
    nodes = []
    previous = None
    for i in range(1, steps + 1):
        hit = {
            "id": f"hit{i}",
            "http": {
                "method": "POST",
                "url": "${inputs.url}",
                "json": {"execution": "${execution.id}", "node": f"hit{i}"},
            },
        }
        wait = {"id": f"wait{i}", "sleep": pause, "depends_on": [f"hit{i}"]}
        if previous:
            hit["depends_on"] = [previous]
        nodes += [hit, wait]
        previous = f"wait{i}"
    return json.dumps(
        {
            "name": "long",
            "version": "1.0.0",
            "inputs": {"url": {"type": "string"}},
            "nodes": nodes,
        }
    )
