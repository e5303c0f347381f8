"""Kubernetes objects as the API server writes them (JSON), for the discovery tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Json = dict[str, Any]

ENGINE_LABELS = {"app.kubernetes.io/name": "weir-engine"}


def endpoint(ip: str, *, pod: str | None = None, ready: bool | None = True) -> Json:
    """One endpoint of an EndpointSlice; ``ready=None`` leaves the condition unset (nil)."""
    item: Json = {"addresses": [ip], "conditions": {"serving": ready is not False}}
    if ready is not None:
        item["conditions"]["ready"] = ready
    if pod is not None:
        item["targetRef"] = {"kind": "Pod", "namespace": "default", "name": pod}
    return item


def endpoint_slice(
    name: str,
    service: str,
    endpoints: list[Json],
    *,
    ports: list[tuple[str | None, int]] | None = None,
) -> Json:
    """An EndpointSlice of ``service`` (labelled ``kubernetes.io/service-name``)."""
    port_list = [("grpc", 50051)] if ports is None else ports
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [
            {"port": port, "protocol": "TCP", **({"name": n} if n is not None else {})}
            for n, port in port_list
        ],
    }


def pod(
    name: str,
    ip: str | None,
    *,
    ready: bool = True,
    phase: str = "Running",
    deleting: bool = False,
    labels: dict[str, str] | None = None,
) -> Json:
    """A pod with a Ready condition; ``deleting`` sets ``metadata.deletionTimestamp``."""
    metadata: Json = {"name": name, "labels": dict(ENGINE_LABELS if labels is None else labels)}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: Json = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip is not None:
        status["podIP"] = ip
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "engine", "image": "weir:test"}]},
        "status": status,
    }


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig whose one context points at ``server`` over plain HTTP, without auth."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": "anonymous", "user": {}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "anonymous"}}],
                "current-context": "fake",
            }
        )
    )
    return path


def status(code: int, reason: str, message: str) -> Json:
    """A ``metav1.Status`` failure, the body of API errors and of ERROR watch events."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
