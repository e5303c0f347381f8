"""Retrying an execution (docs/retry.md) through real orchestrator and engine processes.

A three-step pipeline calls a local HTTP service at every step (``tests/support/hits.py``
counts each call by run and step); its last step fails the first time. ``weir retry`` completes
it with the first two steps' side effects having happened exactly once overall; ``--from``
re-runs a node and what follows it; refusals answer 409/422 naming why; an orchestrator killed
with SIGKILL right after accepting a retry still completes it without running a reused step.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orchestrator.api.convert import execution_from_pb
from tests.integration.cluster import ROOT, WEIR, Cluster
from tests.support.hits import Hits, hits_server
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration

PIPELINE = """
name: pipeline
version: 1.0.0
inputs:
  run: {type: string}
  url: {type: string}
  hold: {type: number, default: 0}
nodes:
  - id: extract
    http: {url: "${inputs.url}", json: {execution: "${inputs.run}", node: extract}}
  - id: transform
    depends_on: [extract]
    http: {url: "${inputs.url}", json: {execution: "${inputs.run}", node: transform}}
  - id: load
    depends_on: [transform]
    http:
      url: "${inputs.url}"
      json: {execution: "${inputs.run}", node: load, fail_first: true, hold: "${inputs.hold}"}
outputs:
  loaded: ${outputs.load.ok}
"""
SLOW = """
name: slow
version: 1.0.0
nodes:
  - {id: nap, sleep: 30s}
"""
BROKEN = """
name: broken
version: 1.0.0
nodes:
  - {id: only, lua: 'error("broken on purpose")'}
