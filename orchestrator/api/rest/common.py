"""What the REST routes share: the service layer (``Services``) and the error answers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engine.errors import DefinitionError, InputError
from orchestrator.api.errors import INTERNAL, classify
from orchestrator.api.rest.models import ErrorBody
from orchestrator.services import Services

log = logging.getLogger(__name__)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in [
        (401, "No or a wrong bearer token (when API_TOKEN is set)."),
        (404, "No such workflow, version, execution or trigger."),
        (409, "The current state forbids it (deprecated, in use, version conflict)."),
        (413, "The body is larger than MAX_REQUEST_BYTES."),
        (422, "Invalid input: every problem, with its path, in `issues`."),
        (429, "Every engine is busy and the wait queue is full: retry later."),
        (503, "The store is unavailable."),
    ]
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_argument",
    429: "too_many_requests",
}


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def error_json(
    status: int,
    code: str,
    message: str,
    issues: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "issues": issues or []}},
        status_code=status,
        headers=headers,
    )


async def on_error(request: Request, exc: Exception) -> JSONResponse:
    """The service layer's errors through the one table; anything else is a logged 500."""
    kind = classify(exc)
    if kind is None:
        log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        message = f"internal error: {type(exc).__name__}"
        return error_json(INTERNAL.http_status, INTERNAL.code, message)
    issues = None
    if isinstance(exc, DefinitionError | InputError):
        issues = [{"path": i.path, "message": i.message} for i in exc.issues]
    headers = {"Retry-After": "1"} if kind.http_status == 429 else None
    return error_json(kind.http_status, kind.code, str(exc), issues, headers)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own request checks, in the same shape: one issue per bad field."""
    assert isinstance(exc, RequestValidationError)
    issues = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:] or loc
        issues.append({"path": ".".join(loc), "message": str(error.get("msg", "is invalid"))})
    message = "; ".join(f"{i['path']}: {i['message']}" for i in issues) or "invalid request"
    return error_json(422, "invalid_argument", message, issues)


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "error")
    headers = dict(exc.headers) if exc.headers else None
    return error_json(exc.status_code, code, str(exc.detail), headers=headers)
