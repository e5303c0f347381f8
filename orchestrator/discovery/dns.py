"""DNS discovery: the A/AAAA records of a headless Service, re-resolved every interval.

A headless Service's name resolves to one record per *ready* pod, so the records are the
engines. Each engine's id is its address (``ip:port``): DNS carries no pod names.

Outcomes of one resolution:

- addresses: the new set, yielded if it differs from the last one.
- the name does not exist (NXDOMAIN, ``EAI_NONAME``) or has no address records (``EAI_NODATA``):
  an *empty* set. This is what a headless Service with zero ready endpoints answers, so it is a
  real membership state, not an outage; a warning is logged when it starts, since a misspelt
  name looks the same.
- anything else (timeout, ``EAI_AGAIN``, no resolver): a warning, the last set is kept, and the
  next interval tries again. Nothing is yielded until a first resolution succeeds.

Resolution uses ``loop.getaddrinfo`` (the loop's executor, never blocking the loop) unless a
resolver is injected: an async callable returning the IP addresses of a name and raising
``socket.gaierror`` the way ``getaddrinfo`` does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from orchestrator.discovery import DiscoveryError, EngineEndpoint
from orchestrator.discovery.static import join_host_port

_log = logging.getLogger(__name__)

Resolver = Callable[[str], Awaitable[Sequence[str]]]

_NO_SUCH_NAME = frozenset(
    {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}  # EAI_NODATA: glibc
)


async def resolve_ips(name: str) -> list[str]:
    """The IPv4 and IPv6 addresses of ``name``, through ``loop.getaddrinfo``."""
    infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for *_, sockaddr in infos]


class DnsDiscovery:
    """Engines are the addresses ``name`` resolves to, each on ``port``."""

    def __init__(
        self,
        name: str,
        port: int,
        interval: float,
        resolve: Resolver | None = None,
        *,
        timeout: float = 5.0,
    ) -> None:
        if not name:
            raise DiscoveryError("DNS discovery needs a name to resolve (ENGINE_DNS_NAME)")
        if not 0 < port < 65536:
            raise DiscoveryError(f"DNS discovery port {port} is not in 1-65535 (ENGINE_PORT)")
        if interval <= 0 or timeout <= 0:
            raise DiscoveryError("DNS discovery interval and timeout must be positive")
        self._name = name
        self._port = port
        self._interval = interval
        self._timeout = timeout
        self._resolve = resolve_ips if resolve is None else resolve

    async def updates(self) -> AsyncIterator[frozenset[EngineEndpoint]]:
        """Yield the set at start and after every change; resolve every ``interval`` seconds."""
        current: frozenset[EngineEndpoint] | None = None
        while True:
            found = await self._resolve_once(current)
            if found is not None and found != current:
                current = found
                yield found
            await asyncio.sleep(self._interval)

    async def _resolve_once(
        self, current: frozenset[EngineEndpoint] | None
    ) -> frozenset[EngineEndpoint] | None:
        """The endpoints ``name`` stands for now, or None when resolution failed."""
        try:
            async with asyncio.timeout(self._timeout):
                ips = await self._resolve(self._name)
        except socket.gaierror as exc:
            if exc.errno in _NO_SUCH_NAME:
                if current:
                    _log.warning("%s no longer resolves (%s): no engines", self._name, exc)
                elif current is None:
                    _log.warning("%s does not resolve (%s): no engines yet", self._name, exc)
                return frozenset()
            self._keep(current, str(exc))
            return None
        except TimeoutError:
            self._keep(current, f"no answer within {self._timeout:g}s")
            return None
        except OSError as exc:
            self._keep(current, str(exc))
            return None
        addresses = {join_host_port(ip, self._port) for ip in ips}
        return frozenset(EngineEndpoint(a, a) for a in addresses)

    def _keep(self, current: frozenset[EngineEndpoint] | None, reason: str) -> None:
        kept = "no engines known yet" if current is None else f"keeping {len(current)} engines"
        _log.warning(
            "resolving %s failed (%s); %s, retrying in %gs",
            self._name,
            reason,
            kept,
            self._interval,
        )
