"""Durable tasks with real processes: completed by token over REST and the CLI, fenced and
idempotent answers, an engine killed while its execution waits on a task, the error shapes."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.proto.v1.engine_pb2 import ExecutionStatus
from tests.integration.cluster import WEIR, Cluster
from tests.support.poll import eventually

pytestmark = pytest.mark.integration

ONBOARDING = json.dumps(
    {
        "name": "onboarding",
        "version": "1.0.0",
        "inputs": {"user_email": {"type": "string"}},
        "nodes": [
            {
                "id": "welcome_email",
                "task": "send_email",
                "args": {"email_address": "${inputs.user_email}"},
                "retry": {"attempts": 2, "backoff": "10ms"},
            },
            {
                "id": "after",
                "lua": "return {sent = outputs.welcome_email.sent}",
                "depends_on": ["welcome_email"],
            },
        ],
        "outputs": {"sent": "${outputs.after.sent}"},
    }
)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.stop()


async def _pending(http: httpx.AsyncClient, execution: str, attempt: int = 1) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        answer = await http.get("/api/v1/tasks", params={"execution": execution})
        tasks = [t for t in answer.json()["tasks"] if t["attempt"] == attempt]
        return tasks[0] if tasks and tasks[0]["status"] == "pending" else None

    task: dict[str, Any] = await eventually(found, what=f"attempt {attempt}'s task pending")
    return task


async def test_a_task_completed_by_token_over_rest_completes_the_execution_once(
    cluster: Cluster,
) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    async with cluster.client() as client, httpx.AsyncClient(base_url=cluster.http_url) as http:
        await cluster.wait_ready(client, 1)
        await client.register(ONBOARDING)
        execution = await client.start("onboarding", {"user_email": "ada@example.com"})
        task = await _pending(http, execution.id)
        assert task["queue"] == "send_email" and task["node"] == "welcome_email"
        assert task["args"] == {"email_address": "ada@example.com"}

        body = {"output": {"sent": True}}
        first = await http.post(f"/api/v1/tasks/{task['token']}/complete", json=body)
        assert first.status_code == 200, first.text
        again = await http.post(f"/api/v1/tasks/{task['token']}/complete", json=body)
        assert again.status_code == 200 and again.json() == first.json()  # duplicate
        other = await http.post(f"/api/v1/tasks/{task['token']}/complete", json={"output": 2})
        assert other.status_code == 409 and other.json()["error"]["code"] == "task_ended"

        done = await client.wait(execution.id)
        assert json.loads(done.outputs_json) == {"sent": True}
        assert done.nodes["welcome_email"].attempts == 1


async def test_a_failed_attempt_gets_a_new_token_and_the_old_one_is_refused(
    cluster: Cluster,
) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    async with cluster.client() as client, httpx.AsyncClient(base_url=cluster.http_url) as http:
        await cluster.wait_ready(client, 1)
        await client.register(ONBOARDING)
        execution = await client.start("onboarding", {"user_email": "bob@example.com"})
        first = await _pending(http, execution.id)
        failed = await http.post(
            f"/api/v1/tasks/{first['token']}/fail", json={"message": "smtp down"}
        )
        assert failed.status_code == 200 and failed.json()["status"] == "failed"
        second = await _pending(http, execution.id, attempt=2)
        assert second["token"] != first["token"]
        assert second["idempotency_key"] == first["idempotency_key"]
        late = await http.post(f"/api/v1/tasks/{first['token']}/complete", json={"output": {}})
        assert late.status_code == 409 and "already failed" in late.json()["error"]["message"]

        proc = await asyncio.to_thread(
            subprocess.run,
            [WEIR, "tasks", "complete", second["token"], "--output-json", '{"sent": false}'],
            env={"WEIR_SERVER": cluster.address, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        done = await client.wait(execution.id)
        assert json.loads(done.outputs_json) == {"sent": False}
        assert done.nodes["welcome_email"].attempts == 2


async def test_an_engine_killed_while_waiting_on_a_task_rejoins_the_same_task(
    cluster: Cluster,
) -> None:
    cluster.start_engine("e1")
    cluster.start_engine("e2")
    cluster.start_orchestrator()
    async with cluster.client() as client, httpx.AsyncClient(base_url=cluster.http_url) as http:
        await cluster.wait_ready(client, 2)
        await client.register(ONBOARDING)
        execution = await client.start("onboarding", {"user_email": "eve@example.com"})
        task = await _pending(http, execution.id)
        placed = await client.execution(execution.id)
        cluster.engines[placed.engine_id].signal(signal.SIGKILL)

        async def moved() -> bool:
            now = await client.execution(execution.id)
            return now.placements == 2 and now.engine_id != placed.engine_id

        await eventually(moved, what="the execution re-placed", within=20)
        answer = await http.get("/api/v1/tasks", params={"execution": execution.id})
        assert [t["token"] for t in answer.json()["tasks"]] == [task["token"]]  # no second task

        completed = await http.post(
            f"/api/v1/tasks/{task['token']}/complete", json={"output": {"sent": True}}
        )
        assert completed.status_code == 200
        done = await client.wait(execution.id)
        assert json.loads(done.outputs_json) == {"sent": True}


async def test_bad_tokens_and_bodies_get_the_error_shape(cluster: Cluster) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    async with cluster.client() as client, httpx.AsyncClient(base_url=cluster.http_url) as http:
        await cluster.wait_ready(client, 1)
        await client.register(ONBOARDING)
        execution = await client.start("onboarding", {"user_email": "x@example.com"})
        task = await _pending(http, execution.id)

        missing = await http.post("/api/v1/tasks/no-such-token/complete", json={"output": 1})
        assert missing.status_code == 404
        assert missing.json()["error"] == {
            "code": "not_found",
            "message": "no task with token 'no-such-token'",
            "issues": [],
        }
        no_message = await http.post(f"/api/v1/tasks/{task['token']}/fail", json={})
        assert no_message.status_code == 422
        assert no_message.json()["error"]["issues"][0]["path"] == "message"
        extra = await http.post(f"/api/v1/tasks/{task['token']}/complete", json={"outputs": 1})
        assert extra.status_code == 422
        not_json = await http.post(
            f"/api/v1/tasks/{task['token']}/complete",
            content=b"{nope",
            headers={"content-type": "application/json"},
        )
        assert not_json.status_code == 422
        bad_status = await http.get("/api/v1/tasks", params={"status": "done"})
        assert bad_status.status_code == 422
        # nothing of that touched the task
        still = await http.get(f"/api/v1/tasks/{task['token']}")
        assert still.json()["status"] == "pending"

        with pytest.raises(Exception, match="no task with token"):
            await client.complete_task("no-such-token")
        await client.cancel(execution.id)


async def test_schedule_to_start_with_no_worker_fails_clearly(cluster: Cluster) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    flow = json.dumps(
        {
            "name": "lonely",
            "version": "1.0.0",
            "nodes": [{"id": "ask", "task": {"queue": "nobody", "schedule_to_start": "300ms"}}],
        }
    )
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        await client.register(flow)
        execution = await client.start("lonely")
        done = await client.wait(execution.id)
        assert done.status == ExecutionStatus.EXECUTION_STATUS_FAILED
        assert done.error.node == "ask"
        assert done.error.message.startswith(
            "schedule_to_start: no worker took the task from queue 'nobody' within 0.3s"
        )


async def test_pending_tasks_survive_an_orchestrator_kill_9(cluster: Cluster) -> None:
    cluster.start_engine("e1")
    orchestrator = cluster.start_orchestrator()
    async with cluster.client() as client, httpx.AsyncClient(base_url=cluster.http_url) as http:
        await cluster.wait_ready(client, 1)
        await client.register(ONBOARDING)
        executions = [
            await client.start("onboarding", {"user_email": f"u{i}@example.com"}) for i in range(3)
        ]
        tokens = [(await _pending(http, e.id))["token"] for e in executions]
    orchestrator.signal(signal.SIGKILL)
    orchestrator.wait(10)
    cluster.start_orchestrator()
    async with cluster.client() as client, httpx.AsyncClient(base_url=cluster.http_url) as http:
        await cluster.wait_ready(client, 1)
        listed = await http.get("/api/v1/tasks", params={"status": "pending"})
        assert sorted(t["token"] for t in listed.json()["tasks"]) == sorted(tokens)
        for token in tokens:
            answer = await http.post(
                f"/api/v1/tasks/{token}/complete", json={"output": {"sent": 1}}
            )
            assert answer.status_code == 200, answer.text
        for execution in executions:
            done = await client.wait(execution.id)
            assert json.loads(done.outputs_json) == {"sent": 1}
            assert done.nodes["welcome_email"].attempts == 1
