"""Kubernetes discovery against a real HTTP fake of the API server (``fake_k8s.py``).

The official client runs unmodified against it: kubeconfig loading, list, watch streaming, 410
handling, backoff, cancellation. The readiness rules are in ``test_kubernetes_rules.py``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from orchestrator.discovery import DiscoveryError, EngineEndpoint
from orchestrator.discovery.kubernetes import KubernetesDiscovery
from tests.orchestrator.discovery.collect import Updates
from tests.orchestrator.discovery.fake_k8s import FakeKubernetes
from tests.orchestrator.discovery.manifests import endpoint, endpoint_slice, pod, write_kubeconfig
from tests.support.net import free_port
from tests.support.poll import eventually, wait_for

SERVICE = "weir-engine"
WORKER_THREAD = "weir-k8s-discovery"
LOGGER = "orchestrator.discovery.kubernetes"


@pytest.fixture(autouse=True)
def no_thread_outlives_the_test() -> Iterator[None]:
    yield
    wait_for(
        lambda: not any(t.name.startswith(WORKER_THREAD) for t in threading.enumerate()),
        within=2.0,
        what=f"the {WORKER_THREAD} threads to end",
        interval=0.01,
    )


@pytest.fixture
def kubeconfig(api: FakeKubernetes, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", api.url)


def discovery(
    kubeconfig: Path, mode: Any = "endpointslices", **options: Any
) -> KubernetesDiscovery:
    arguments: dict[str, Any] = {
        "mode": mode,
        "service_name": SERVICE,
        "label_selector": "app.kubernetes.io/name=weir-engine",
        "port": 50051,
        "in_cluster": False,
        "kubeconfig": str(kubeconfig),
        "watch_timeout": 30.0,
        "request_timeout": 2.0,
        "backoff": (0.05, 0.4),
    }
    return KubernetesDiscovery("default", **{**arguments, **options})


def three_engines(api: FakeKubernetes) -> None:
    """Two slices of the Service (the controller splits large Services): e-0, e-1 and e-2."""
    api.apply(
        "endpointslices",
        endpoint_slice(
            "weir-engine-a",
            SERVICE,
            [endpoint("10.0.0.1", pod="e-0"), endpoint("10.0.0.2", pod="e-1")],
        ),
    )
    api.apply(
        "endpointslices",
        endpoint_slice("weir-engine-b", SERVICE, [endpoint("10.0.0.3", pod="e-2")]),
    )
    api.apply(
        "endpointslices", endpoint_slice("other", "other-service", [endpoint("10.9.9.9", pod="x")])
    )


async def test_endpointslices_follow_readiness_deletion_and_new_engines(
    api: FakeKubernetes, kubeconfig: Path
) -> None:
    three_engines(api)
    async with Updates(discovery(kubeconfig)) as updates:
        first = await updates.wait_ids({"e-0", "e-1", "e-2"})
        assert EngineEndpoint("e-2", "10.0.0.3:50051") in first

        unready = [endpoint("10.0.0.1", pod="e-0"), endpoint("10.0.0.2", pod="e-1", ready=False)]
        api.apply("endpointslices", endpoint_slice("weir-engine-a", SERVICE, unready))
        await updates.wait_ids({"e-0", "e-2"})

        api.apply("endpointslices", endpoint_slice("weir-engine-a", SERVICE, unready[:1]))
        api.delete("endpointslices", "weir-engine-b")
        await updates.wait_ids({"e-0"})

        api.apply(
            "endpointslices",
            endpoint_slice("weir-engine-c", SERVICE, [endpoint("10.0.0.4", pod="e-3")]),
        )
        await updates.wait_ids({"e-0", "e-3"})

    # One yield per change of the set: removing the already-unready e-1 changed nothing.
    assert [sorted(e.id for e in s) for s in updates.seen] == [
        ["e-0", "e-1", "e-2"],
        ["e-0", "e-2"],
        ["e-0"],
        ["e-0", "e-3"],
    ]
    assert len(api.requests("list")) == 1
    watch = api.requests("watch")[0]
    assert watch.query["labelSelector"] == "kubernetes.io/service-name=weir-engine"
    assert watch.query["timeoutSeconds"] == "30"


@pytest.mark.parametrize("in_stream", [True, False], ids=["error-event", "http-410"])
async def test_expired_watch_relists(
    api: FakeKubernetes, kubeconfig: Path, in_stream: bool
) -> None:
    three_engines(api)
    async with Updates(discovery(kubeconfig)) as updates:
        await updates.wait_ids({"e-0", "e-1", "e-2"})
        # A change no watch reports, then the history is gone: only a re-list can see it.
        api.delete("endpointslices", "weir-engine-b", notify=False)
        api.compact(in_stream=in_stream)
        await updates.wait_ids({"e-0", "e-1"})
        # The new watch starts from the re-list and sees later changes.
        api.apply(
            "endpointslices",
            endpoint_slice("weir-engine-b", SERVICE, [endpoint("10.0.0.5", pod="e-4")]),
        )
        await updates.wait_ids({"e-0", "e-1", "e-4"})
    assert len(api.requests("list")) == 2


async def test_watch_timeout_rewatches_from_the_last_version(
    api: FakeKubernetes, kubeconfig: Path
) -> None:
    three_engines(api)
    async with Updates(discovery(kubeconfig, watch_timeout=0.5)) as updates:
        await updates.wait_ids({"e-0", "e-1", "e-2"})
        api.delete("endpointslices", "weir-engine-b")
        await updates.wait_ids({"e-0", "e-1"})
        await eventually(lambda: len(api.requests("watch")) >= 3)  # ended by timeoutSeconds=1
        api.apply(
            "endpointslices",
            endpoint_slice("weir-engine-b", SERVICE, [endpoint("10.0.0.5", pod="e-4")]),
        )
        await updates.wait_ids({"e-0", "e-1", "e-4"})
    watches = api.requests("watch")
    assert {w.query["timeoutSeconds"] for w in watches} == {"1"}
    versions = [int(w.query["resourceVersion"]) for w in watches]
    assert versions == sorted(versions) and versions[-1] > versions[0]
    assert len(api.requests("list")) == 1  # a timed-out watch resumes, it does not re-list


async def test_pods_follow_readiness(api: FakeKubernetes, kubeconfig: Path) -> None:
    for name, ip in [("e-0", "10.0.0.1"), ("e-1", "10.0.0.2"), ("e-2", "10.0.0.3")]:
        api.apply("pods", pod(name, ip))
    api.apply("pods", pod("starting", None, phase="Pending"))
    api.apply("pods", pod("unrelated", "10.0.0.9", labels={"app.kubernetes.io/name": "other"}))
    async with Updates(discovery(kubeconfig, mode="pods", port=7000)) as updates:
        first = await updates.wait_ids({"e-0", "e-1", "e-2"})
        assert EngineEndpoint("e-0", "10.0.0.1:7000") in first

        api.apply("pods", pod("e-1", "10.0.0.2", ready=False))
        await updates.wait_ids({"e-0", "e-2"})
        api.apply("pods", pod("e-2", "10.0.0.3", deleting=True))
        await updates.wait_ids({"e-0"})
        api.delete("pods", "e-2")
        api.apply("pods", pod("starting", "10.0.0.4"))
        await updates.wait_ids({"e-0", "starting"})

        api.delete("pods", "e-0", notify=False)
        api.compact(in_stream=True)
        await updates.wait_ids({"starting"})
    assert api.requests("list")[0].query["labelSelector"] == "app.kubernetes.io/name=weir-engine"


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def retry_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    found = (re.search(r"retrying in ([\d.]+)s", m) for m in warnings(caplog))
    return [float(m[1]) for m in found if m]


async def test_api_server_down_at_start_then_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    config = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    api: FakeKubernetes | None = None
    try:
        async with Updates(discovery(config)) as updates:
            await eventually(lambda: len(retry_delays(caplog)) >= 4)
            assert not updates.seen  # nothing is known yet, so nothing is claimed
            api = FakeKubernetes(port)  # binding the port is what brings the "server" up
            api.start()
            three_engines(api)
            await updates.wait_ids({"e-0", "e-1", "e-2"})
            delays = retry_delays(caplog)
            assert delays[:4] == [0.05, 0.1, 0.2, 0.4] and max(delays) == 0.4

            # After a success the backoff starts again from the first delay.
            caplog.clear()
            api.fail_next("watch", 500, count=2)
            api.end_watches()
            await eventually(lambda: len(retry_delays(caplog)) >= 2)
            assert retry_delays(caplog) == [0.05, 0.1]
            api.delete("endpointslices", "weir-engine-b")
            await updates.wait_ids({"e-0", "e-1"})
        assert len(api.requests("list")) == 1
    finally:
        if api is not None:
            api.stop()


@pytest.mark.parametrize("status", [500, 410, 403])
async def test_failing_list_is_retried_with_backoff(
    api: FakeKubernetes, kubeconfig: Path, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    three_engines(api)
    api.fail_next("list", status, count=2)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with Updates(discovery(kubeconfig)) as updates:
        await updates.wait_ids({"e-0", "e-1", "e-2"})
    assert len(api.requests("list")) == 3
    assert retry_delays(caplog) == [0.05, 0.1]
    assert f"HTTP {status}" in warnings(caplog)[0]


async def test_cancelling_releases_a_blocked_watch_at_once(
    api: FakeKubernetes, kubeconfig: Path
) -> None:
    three_engines(api)
    async with Updates(discovery(kubeconfig, watch_timeout=600)) as updates:
        await updates.wait_ids({"e-0", "e-1", "e-2"})
        await eventually(lambda: api.open_watches == 1)
        started = time.monotonic()  # the worker is blocked reading the watch now
    await eventually(lambda: api.open_watches == 0, within=2)
    workers = [t for t in threading.enumerate() if t.name.startswith(WORKER_THREAD)]
    for worker in workers:
        worker.join(timeout=2)
    assert time.monotonic() - started < 2
    assert not any(w.is_alive() for w in workers)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "No such file|not exist|Invalid kube-config"),
        ("{not: [yaml", ""),
        ("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n", ""),
        (
            "apiVersion: v1\nkind: Config\ncurrent-context: missing\n"
            "clusters: []\ncontexts: []\nusers: []\n",
            "missing",
        ),
    ],
    ids=["missing-file", "bad-yaml", "no-context", "unknown-context"],
)
def test_bad_kubeconfig_is_a_discovery_error(
    tmp_path: Path, content: str | None, match: str
) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DiscoveryError, match="cannot load Kubernetes credentials") as info:
        discovery(path)
    assert str(path) in str(info.value)
    assert re.search(match, str(info.value))


def test_in_cluster_config_outside_a_cluster_is_a_discovery_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(DiscoveryError, match="service account"):
        discovery(Path("unused"), in_cluster=True)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"mode": "services"}, "K8S_WATCH"),
        ({"service_name": ""}, "K8S_SERVICE_NAME"),
        ({"port": 0}, "ENGINE_PORT"),
    ],
)
def test_constructor_rejects(kubeconfig: Path, options: dict[str, Any], match: str) -> None:
    with pytest.raises(DiscoveryError, match=match):
        discovery(kubeconfig, **options)


def test_the_global_default_configuration_is_untouched(kubeconfig: Path) -> None:
    before = client.Configuration.get_default_copy().host
    discovery(kubeconfig)
    assert client.Configuration.get_default_copy().host == before
