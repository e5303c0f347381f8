"""Long waits through the API surface, with real ``weir engine`` / ``weir orchestrator``
processes: ``weir signal`` (consumed, kept, refused), ``weir tasks list`` showing waits,
``weir tasks complete --outcome``, ``weir list executions --status waiting``, and an action
service speaking the FSL seed's protocol unchanged: it accepts at once and reports back to
``POST /step`` (with a FAIL loop and a progress report), with ``API_TOKEN`` set.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from weir import Client
from weir.proto.v1 import engine_pb2 as epb

from tests.integration.cluster import ROOT, WEIR, Cluster
from tests.support.actions import ActionServer, action_server
from tests.support.poll import eventually

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
APPROVAL = """
name: approval
version: 1.0.0
nodes:
  - id: G
    wait: {signal: go}
  - id: D
    depends_on: [G]
    wait: {signal: approve, timeout: 1h}
    next: {AGREE: B, REJECT: end}
  - id: B
    lua: return {by = outputs.D.by}
"""


def _flow(actions: str) -> str:
    """The FSL seed's first steps as asynchronous HTTP actions speaking its protocol."""
    return json.dumps(
        {
            "name": "fsl-flow",
            "version": "1.0.0",
            "nodes": [
                {
                    "id": "A",
                    "http": {
                        "url": f"{actions}/ci",
                        "json": {"project": "compass", "version": "v0.1.0", "retry_count": 10},
                        "callback": {"protocol": "fsl"},
                        "timeout": "1h",
                    },
                    "next": {"SUCCESS": "D", "FAIL": "A"},
                    "max_visits": 5,
                },
                {
                    "id": "D",
                    "http": {
                        "url": f"{actions}/approval",
                        "json": {"work_order": "nz00001", "version": 12343},
                        "callback": {"protocol": "fsl", "ack_states": ["AGREE", "REJECT"]},
                        "timeout": "1h",
                    },
                    "next": {"AGREE": "end", "REJECT": "end"},
                },
            ],
        }
    )


