"""The weir engine: workflow definitions, the execution state machine, executors and runners.

    from engine import Workflow, load_file, run_workflow

``engine`` never imports ``orchestrator``; the orchestrator validates definitions with this very
code.
"""

from engine.definition import Definition, Workflow, load_file, loads, resolve_inputs
from engine.errors import DefinitionError, InputError, TaskError, WeirError
from engine.local import LocalWorkflows, run_workflow

__all__ = [
    "Definition",
    "DefinitionError",
    "InputError",
    "LocalWorkflows",
    "TaskError",
    "WeirError",
    "Workflow",
    "load_file",
    "loads",
    "resolve_inputs",
    "run_workflow",
]
