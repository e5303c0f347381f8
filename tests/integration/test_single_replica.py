"""SQLite is for one orchestrator: a second ``weir orchestrator`` on the same file stops at once
with a message naming the first, which keeps serving; after the first is killed with SIGKILL
the kernel has dropped its claim and a new one starts on the file."""

from __future__ import annotations

import signal

import httpx
import pytest

from tests.integration.cluster import Cluster
from tests.support.net import free_port

pytestmark = pytest.mark.integration


def test_a_second_orchestrator_on_the_same_sqlite_file_refuses_to_start(cluster: Cluster) -> None:
    cluster.start_engine("e1")
    first = cluster.start_orchestrator()
    second = cluster.start_process(
        "orchestrator-second",
        ["orchestrator"],
        {
            "GRPC_PORT": str(free_port()),
            "HTTP_PORT": str(free_port()),
            "BIND_ADDRESS": "127.0.0.1",
            "DISCOVERY": "static",
            "ENGINES": f"127.0.0.1:{cluster.engine_ports['e1']}",
            "STORE_URL": cluster.store_url,
        },
    )
    assert second.wait(30) != 0
    said = second.output()
    assert "another orchestrator" in said and "is serving this SQLite file" in said, said
    assert "Traceback" not in said, said
    assert httpx.get(f"{cluster.http_url}/readyz", timeout=10).status_code == 200

    first.signal(signal.SIGKILL)
    first.wait(10)
    cluster.start_orchestrator()  # the claim died with the process
    assert httpx.get(f"{cluster.http_url}/readyz", timeout=10).status_code == 200