def weir(cluster: Cluster, *args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WEIR_SERVER": cluster.address}
    env["COLUMNS"] = "200"  # tables as a wide terminal shows them
    if token:
        env["WEIR_TOKEN"] = token
    proc = subprocess.run(
        [WEIR, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


@pytest.fixture
def actions() -> Iterator[ActionServer]:
    with action_server() as server:
        yield server


async def _request(actions: ActionServer, path: str, count: int) -> dict[str, Any]:
    """The ``count``-th request (from 1) the action at ``path`` received."""

    def arrived() -> dict[str, Any] | None:
        bodies = actions.of(path)
        return bodies[count - 1] if len(bodies) >= count else None

    body: dict[str, Any] = await eventually(arrived, what=f"request {count} to {path}")
    return body


async def test_weir_signal_consumed_kept_and_refused(cluster: Cluster) -> None:
    cluster.start_engine("e1", park_after="300ms")
    cluster.start_orchestrator()
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        await client.register(APPROVAL)
        early = await client.start("approval")
        kept = weir(cluster, "signal", early.id, "approve", "--outcome", "REJECT", "-o", "json")
        assert kept.returncode == 0, kept.stderr
        receipt = json.loads(kept.stdout)
        assert receipt["consumed"] is False and receipt["node"] is None
        assert (receipt["execution_id"], receipt["name"]) == (early.id, "approve")
        assert receipt["outcome"] == "REJECT" and receipt["sent_at"].endswith("Z")
        go = weir(cluster, "signal", early.id, "go")
        assert go.returncode == 0, go.stderr
        assert go.stdout.strip() in (
            f"signal go sent to {early.id}: consumed by node G (visit 1)",
            f"signal go sent to {early.id}: kept until a node waits for it",  # G not yet open
        )
        done = await client.wait(early.id)
        assert done.status == epb.EXECUTION_STATUS_COMPLETED and list(done.path) == ["G", "D"]
        assert done.nodes["D"].outcome == "REJECT"

        execution = await client.start("approval")
        await client.signal(execution.id, "go")

        async def waits_for_approval() -> bool:
            tasks = await client.tasks(execution_id=execution.id)
            return any(t.node == "D" for t in tasks)

        await eventually(waits_for_approval, what="D waiting")
        await _parked(client, execution.id)
        waiting = weir(cluster, "list", "executions", "--status", "waiting", "-o", "json")
        assert [e["id"] for e in json.loads(waiting.stdout)] == [execution.id]
        listed = weir(cluster, "tasks", "list", "--execution", execution.id)
        assert listed.returncode == 0, listed.stderr
        assert "signal:approve" in listed.stdout and "DUE" in listed.stdout, listed.stdout
        as_json = weir(cluster, "tasks", "list", "--execution", execution.id, "-o", "json")
        tasks = json.loads(as_json.stdout)  # newest first
        assert [(t["kind"], t["queue"], t["node"], t["status"]) for t in tasks] == [
            ("signal", "approve", "D", "pending"),
            ("signal", "go", "G", "completed"),
        ]
        assert tasks[0]["due_at"] is not None and tasks[1]["due_at"] is None

        sent = weir(
            cluster, "signal", execution.id, "approve", "--outcome", "AGREE",
            "--data-json", '{"by": "ada"}',
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.strip() == (
            f"signal approve sent to {execution.id}: consumed by node D (visit 1)"
        )
        done = await client.wait(execution.id)
        assert list(done.path) == ["G", "D", "B"]
        assert json.loads(done.nodes["B"].output_json) == {"by": "ada"}

        running = await client.start("approval")
        for args, words in (
            ((execution.id, "approve"), "completed"),
            ((running.id, "aprove"), "(it waits for: approve, go)"),
            (("nope", "approve"), "nope"),
        ):
            refused = weir(cluster, "signal", *args)
            assert refused.returncode == 2, refused.stdout
            assert refused.stderr.startswith("error: ") and words in refused.stderr
        bad = weir(cluster, "signal", execution.id, "approve", "--data-json", "{")
        assert bad.returncode == 2 and "--data-json" in bad.stderr and "not JSON" in bad.stderr


async def _parked(client: Client, execution_id: str) -> None:
    async def waiting() -> bool:
        return (await client.execution(execution_id)).status == epb.EXECUTION_STATUS_WAITING

    await eventually(waiting, within=20, what=f"{execution_id} parked")


async def test_an_fsl_action_reports_to_step_and_a_person_completes_a_callback(
    cluster: Cluster, actions: ActionServer
) -> None:
    cluster.start_engine("e1", park_after="300ms")
    cluster.start_orchestrator(api_token=TOKEN)
    async with (
        Client(cluster.address, timeout=10, token=TOKEN) as client,
        httpx.AsyncClient(base_url=cluster.http_url, timeout=10) as http,  # no token: /step
    ):
        await cluster.wait_ready(client, 1)
        await client.register(_flow(actions.url))
        execution = await client.start("fsl-flow")

        first = await _request(actions, "/ci", 1)
        assert (first["flowId"], first["stepName"]) == (execution.id, "A")
        assert sorted(first["ackStates"]) == ["FAIL", "SUCCESS"]  # default: the keys of next
        assert (first["project"], first["retry_count"]) == ("compass", 10) and first["uuid"]
        report = {"flowId": execution.id, "stepName": "A", "uuid": first["uuid"]}
        answer = await http.post("/step", json={**report, "ackState": "FAIL", "done": True})
        assert answer.status_code == 200, answer.text

        again = await _request(actions, "/ci", 2)  # FAIL -> A: a new visit, a new token
        assert again["uuid"] != first["uuid"]
        report = {"flowId": execution.id, "stepName": "A", "uuid": again["uuid"]}
        progress = await http.post("/step", json={**report, "ackState": "", "done": False})
        assert progress.status_code == 200 and progress.json()["done"] is False
        stale = await http.post("/step", json={**report, "uuid": first["uuid"], "ackState": "OK"})
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "task_ended"
        answer = await http.post("/step", json={**report, "ackState": "SUCCESS", "done": True})
        assert answer.status_code == 200, answer.text

        approval = await _request(actions, "/approval", 1)
        assert approval["ackStates"] == ["AGREE", "REJECT"]
        assert (approval["work_order"], approval["version"]) == ("nz00001", 12343)
        await _parked(client, execution.id)
        listed = weir(cluster, "tasks", "list", "--execution", execution.id, token=TOKEN)
        assert "callback" in listed.stdout, listed.stdout
        completed = weir(
            cluster, "tasks", "complete", approval["uuid"], "--outcome", "AGREE",
            "--output-json", '{"by": "ada"}', token=TOKEN,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        assert f"task D of {execution.id}: completed" in completed.stdout
        twice = weir(
            cluster, "tasks", "complete", approval["uuid"], "--outcome", "REJECT", token=TOKEN
        )
        assert twice.returncode == 2 and "error:" in twice.stderr

        done = await client.wait(execution.id)
        assert done.status == epb.EXECUTION_STATUS_COMPLETED
        assert list(done.path) == ["A", "A", "D"]
        assert done.nodes["A"].outcome == "SUCCESS" and done.nodes["D"].outcome == "AGREE"
        assert json.loads(done.nodes["A"].output_json) == {
            **report,
            "ackState": "SUCCESS",
            "done": True,
        }
        assert json.loads(done.nodes["D"].output_json) == {"by": "ada"}
        assert (len(actions.of("/ci")), len(actions.of("/approval"))) == (2, 1)
