"""The errors of the ``engine`` package.

Every error carries the path or id it is about, so a user can find the cause without a traceback.

    WeirError
    ├── DefinitionError        a workflow definition is invalid (a list of Issues, each with a path)
    ├── InputError             execution inputs do not match the declaration (Issues, too)
    └── TaskError              one attempt of one node failed; ``retryable``: may a retry help?
        ├── TemplateError      a ``${...}`` template or ``when`` expression could not be evaluated
        ├── LuaError           a Lua node raised ``error(...)`` or hit a runtime error
        │   └── LuaLimitError  the sandbox stopped it: instruction budget, memory cap or wall clock
        ├── HttpTaskError      an HTTP node got a non-2xx answer or no answer
        ├── PythonTaskError    a ``python`` node raised, or its function could not be imported
        └── NodeTimeoutError   the node's ``timeout`` elapsed
"""

from __future__ import annotations

from dataclasses import dataclass


class WeirError(Exception):
    """The root of every error weir raises on purpose."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in user input: where it is (``nodes[3].depends_on``) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class _IssuesError(WeirError):
    def __init__(self, issues: list[Issue], *, source: str = "") -> None:
        self.issues = list(issues)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(f"{prefix}{issue}" for issue in self.issues))


class DefinitionError(_IssuesError):
    """A workflow definition is invalid; ``issues`` lists every problem, each with its path."""


class InputError(_IssuesError):
    """Execution inputs are undeclared, missing or of the wrong type."""


class TaskError(WeirError):
    """One attempt of one node failed.

    ``retryable`` is False when running the same attempt again cannot succeed (a 4xx answer, a
    template that does not evaluate, a missing Python function, an exhausted Lua budget).
    """

    retryable: bool = True

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class TemplateError(TaskError):
    """A template or expression failed to evaluate."""

    retryable = False


class LuaError(TaskError):
    """A Lua chunk raised an error; the message carries the chunk name and line."""


class LuaLimitError(LuaError):
    """The Lua sandbox stopped a chunk: instruction budget, memory cap or wall-clock timeout."""

    retryable = False


class HttpTaskError(TaskError):
    """An HTTP node failed: 5xx and connection errors are retryable, 4xx are not."""


class PythonTaskError(TaskError):
    """A ``python`` node's function raised, or could not be imported."""


class NodeTimeoutError(TaskError):
    """A node attempt ran past its ``timeout``."""
