"""``EngineFleet``: which engines the orchestrator talks to, one ``EngineLink`` each.

Discovery decides membership (``run`` follows its updates): an engine that appears gets a link;
one that disappears, or comes back at another address (a restarted pod), has its link closed and
its handler told (``FleetHandler.removed``) so its executions are re-placed. Everything else about
an engine — readiness, its stream, what it reports — goes from its link to the handler directly.

The links live in ``EngineLinks``, a directory the fleet alone changes and the other parts read
(``get``): placement, the lifecycle and sub-workflows find an engine there by link id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from orchestrator.discovery import Discovery, EngineEndpoint
from orchestrator.engines.link import EngineLink, LinkInfo
from orchestrator.engines.messages import FleetHandler
from orchestrator.supervise import Supervisor

log = logging.getLogger(__name__)


class EngineLinks:
    """The current engine links by link id (changed by ``EngineFleet`` only)."""

    def __init__(self) -> None:
        self._links: dict[str, EngineLink] = {}

    def get(self, link_id: str) -> EngineLink | None:
        return self._links.get(link_id)

    def infos(self) -> list[LinkInfo]:
        """Every link's snapshot, by id."""
        return [self._links[i].info() for i in sorted(self._links)]

    def ids(self) -> list[str]:
        return list(self._links)

    def put(self, link: EngineLink) -> None:
        self._links[link.id] = link

    def pop(self, link_id: str) -> EngineLink:
        return self._links.pop(link_id)

    def clear(self) -> list[EngineLink]:
        links = list(self._links.values())
        self._links.clear()
        return links


class EngineFleet:
    """Follows discovery and keeps ``links`` matching it; see the module docstring."""

    def __init__(
        self,
        discovery: Discovery,
        links: EngineLinks,
        handler: FleetHandler,
        supervisor: Supervisor,
        *,
        orchestrator_id: str,
        health_interval: float,
        health_timeout: float,
    ) -> None:
        self._discovery = discovery
        self._links = links
        self._handler = handler
        self._supervisor = supervisor
        self._orchestrator_id = orchestrator_id
        self._health_interval = health_interval
        self._health_timeout = health_timeout
        self._closed = False

    async def run(self) -> None:
        """Follow discovery until cancelled."""
        async for endpoints in self._discovery.updates():
            await self.apply(endpoints)

    async def apply(self, endpoints: Iterable[EngineEndpoint]) -> None:
        """Make the links match ``endpoints`` (nothing once stopped)."""
        if self._closed:
            return
        wanted = {e.id: e for e in endpoints}
        for link_id in [i for i in self._links.ids() if i not in wanted]:
            link = self._links.pop(link_id)
            await link.stop()
            self._handler.removed(link, "left discovery")
        for link_id, endpoint in wanted.items():
            current = self._links.get(link_id)
            if current is not None and current.address == endpoint.address:
                continue
            if current is not None:  # same id, new address (a restarted pod)
                await current.stop()
                self._handler.removed(current, "moved")
            link = EngineLink(
                endpoint,
                self._handler,
                self._supervisor,
                orchestrator_id=self._orchestrator_id,
                health_interval=self._health_interval,
                health_timeout=self._health_timeout,
            )
            self._links.put(link)
            log.info("discovered engine %s at %s", link_id, endpoint.address)
            await link.start()

    async def stop(self) -> None:
        """Close every link (the handler is not told) and take no more; idempotent."""
        self._closed = True
        await asyncio.gather(*(link.stop() for link in self._links.clear()))
