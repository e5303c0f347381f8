"""Static discovery: a fixed list of engines (``ENGINES=host:port,host:port``).

Also home of the ``host:port`` helpers every backend shares: IPv6 hosts are written in brackets
(``[fd00::1]:50051``), as gRPC channel targets expect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from orchestrator.discovery import DiscoveryError, EngineEndpoint


def join_host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(entry: str) -> tuple[str, int]:
    """Parse ``host:port`` or ``[ipv6]:port``; ``DiscoveryError`` names the entry otherwise."""
    if entry.startswith("["):
        host, close, port = entry[1:].partition("]:")
        valid_host = bool(close) and bool(host) and "]" not in host
    else:
        host, _, port = entry.rpartition(":")
        valid_host = bool(host) and ":" not in host  # a bare IPv6 address is ambiguous
    if not valid_host or any(c.isspace() or c in "/[]" for c in host):
        raise DiscoveryError(f"engine address {entry!r} is not host:port")
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise DiscoveryError(f"engine address {entry!r} has no valid port (1-65535)")
    return host, int(port)


class StaticDiscovery:
    """The same engines forever; each one's id is its address as written."""

    def __init__(self, addresses: Sequence[str]) -> None:
        if isinstance(addresses, str):
            raise DiscoveryError("StaticDiscovery takes a list of addresses, not one string")
        for address in addresses:
            split_host_port(address)
        self._endpoints = frozenset(EngineEndpoint(a, a) for a in addresses)

    async def updates(self) -> AsyncIterator[frozenset[EngineEndpoint]]:
        """Yield the configured set once, then wait until cancelled: it never changes."""
        yield self._endpoints
        await asyncio.Event().wait()