"""


@pytest.fixture
def hits() -> Iterator[Hits]:
    with hits_server() as h:
        yield h


@pytest.fixture
def one(cluster: Cluster) -> Cluster:
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    return cluster


def weir(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WEIR_SERVER": cluster.address}
    proc = subprocess.run(
        [WEIR, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def register(cluster: Cluster, *sources: str) -> None:
    for source in sources:
        response = httpx.post(
            f"{cluster.http_url}/api/v1/workflows",
            content=source,
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code in (200, 201), response.text


def reused_from(result: dict[str, Any]) -> dict[str, str | None]:
    return {node_id: node.get("reused_from") for node_id, node in result["nodes"].items()}


def test_weir_retry_completes_and_the_first_steps_ran_once(one: Cluster, hits: Hits) -> None:
    cluster, run = one, str(uuid.uuid4())
    register(cluster, PIPELINE)
    started = weir(
        cluster,
        "start",
        "pipeline",
        "-i",
        f"run={run}",
        "-i",
        f"url={hits.url}",
        "-w",
        "-o",
        "json",
    )
    assert started.returncode == 1, started.stderr
    original = json.loads(started.stdout)
    assert original["status"] == "failed" and original["error"]["node"] == "load"
    assert hits.of(run) == {"extract": 1, "transform": 1, "load": 1}

    retried = weir(cluster, "retry", original["id"], "--wait", "--output", "json")
    assert retried.returncode == 0, retried.stderr
    retry = json.loads(retried.stdout)
    assert retry["status"] == "completed" and retry["outputs"] == {"loaded": True}
    assert retry["id"] != original["id"] and retry["retry_of"] == original["id"]
    assert retry["inputs"] == original["inputs"] and retry["version"] == "1.0.0"
    assert retry["path"] == ["extract", "transform", "load"]
    assert hits.of(run) == {"extract": 1, "transform": 1, "load": 2}
    assert "node.reused extract" in retried.stderr  # progress lines: the reused nodes show
    assert reused_from(retry) == {
        "extract": original["id"],
        "transform": original["id"],
        "load": None,
    }

    got = json.loads(weir(cluster, "get", "execution", original["id"], "-o", "json").stdout)
    assert got["retried_by"] == retry["id"] and "retry_of" not in got
    listed = {
        e["id"]: e for e in json.loads(weir(cluster, "list", "executions", "-o", "json").stdout)
    }
    assert (listed[original["id"]]["retried_by"], listed[original["id"]]["retry_of"]) == (
        retry["id"],
        None,
    )
    assert listed[retry["id"]]["retry_of"] == original["id"]
    page = httpx.get(f"{cluster.http_url}/api/v1/executions").json()["executions"]
    rest = {e["id"]: (e["retry_of"], e["retried_by"]) for e in page}
    assert rest == {original["id"]: (None, retry["id"]), retry["id"]: (original["id"], None)}
    events = httpx.get(f"{cluster.http_url}/api/v1/executions/{retry['id']}/events").json()
    queued = next(e for e in events["events"] if e["type"] == "execution.queued")
    assert queued["data"]["retry_of"] == original["id"]
    assert queued["data"]["reused"] == ["extract", "transform"]
    reused = [e["node"] for e in events["events"] if e["type"] == "node.reused"]
    assert reused == ["extract", "transform"]
    logs = weir(cluster, "logs", retry["id"])
    assert logs.returncode == 0, logs.stderr
    assert f"retry of {original['id']}" in logs.stdout
    assert "extract[1/1]  reused" in logs.stdout and f"execution {original['id']}" in logs.stdout

    # The retry completed: only --from runs something again, and only from that node on.
    again = weir(cluster, "retry", retry["id"])
    assert again.returncode == 2 and "completed: name the node to run again from" in again.stderr
    from_transform = weir(cluster, "retry", retry["id"], "--from", "transform", "-w", "-o", "json")
    assert from_transform.returncode == 0, from_transform.stderr
    third = json.loads(from_transform.stdout)
    assert third["status"] == "completed" and third["retry_of"] == retry["id"]
    assert hits.of(run) == {"extract": 1, "transform": 2, "load": 3}
    # a retry of a retry names where the node really ran
    assert reused_from(third) == {"extract": original["id"], "transform": None, "load": None}
    chain = json.loads(weir(cluster, "get", "execution", retry["id"], "-o", "json").stdout)
    assert (chain["retry_of"], chain["retried_by"]) == (original["id"], third["id"])

    text = weir(cluster, "retry", original["id"])
    assert text.returncode == 2
    assert f"already retried by execution {retry['id']}: retry that one instead" in text.stderr


def test_refusals_name_why(one: Cluster, hits: Hits) -> None:
    cluster = one
    register(cluster, PIPELINE, SLOW, BROKEN)
    base = f"{cluster.http_url}/api/v1/executions"

    def retry(execution_id: str, body: Any = None) -> httpx.Response:
        return httpx.post(f"{base}/{execution_id}/retry", json=body, timeout=30)

    def error(response: httpx.Response, status: int, code: str) -> str:
        assert response.status_code == status, response.text
        body = response.json()["error"]
        assert body["code"] == code, body
        return str(body["message"])

    slow = httpx.post(base, json={"workflow": "slow"}).json()["id"]
    message = error(retry(slow), 409, "not_retryable")
    assert f"execution {slow} is still " in message and "cancel it first" in message
    assert "not found" in error(retry("no-such-id"), 404, "not_found")

    broken = httpx.post(f"{base}?wait=true", json={"workflow": "broken"}).json()
    assert broken["status"] == "failed"
    unknown = error(retry(broken["id"], {"from": "nope"}), 422, "invalid_argument")
    assert "workflow broken 1.0.0 has no node 'nope'" in unknown
    error(retry(broken["id"], {"from": ""}), 422, "invalid_argument")
    error(retry(broken["id"], {"form": "only"}), 422, "invalid_argument")

    # Two retries at once: one is made, the other is refused naming it.
    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            url = f"{base}/{broken['id']}/retry"
            return list(await asyncio.gather(client.post(url), client.post(url)))

    first, second = sorted(asyncio.run(both()), key=lambda r: r.status_code)
    assert first.status_code == 201, first.text
    made = first.json()
    assert first.headers["Location"] == f"/api/v1/executions/{made['id']}"
    assert made["retry_of"] == broken["id"]
    message = error(second, 409, "not_retryable")
    assert f"already retried by execution {made['id']}" in message

    waited = httpx.post(f"{base}/{made['id']}/retry?wait=true&timeout=20", timeout=30)
    assert waited.status_code == 200, waited.text
    assert waited.json()["status"] == "failed" and waited.json()["retry_of"] == made["id"]
    done = waited.json()["id"]

    deleted = httpx.delete(f"{cluster.http_url}/api/v1/workflows/broken/versions/1.0.0")
    assert deleted.status_code == 204, deleted.text
    message = error(retry(done), 409, "not_retryable")
    assert "its workflow broken version 1.0.0 was deleted" in message

    httpx.post(f"{base}/{slow}/cancel", json={"reason": "enough"})

    wait_for(
        lambda: httpx.get(f"{base}/{slow}").json()["status"] == "cancelled",
        within=20,
        what="the slow execution to be cancelled",
    )
    again = retry(slow)
    assert again.status_code == 201, again.text
    assert again.json()["retry_of"] == slow  # a cancelled execution may be retried
    httpx.post(f"{base}/{again.json()['id']}/cancel", json={})


def test_a_retry_accepted_before_the_orchestrator_is_killed_completes(
    one: Cluster, hits: Hits
) -> None:
    cluster, run = one, str(uuid.uuid4())
    register(cluster, PIPELINE)
    base = f"{cluster.http_url}/api/v1/executions"
    inputs = {"run": run, "url": hits.url, "hold": 1.5}
    original = httpx.post(
        f"{base}?wait=true&timeout=30", json={"workflow": "pipeline", "inputs": inputs}, timeout=40
    ).json()
    assert original["status"] == "failed"

    accepted = httpx.post(f"{base}/{original['id']}/retry", timeout=30)
    assert accepted.status_code == 201, accepted.text
    retry_id = accepted.json()["id"]
    assert cluster.orchestrator is not None
    cluster.orchestrator.signal(signal.SIGKILL)
    cluster.orchestrator.wait(10)
    cluster.start_orchestrator()

    async def finished() -> dict[str, Any]:
        async with cluster.client() as client:
            await cluster.wait_ready(client, 1)
            return execution_from_pb(await client.wait(retry_id))

    result = asyncio.run(finished())
    assert result["status"] == "completed", result
    assert result["retry_of"] == original["id"]
    counts = hits.of(run)
    assert (counts["extract"], counts["transform"]) == (1, 1)
    assert counts["load"] >= 2
    assert reused_from(result)["extract"] == original["id"]
    listed = httpx.get(f"{cluster.http_url}/api/v1/executions/{original['id']}").json()
    assert listed["retried_by"] == retry_id
