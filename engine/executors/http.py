"""The ``http`` executor: one request through a shared ``httpx.AsyncClient``.

2xx succeeds and the JSON body (or the text, or None when empty) is the output; 5xx, timeouts and
connection errors are retryable; any other status is not.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from engine.errors import HttpTaskError

DEFAULT_TIMEOUT = 60.0


async def request(
    client: httpx.AsyncClient,
    *,
    method: str,
    url: Any,
    headers: Any,
    json_body: Any = None,
    body: Any = None,
    has_json: bool = False,
    deadline: float | None = None,
) -> Any:
    """Send the request and return the output, or raise ``HttpTaskError``."""
    if not isinstance(url, str) or not url:
        raise HttpTaskError(f"url must render to a non-empty string, got {url!r}", retryable=False)
    if not isinstance(headers, dict):
        raise HttpTaskError("headers must render to a mapping", retryable=False)
    kwargs: dict[str, Any] = {"headers": {str(k): str(v) for k, v in headers.items()}}
    if has_json:
        kwargs["json"] = json_body
    elif body is not None:
        kwargs["content"] = body if isinstance(body, str | bytes) else json.dumps(body)
    try:
        response = await client.request(method, url, timeout=deadline or DEFAULT_TIMEOUT, **kwargs)
    except httpx.TimeoutException:
        raise HttpTaskError(
            f"{method} {url}: no answer within {deadline or DEFAULT_TIMEOUT:g}s"
        ) from None
    except httpx.InvalidURL as exc:
        raise HttpTaskError(f"{method} {url}: invalid URL: {exc}", retryable=False) from None
    except httpx.UnsupportedProtocol as exc:
        raise HttpTaskError(f"{method} {url}: {exc}", retryable=False) from None
    except httpx.TransportError as exc:
        raise HttpTaskError(
            f"{method} {url}: connection failed: {exc or type(exc).__name__}"
        ) from None
    status = response.status_code
    if 200 <= status < 300:
        return _output(response)
    snippet = response.text[:300].strip()
    message = f"{method} {url} answered {status}" + (f": {snippet}" if snippet else "")
    raise HttpTaskError(message, retryable=status >= 500 or status in (408, 429))


def _output(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def field(value: Any, path: str) -> Any:
    """``field({"a": {"b": 1}}, "a.b") == 1``; raises ``KeyError`` naming the missing part."""
    current = value
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise KeyError(part)
    return current
