"""The orchestrator's settings: the only place ``weir orchestrator`` and the CLI read the
environment.

Names follow the main seed's tables (``K8S_NAMESPACE``, ``LOAD_BALANCER_TYPE``, ``GRPC_PORT``,
``ENGINE_DISCOVERY_INTERVAL``, ...) plus weir's own (``DISCOVERY``, ``ENGINES``, ...). Every one
is documented in the README's configuration table with its default.
"""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field, model_validator

from engine.settings import EnvSettings, Port, Seconds, SettingsError, default_host_id
from orchestrator.discovery import DiscoveryError
from orchestrator.discovery.static import split_host_port

__all__ = ["ClientSettings", "OrchestratorSettings", "SettingsError"]


class OrchestratorSettings(EnvSettings):
    """Environment variables of ``weir orchestrator``."""

    orchestrator_id: str = Field(default_factory=default_host_id, min_length=1)
    bind_address: str = "0.0.0.0"
    grpc_port: Port = 50051
    """Port of the public gRPC API (Orchestrator service, grpc.health.v1, reflection)."""
    http_port: int = Field(default=8080, ge=0, le=65535)
    """Port of the REST API, ``POST /trigger/{workflow}``, Server-Sent Events and ``/metrics``
    (0 picks a free one, for tests)."""
    api_token: str = ""
    """When set, every REST and gRPC call but health and metrics needs ``Authorization: Bearer
    <API_TOKEN>``."""
    ui_enabled: bool = True
    """Serve the web UI at ``/ui`` on ``HTTP_PORT`` (docs/ui.md); false serves the APIs only."""
    max_request_bytes: int = Field(default=1 << 20, ge=1024)
    """Largest REST request body accepted; larger ones get 413."""
    subscriber_buffer: int = Field(default=10_000, ge=1)
    """Events a live subscriber (SSE, WatchEvents) may fall behind before it is cut off with a
    ``lagged`` notice (it then resumes from the store)."""
    transport_type: Literal["grpc"] = "grpc"
    """How the orchestrator talks to engines; gRPC streams are the one transport."""
    discovery: Literal["static", "dns", "kubernetes"] = "static"
    engines: str = ""
    """static discovery: ``host:port,host:port``."""
    engine_port: Port = 50051
    """dns and kubernetes (pods) discovery: the engines' gRPC port."""
    engine_dns_name: str = "weir-engine"
    """dns discovery: the headless Service name whose A records are the engines."""
    k8s_namespace: str = "default"
    k8s_watch: Literal["endpointslices", "pods"] = "endpointslices"
    """kubernetes discovery: watch the Service's EndpointSlices, or pods by label selector."""
    k8s_service_name: str = "weir-engine"
    k8s_label_selector: str = "app.kubernetes.io/name=weir-engine"
    in_cluster_config: bool = True
    """Use the pod's service account; false reads the kubeconfig (``KUBECONFIG`` or ~/.kube)."""
    kubeconfig: str = ""
    load_balancer_type: Literal["consistent-hash", "round-robin"] = "consistent-hash"
    engine_discovery_interval: Seconds = 30.0
    """dns: how often to re-resolve; kubernetes: the watch timeout before a fresh watch."""
    engine_health_check_interval: Seconds = 10.0
    engine_health_check_timeout: Seconds = 2.0
    max_queued_executions: int = Field(default=10_000, ge=0)
    """Executions waiting for room on an engine; beyond this, starts fail RESOURCE_EXHAUSTED."""
    store_url: str = "sqlite:///weir.db"
    """Where state lives: ``sqlite:///path`` (a file; WAL mode), ``postgresql://user@host/db``
    (several orchestrators may share it), or ``memory://`` (nothing survives a restart)."""
    execution_retention: Seconds = 7 * 86400.0
    """Finished executions older than this are deleted, with their node runs and events."""
    max_subworkflow_depth: int = Field(default=10, ge=1, le=1000)
    """Sub-workflows nested deeper than this fail instead of recursing forever."""
    reattach_timeout: Seconds = 15.0
    """After a restart: how long an execution waits for its engine to re-attach it before it is
    re-placed from its checkpoint."""
    triggers_enabled: bool = True
    """Fire the workflows' cron triggers (docs/triggers.md); false leaves them to other
    orchestrators sharing the store, or off."""
    trigger_interval: Seconds = 10.0
    """Longest sleep of the trigger loop between passes (it wakes sooner for a due tick and
    when a workflow or a trigger changes)."""
    public_url: str = ""
    """The orchestrator's HTTP base URL as the services called by ``http.callback`` nodes reach
    it (callback URLs and the FSL protocol's ``/step`` are built on it); empty:
    ``http://<host>:HTTP_PORT``, with this host's name when binding all interfaces."""
    log_level: str = "INFO"

    def callback_base(self, http_port: int) -> str:
        """``PUBLIC_URL``, or the URL this process's HTTP port is reachable at."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.bind_address
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{http_port}"

    @model_validator(mode="after")
    def _static_needs_engines(self) -> OrchestratorSettings:
        if self.discovery == "static":
            for item in self.engine_list():
                try:
                    split_host_port(item)
                except DiscoveryError:
                    raise ValueError(f"ENGINES entry {item!r} is not host:port") from None
        return self

    def engine_list(self) -> list[str]:
        return [e.strip() for e in self.engines.split(",") if e.strip()]


class ClientSettings(EnvSettings):
    """What the ``weir`` client commands read: where the orchestrator is."""

    weir_server: str = "127.0.0.1:50051"
    weir_token: str = ""
    """Sent as ``Authorization: Bearer`` when the orchestrator has an ``API_TOKEN``."""
    weir_timeout: Seconds = 30.0
