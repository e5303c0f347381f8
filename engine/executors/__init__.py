"""Executors: run one attempt of a node (``NodeRunner``) with Lua, HTTP, Python, sub-workflow,
noop and sleep tasks."""

from engine.executors.node import ExecutionContext, NodeRunner, SubWorkflowLauncher

__all__ = ["ExecutionContext", "NodeRunner", "SubWorkflowLauncher"]
