"""Shared by the API tests of long waits (REST and gRPC, docs/waits.md): the workflows they
register."""

from __future__ import annotations

APPROVAL = """
name: approval
version: 1.0.0
inputs:
  gate: {type: string, default: open}
nodes:
  - id: prepare
    python: "tests.support.tasks:gate"
    args: {name: "${inputs.gate}"}
  - id: D
    depends_on: [prepare]
    wait: {signal: approve, timeout: 1h}
    next: {AGREE: B, REJECT: C}
  - id: B
    lua: return {branch = "B"}
  - id: C
    lua: return {branch = "C"}
"""
CI = """
name: ci
version: 1.0.0
nodes:
  - id: A
    task: {queue: ci, timeout: 1h}
    next: {SUCCESS: B, AGREE: B, REJECT: C}
  - id: B
    lua: return {branch = "B"}
  - id: C
    lua: return {branch = "C"}
"""
NAP = """
name: nap
version: 1.0.0
timeout: 2h
nodes:
  - id: nap
    sleep: 1h
"""
