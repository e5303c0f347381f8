"""One table from the service layer's errors to what each API answers.

Both APIs map an error through ``classify``: gRPC aborts with ``grpc_code``, REST answers
``http_status`` with the body ``{"error": {"code": ..., "message": ..., "issues": [...]}}``.
The message is the error's own (it names the field, workflow or id); a traceback never reaches
a client: anything not in the table is logged and answered as an internal error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from engine.errors import DefinitionError, InputError, WeirError
from engine.server import codec
from orchestrator.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidReport,
    InvalidSignal,
    NotFound,
    NotRetryable,
    QueueFull,
    TaskEnded,
    VersionConflict,
)
from orchestrator.store import StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ErrorKind:
    grpc_code: grpc.StatusCode
    http_status: int
    code: str
    """Stable, machine-readable: REST's ``error.code``."""


INTERNAL = ErrorKind(grpc.StatusCode.INTERNAL, 500, "internal")

ERRORS: list[tuple[type[Exception], ErrorKind]] = [
    (DefinitionError, ErrorKind(grpc.StatusCode.INVALID_ARGUMENT, 422, "invalid_definition")),
    (InvalidReport, ErrorKind(grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_report")),
    (InvalidSignal, ErrorKind(grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_signal")),
    (InputError, ErrorKind(grpc.StatusCode.INVALID_ARGUMENT, 422, "invalid_argument")),
    (codec.CodecError, ErrorKind(grpc.StatusCode.INVALID_ARGUMENT, 422, "invalid_argument")),
    (NotFound, ErrorKind(grpc.StatusCode.NOT_FOUND, 404, "not_found")),
    (AlreadyExists, ErrorKind(grpc.StatusCode.ALREADY_EXISTS, 409, "already_exists")),
    (VersionConflict, ErrorKind(grpc.StatusCode.FAILED_PRECONDITION, 409, "version_conflict")),
    (TaskEnded, ErrorKind(grpc.StatusCode.FAILED_PRECONDITION, 409, "task_ended")),
    (NotRetryable, ErrorKind(grpc.StatusCode.FAILED_PRECONDITION, 409, "not_retryable")),
    (
        FailedPrecondition,
        ErrorKind(grpc.StatusCode.FAILED_PRECONDITION, 409, "failed_precondition"),
    ),
    (QueueFull, ErrorKind(grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "queue_full")),
    (StoreError, ErrorKind(grpc.StatusCode.UNAVAILABLE, 503, "unavailable")),
    (WeirError, ErrorKind(grpc.StatusCode.FAILED_PRECONDITION, 409, "failed_precondition")),
]


def classify(exc: BaseException) -> ErrorKind | None:
    """The table's entry for ``exc``; ``None`` for an error nobody meant (a bug)."""
    for kind, entry in ERRORS:
        if isinstance(exc, kind):
            return entry
    return None


async def abort(context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> NoReturn:
    """End a gRPC call with ``exc`` mapped through the table; an error nobody meant is logged
    with its traceback and answered INTERNAL with its type only."""
    kind = classify(exc)
    if kind is None:
        log.exception("internal error", exc_info=exc)
        await context.abort(INTERNAL.grpc_code, f"internal error: {type(exc).__name__}")
    await context.abort(kind.grpc_code, str(exc))
