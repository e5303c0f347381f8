"""Build the discovery backend ``DISCOVERY`` names, from the orchestrator's settings.

The one place that maps settings fields to the backends' typed arguments; the backends never
see the settings object.
"""

from __future__ import annotations

from orchestrator.discovery import Discovery
from orchestrator.discovery.dns import DnsDiscovery
from orchestrator.discovery.kubernetes import KubernetesDiscovery
from orchestrator.discovery.static import StaticDiscovery
from orchestrator.settings import OrchestratorSettings


def make_discovery(settings: OrchestratorSettings) -> Discovery:
    """The backend for ``settings.discovery``; ``DiscoveryError`` if it cannot work."""
    if settings.discovery == "static":
        return StaticDiscovery(settings.engine_list())
    if settings.discovery == "dns":
        return DnsDiscovery(
            settings.engine_dns_name, settings.engine_port, settings.engine_discovery_interval
        )
    return KubernetesDiscovery(
        settings.k8s_namespace,
        mode=settings.k8s_watch,
        service_name=settings.k8s_service_name,
        label_selector=settings.k8s_label_selector,
        port=settings.engine_port,
        in_cluster=settings.in_cluster_config,
        kubeconfig=settings.kubeconfig or None,
        watch_timeout=settings.engine_discovery_interval,
    )
