"""``make_discovery``: settings (as the environment gives them) to a working backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.config import KUBE_CONFIG_DEFAULT_LOCATION

from orchestrator.discovery import DiscoveryError, EngineEndpoint
from orchestrator.discovery.dns import DnsDiscovery
from orchestrator.discovery.factory import make_discovery
from orchestrator.discovery.kubernetes import KubernetesDiscovery
from orchestrator.discovery.static import StaticDiscovery
from orchestrator.settings import OrchestratorSettings
from tests.orchestrator.discovery.collect import Updates
from tests.orchestrator.discovery.fake_k8s import FakeKubernetes
from tests.orchestrator.discovery.manifests import endpoint, endpoint_slice, pod, write_kubeconfig
from tests.support.poll import eventually


@pytest.fixture
def api() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as server:
        yield server


async def test_static() -> None:
    settings = OrchestratorSettings.from_env({"ENGINES": "e-0:50051, e-1:50052"})
    discovery = make_discovery(settings)
    assert isinstance(discovery, StaticDiscovery)
    async with Updates(discovery) as updates:
        found = await updates.wait(bool)
    assert found == {
        EngineEndpoint("e-0:50051", "e-0:50051"),
        EngineEndpoint("e-1:50052", "e-1:50052"),
    }


async def test_dns() -> None:
    environ = {"DISCOVERY": "dns", "ENGINE_DNS_NAME": "localhost", "ENGINE_PORT": "7000"}
    discovery = make_discovery(OrchestratorSettings.from_env(environ))
    assert isinstance(discovery, DnsDiscovery)
    async with Updates(discovery) as updates:
        found = await updates.wait(bool)
    assert EngineEndpoint("127.0.0.1:7000", "127.0.0.1:7000") in found


@pytest.mark.parametrize("mode", ["endpointslices", "pods"])
async def test_kubernetes(api: FakeKubernetes, tmp_path: Path, mode: str) -> None:
    api.apply("endpointslices", endpoint_slice("s", "engines", [endpoint("10.0.0.1", pod="e-0")]))
    api.apply("pods", pod("e-0", "10.0.0.1", labels={"tier": "engine"}), namespace="weir")
    api.apply(
        "endpointslices",
        endpoint_slice("s", "engines", [endpoint("10.0.0.1", pod="e-0")]),
        namespace="weir",
    )
    environ = {
        "DISCOVERY": "kubernetes",
        "K8S_WATCH": mode,
        "K8S_NAMESPACE": "weir",
        "K8S_SERVICE_NAME": "engines",
        "K8S_LABEL_SELECTOR": "tier=engine",
        "ENGINE_PORT": "7000",
        "IN_CLUSTER_CONFIG": "false",
        "KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", api.url)),
        "ENGINE_DISCOVERY_INTERVAL": "5s",
    }
    discovery = make_discovery(OrchestratorSettings.from_env(environ))
    assert isinstance(discovery, KubernetesDiscovery)
    async with Updates(discovery) as updates:
        found = await updates.wait(bool)
        await eventually(lambda: bool(api.requests("watch")))
    expected_port = 50051 if mode == "endpointslices" else 7000  # the slice names its grpc port
    assert found == {EngineEndpoint("e-0", f"10.0.0.1:{expected_port}")}
    watch = api.requests("watch")[0]
    assert watch.namespace == "weir" and watch.resource == mode
    assert watch.query["timeoutSeconds"] == "5"


def test_empty_kubeconfig_means_the_default_location() -> None:
    if os.path.exists(os.path.expanduser(KUBE_CONFIG_DEFAULT_LOCATION)):
        pytest.skip("a default kubeconfig exists on this machine")
    environ = {"DISCOVERY": "kubernetes", "IN_CLUSTER_CONFIG": "false", "KUBECONFIG": ""}
    with pytest.raises(DiscoveryError, match=r"\(KUBECONFIG or ~/.kube/config\)"):
        make_discovery(OrchestratorSettings.from_env(environ))
