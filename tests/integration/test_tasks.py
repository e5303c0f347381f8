"""Durable tasks with real processes: completed by token over REST and the CLI, fenced and
idempotent answers, an engine killed while its execution waits on a task, the error shapes."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from weir import Client
from weir.proto.v1.engine_pb2 import ExecutionStatus

from tests.integration.cluster import WEIR, Cluster, Proc
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


# --- with real SDK workers (`weir worker`, tests/integration/worker_app.py) ----------------

WORKER_APP = Path(__file__).parent / "worker_app.py"


def _work_flow(count: int, delay: float = 0.0, **task: Any) -> str:
    return json.dumps(
        {
            "name": "fan",
            "version": "1.0.0",
            "nodes": [
                {"id": f"w{i}", "task": {"queue": "work", **task}, "args": {"n": i, "delay": delay}}
                for i in range(count)
            ],
            "outputs": {"total": "${outputs.w0.n}"},
        }
    )


def _start_worker(cluster: Cluster, name: str, log: Path, slots: int = 4) -> Proc:
    return cluster.start_process(
        name,
        ["worker", str(WORKER_APP), "--id", name, "--slots", str(slots)],
        {"WEIR_SERVER": cluster.address, "WORK_LOG": str(log), "SLOTS": str(slots)},
    )


def _lines(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


async def _workers(client: Any, count: int) -> None:
    async def joined() -> bool:
        return len(await client.workers()) >= count

    await eventually(joined, what=f"{count} workers joined", within=20)


async def test_a_worker_killed_mid_task_its_task_is_done_by_another(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "work.log"
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        first = _start_worker(cluster, "w1", log)
        await _workers(client, 1)
        await client.register(_work_flow(1, delay=30))
        execution = await client.start("fan")
        await eventually(lambda: _lines(log), what="the task started on w1")
        first.signal(signal.SIGKILL)
        _start_worker(cluster, "w2", log)
        started = await eventually(
            lambda: [
                e for e in _lines(log) if e["event"] == "start" and e["pid"] != first.popen.pid
            ],
            what="the task re-delivered to w2",
            within=20,
        )
        assert started[0]["token"] == _lines(log)[0]["token"]  # the same task, not a new one
        await client.cancel(execution.id)


async def test_slots_are_never_exceeded_and_a_thousand_tasks_go_through_two_workers(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "work.log"
    cluster.start_engine("e1", CAPACITY="100")
    cluster.start_orchestrator()
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        _start_worker(cluster, "w1", log, slots=3)
        _start_worker(cluster, "w2", log, slots=5)
        await _workers(client, 2)
        await client.register(_work_flow(10))
        executions = [await client.start("fan") for _ in range(100)]
        for execution in executions:
            done = await client.wait(execution.id)
            assert json.loads(done.outputs_json) == {"total": 0}, done.error
    lines = _lines(log)
    starts = [e for e in lines if e["event"] == "start"]
    assert len(starts) == 1000 == len({e["token"] for e in starts})  # each task done once
    by_pid: dict[int, int] = {}
    for e in starts:
        by_pid[e["pid"]] = max(by_pid.get(e["pid"], 0), e["running"])
    assert sorted(by_pid.values()) <= [3, 5] and len(by_pid) == 2  # both took some, within slots
    assert all(count > 100 for count in Counter(e["pid"] for e in starts).values())


async def test_cancelling_an_execution_reaches_its_running_task(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "work.log"
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    flow = json.dumps({"name": "hang", "version": "1.0.0", "nodes": [{"id": "h", "task": "hang"}]})
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        _start_worker(cluster, "w1", log)
        await _workers(client, 1)
        await client.register(flow)
        execution = await client.start("hang")
        await eventually(lambda: _lines(log), what="the task started")
        await client.cancel(execution.id, reason="changed my mind")
        cancelled = await eventually(
            lambda: [e for e in _lines(log) if e["event"] == "cancelled"], what="worker told"
        )
        assert "changed my mind" in cancelled[0]["reason"]


async def test_kill_9_the_orchestrator_with_tasks_pending_and_running_none_done_twice(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "work.log"
    cluster.start_engine("e1")
    orchestrator = cluster.start_orchestrator(REATTACH_TIMEOUT="5s")
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        _start_worker(cluster, "w1", log, slots=2)
        await _workers(client, 1)
        await client.register(_work_flow(6, delay=3))
        execution = await client.start("fan")
        await eventually(lambda: len(_lines(log)) >= 2, what="two tasks running")
    orchestrator.signal(signal.SIGKILL)  # 2 running on w1, 4 pending
    orchestrator.wait(10)
    cluster.start_orchestrator(REATTACH_TIMEOUT="5s")
    _start_worker(cluster, "w2", log, slots=2)  # a second worker that could steal them
    async with cluster.client() as client:
        done = await client.wait(execution.id)
        assert done.status == ExecutionStatus.EXECUTION_STATUS_COMPLETED, done.error
    starts = Counter(e["key"] for e in _lines(log) if e["event"] == "start")
    assert len(starts) == 6 and set(starts.values()) == {1}, starts  # none applied twice


async def test_the_arithmetic_workers_example(cluster: Cluster) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    root = Path(__file__).parents[2]
    async with cluster.client() as client:
        await cluster.wait_ready(client, 1)
        cluster.start_process(
            "arithmetic",
            ["worker", str(root / "examples/workers/arithmetic.py")],
            {"WEIR_SERVER": cluster.address},
        )
        await _workers(client, 1)
        await client.register((root / "examples/arithmetic-workers.yaml").read_text())
        ok = await client.wait((await client.start("arithmetic-workers", {"a": 12, "b": 4})).id)
        assert json.loads(ok.outputs_json) == {
            "sum": 16,
            "difference": 8,
            "product": 48,
            "quotient": 3.0,
            "error": None,
        }
        zero = await client.wait((await client.start("arithmetic-workers", {"a": 12, "b": 0})).id)
        assert json.loads(zero.outputs_json)["error"] == "cannot divide 12 by zero"
        assert zero.nodes["DIV"].error == "NonRetryableError: cannot divide 12 by zero"
        await client.register((root / "examples/user-onboarding.yaml").read_text())
        welcome = await client.start("user-onboarding", {"user_email": "ada@example.com"})
        done = await client.wait(welcome.id)
        assert json.loads(done.outputs_json) == {"welcomed": "ada@example.com", "sent": True}


async def test_with_an_api_token_a_worker_needs_it(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "work.log"
    cluster.start_engine("e1")
    cluster.start_orchestrator(API_TOKEN="s3cret")
    wrong = cluster.start_process(
        "wrong",
        ["worker", str(WORKER_APP), "--id", "wrong"],
        {"WEIR_SERVER": cluster.address, "WEIR_TOKEN": "nope", "WORK_LOG": str(log)},
    )
    assert await asyncio.to_thread(wrong.wait, 30) == 3  # refused: no point retrying
    assert "UNAUTHENTICATED" in wrong.output()
    cluster.start_process(
        "right",
        ["worker", str(WORKER_APP), "--id", "right"],
        {"WEIR_SERVER": cluster.address, "WEIR_TOKEN": "s3cret", "WORK_LOG": str(log)},
    )
    async with Client(cluster.address, timeout=10, token="s3cret") as client:
        await cluster.wait_ready(client, 1)
        await _workers(client, 1)
        await client.register(_work_flow(2))
        done = await client.wait((await client.start("fan")).id)
        assert done.status == ExecutionStatus.EXECUTION_STATUS_COMPLETED, done.error
