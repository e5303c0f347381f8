"""``OrchestratorStats``: a frozen snapshot of the orchestrator's state, for the metrics.

Each part answers for itself (``Placement.stats``, ``EngineLink.info``, ``Supervisor.stats``);
the wiring assembles them on demand (``Orchestrator.stats``), so readers such as the metrics
never look inside a part.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.engines.link import LinkInfo
from orchestrator.placement import PlacementStats
from orchestrator.supervise import SupervisorStats


@dataclass(frozen=True, slots=True)
class OrchestratorStats:
    placement: PlacementStats
    engines: tuple[LinkInfo, ...]
    """Every engine link, by id."""
    stale_reports: int
    """Engine reports ignored: an older lease, or an engine the execution left."""
    subscriber_drops: int
    """Event subscribers cut off because they fell a whole buffer behind."""
    store_failed: bool
    background: SupervisorStats
    parked: int = 0
    """Executions parked (status ``waiting``): they only wait, no engine holds them."""

    def placed_on(self, link_id: str) -> int:
        """Executions placed on that engine link and not ended."""
        return dict(self.placement.placed).get(link_id, 0)
