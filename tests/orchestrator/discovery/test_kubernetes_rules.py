"""Kubernetes discovery's readiness rules, table-driven on the official client's own models."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import V1EndpointSlice, V1Pod

from orchestrator.discovery import EngineEndpoint
from orchestrator.discovery.kubernetes import pod_endpoint, slice_endpoints
from tests.orchestrator.discovery.manifests import endpoint, endpoint_slice, pod

SERVICE = "weir-engine"


@pytest.mark.parametrize(
    ("endpoints", "ports", "expected"),
    [
        pytest.param(
            [endpoint("10.0.0.1", pod="e-0")],
            None,
            {EngineEndpoint("e-0", "10.0.0.1:50051")},
            id="ready",
        ),
        pytest.param([endpoint("10.0.0.1", pod="e-0", ready=False)], None, set(), id="unready"),
        pytest.param(
            [endpoint("10.0.0.1", pod="e-0", ready=None)],
            None,
            {EngineEndpoint("e-0", "10.0.0.1:50051")},
            id="nil-ready-is-ready",
        ),
        pytest.param(
            [endpoint("10.0.0.1")],
            None,
            {EngineEndpoint("10.0.0.1:50051", "10.0.0.1:50051")},
            id="no-ref",
        ),
        pytest.param(
            [endpoint("10.0.0.1", pod="e-0")],
            [("metrics", 9090), ("grpc", 7000)],
            {EngineEndpoint("e-0", "10.0.0.1:7000")},
            id="grpc-port",
        ),
        pytest.param(
            [endpoint("10.0.0.1", pod="e-0")],
            [("metrics", 9090), ("admin", 9091)],
            {EngineEndpoint("e-0", "10.0.0.1:9090")},
            id="first-port",
        ),
        pytest.param(
            [endpoint("10.0.0.1", pod="e-0")],
            [],
            {EngineEndpoint("e-0", "10.0.0.1:1234")},
            id="no-port",
        ),
        pytest.param(
            [endpoint("fd00::1", pod="e-0")],
            None,
            {EngineEndpoint("e-0", "[fd00::1]:50051")},
            id="ipv6",
        ),
        pytest.param(
            [{**endpoint("10.0.0.1", pod="e-0"), "addresses": ["10.0.0.1", "10.0.0.7"]}],
            None,
            {EngineEndpoint("e-0", "10.0.0.1:50051")},
            id="first-address",
        ),
    ],
)
def test_slice_endpoints(
    endpoints: list[dict[str, Any]],
    ports: list[tuple[str, int]] | None,
    expected: set[EngineEndpoint],
) -> None:
    model = V1EndpointSlice.from_dict(endpoint_slice("s", SERVICE, endpoints, ports=ports))
    assert model is not None
    assert set(slice_endpoints(model, default_port=1234)) == expected


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (pod("e-0", "10.0.0.1"), EngineEndpoint("e-0", "10.0.0.1:50051")),
        (pod("e-0", "fd00::1"), EngineEndpoint("e-0", "[fd00::1]:50051")),
        (pod("e-0", "10.0.0.1", ready=False), None),
        (pod("e-0", "10.0.0.1", phase="Pending"), None),
        (pod("e-0", "10.0.0.1", phase="Succeeded"), None),
        (pod("e-0", "10.0.0.1", deleting=True), None),
        (pod("e-0", None), None),
        ({**pod("e-0", "10.0.0.1"), "status": {"phase": "Running", "podIP": "10.0.0.1"}}, None),
    ],
)
def test_pod_endpoint(manifest: dict[str, Any], expected: EngineEndpoint | None) -> None:
    model = V1Pod.from_dict(manifest)
    assert model is not None
    assert pod_endpoint(model, 50051) == expected
