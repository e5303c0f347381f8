"""The gRPC side of ``API_TOKEN``: every call but health checks needs the bearer token.

Clients send ``authorization: Bearer <token>`` metadata (``weir`` does when ``WEIR_TOKEN`` is
set). The REST side is ``orchestrator.api.rest.middleware.BearerToken``.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
MESSAGE = "no or a wrong bearer token: send 'authorization: Bearer <API_TOKEN>' metadata"


async def _deny_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, MESSAGE)


async def _deny_stream(
    request: Any, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[Any]:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, MESSAGE)
    yield  # pragma: no cover - makes this an async generator


class TokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def _allowed(self, details: grpc.HandlerCallDetails) -> bool:
        if details.method.startswith(OPEN_PREFIXES):
            return True
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(given, self._expected)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or self._allowed(handler_call_details):
            return handler
        deserialize = handler.request_deserializer
        serialize = handler.response_serializer
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(_deny_stream, deserialize, serialize)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(_deny_unary, deserialize, serialize)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(_deny_stream, deserialize, serialize)
        return grpc.unary_unary_rpc_method_handler(_deny_unary, deserialize, serialize)
