"""What every REST request passes through before a route: the bearer token and the size limit.

Both are plain ASGI middleware (no per-request task or body copy beyond the limit), and both
answer with the API's error shape.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/step"})
"""Served without a token: probes, Prometheus, and ``POST /step``, which the task token in its
body authorises (an FSL action service holds a task's token, not the API's)."""
UI_PREFIX = "/ui"
"""The web UI checks its own session cookie (``orchestrator.ui.session``): a browser cannot send
the bearer token, and the UI asks for it once on its sign-in page."""


async def send_error(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "issues": []}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BearerToken:
    """Requires ``Authorization: Bearer <token>`` on every path but ``OPEN_PATHS`` and the UI's."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["type"] != "http" or path in OPEN_PATHS or _under(path, UI_PREFIX):
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if not hmac.compare_digest(given, self._expected):
            what = "a wrong" if given else "no"
            await send_error(
                send,
                401,
                "unauthenticated",
                f"{what} bearer token: send 'Authorization: Bearer <API_TOKEN>'",
                {"WWW-Authenticate": 'Bearer realm="weir"'},
            )
            return
        await self.app(scope, receive, send)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class BodyLimit:
    """Answers 413 to a request whose body is larger than ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before any of the body is read; a
    chunked body is read up to the limit and refused as soon as it goes over.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await send_error(send, 400, "invalid_argument", "Content-Length is not a number")
                return
            if declared > self.limit:
                await self._too_large(send)
                return
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    async def _too_large(self, send: Send) -> None:
        await send_error(
            send,
            413,
            "payload_too_large",
            f"the request body is larger than {self.limit} bytes (MAX_REQUEST_BYTES)",
        )
