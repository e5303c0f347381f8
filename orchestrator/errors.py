"""The errors of the ``orchestrator`` package (``engine.errors`` covers definitions and inputs).

    WeirError (engine.errors)
    └── OrchestratorError
        ├── NotFound           no workflow, version or execution with that name/id
        ├── AlreadyExists      that version is registered with a different definition
        ├── VersionConflict    a new version must be greater than the latest
        ├── QueueFull          every engine is busy and the wait queue is at its limit
        ├── InvalidSignal      a signal name no ``wait`` node of the execution's workflow waits for
        └── FailedPrecondition the request is valid but the current state forbids it (a
            │                  deprecated version, a version still in use)
            ├── TaskEnded      an answer for a task that already ended otherwise
            └── NotRetryable   a retry of an execution that is running, already retried,
                               completed (without a node to rerun from), or whose version
                               was deleted

    RpcError = weir.ApiError   a call to the orchestrator failed (client side; has a status)

``orchestrator.api`` maps each to one gRPC status code in a single table.
"""

from __future__ import annotations

from weir import ApiError

from engine.errors import WeirError


class OrchestratorError(WeirError):
    """The root of the orchestrator's own errors; the message names the id it is about."""


class NotFound(OrchestratorError):
    pass


class AlreadyExists(OrchestratorError):
    pass


class VersionConflict(OrchestratorError):
    pass


class QueueFull(OrchestratorError):
    pass


class InvalidSignal(OrchestratorError):
    """A signal name no ``wait`` node of the execution's workflow waits for."""


class FailedPrecondition(OrchestratorError):
    pass


class TaskEnded(FailedPrecondition):
    """An answer for a task that ended otherwise (superseded attempt, timeout, cancellation,
    another answer)."""


class NotRetryable(FailedPrecondition):
    """A retry the execution's state forbids; the message says why and what to do instead."""


RpcError = ApiError
"""A failed call to the orchestrator's API (client side): the SDK's ``weir.ApiError``, which
``weir.Client`` raises; the CLI turns it into its exit codes."""
