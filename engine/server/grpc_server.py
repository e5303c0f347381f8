"""What every weir gRPC server has: grpc.health.v1, server reflection, sane options.

Shared by the engine and the orchestrator (which imports it; the engine never imports back).
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from weir.channel import MAX_MESSAGE_BYTES

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.so_reuseport", 0),
]


def new_server(interceptors: Iterable[grpc.aio.ServerInterceptor] = ()) -> grpc.aio.Server:
    return grpc.aio.server(options=SERVER_OPTIONS, interceptors=list(interceptors) or None)


def add_health_and_reflection(
    server: grpc.aio.Server, service_names: Iterable[str]
) -> health.aio.HealthServicer:
    """Serve grpc.health.v1 (SERVING for "" and each service) and reflection for them."""
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    names = list(service_names)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    return servicer


async def set_serving(servicer: health.aio.HealthServicer, service_names: Iterable[str]) -> None:
    """Mark the server and each service SERVING (``enter_graceful_shutdown`` undoes it)."""
    for name in ["", *service_names]:
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


async def set_not_serving(
    servicer: health.aio.HealthServicer, service_names: Iterable[str]
) -> None:
    """Mark the server and each service NOT_SERVING (it can be SERVING again later)."""
    for name in ["", *service_names]:
        await servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)


def bind(server: grpc.aio.Server, address: str, port: int) -> int:
    """Listen on ``address:port`` (port 0 picks one); return the port. Raises ``OSError``."""
    host = f"[{address}]" if ":" in address else address
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {address}:{port}")
    return bound
