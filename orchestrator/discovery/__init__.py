"""Finding engines: each backend yields the full set of ready engines whenever it changes.

Backends (chosen by ``DISCOVERY``):

- ``static``: a fixed ``ENGINES=host:port,...`` list (``discovery/static.py``)
- ``dns``: the A records of a headless Service, re-resolved every interval (``discovery/dns.py``)
- ``kubernetes``: EndpointSlices of a Service, or pods by label selector, through the official
  client's list + watch (``discovery/kubernetes.py``)

Membership is all discovery decides. Whether an engine is healthy is the engine links' business
(gRPC health checks and the stream); placement only uses engines that are both discovered and
healthy.

Errors::

    DiscoveryError          configuration that cannot work (raised at construction)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class DiscoveryError(Exception):
    """Discovery is misconfigured (bad ENGINES entry, missing kubeconfig, ...)."""


@dataclass(frozen=True, slots=True, order=True)
class EngineEndpoint:
    """One engine as discovery sees it.

    ``id`` is stable for the engine's lifetime and is what the hash ring keys on: the pod name
    in Kubernetes, otherwise the address. ``address`` is ``host:port`` for a gRPC channel.
    """

    id: str
    address: str


class Discovery(Protocol):
    """A source of engine membership."""

    def updates(self) -> AsyncIterator[frozenset[EngineEndpoint]]:
        """Yield the complete set of ready engines: once at start, then after every change.

        Runs until cancelled. Transient failures (API server unreachable, DNS timeout) are
        logged and retried with backoff, keeping the last known set; they never end the iterator.
        """
        ...
