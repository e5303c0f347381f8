"""The REST side of long waits over real HTTP: an ``OrchestratorServer`` in this process
(SQLite in tmp_path) with a real in-process engine that parks executions after 0.3 s.

Signals (``POST /api/v1/executions/{id}/signals/{name}``): consumed at once by a waiting node or
kept until one waits, and every refusal with its status. ``POST /step`` (the FSL action
protocol) against the task of a ``task`` node: every malformed or mismatched body is a 400
naming its field, a progress report, a completion routing ``next``, duplicates and refusals,
and its exemption from ``API_TOKEN``. Tasks' ``kind``/``outcome``/``due_at``, completion with an
``outcome``, and a parked execution's ``waiting`` status and ``wake_at``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.server.process import EngineServer
from orchestrator.server import OrchestratorServer
from tests.support import tasks as gates
from tests.support.engines import running_engine
from tests.support.poll import eventually
from tests.support.servers import start_server
from tests.support.waits import APPROVAL, CI, NAP

TOKEN = "s3cret-token"


@pytest.fixture(autouse=True)
def _reset_gates() -> None:
    gates.reset()
    gates.open_gate("open")  # APPROVAL's default: no holding back


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine(capacity=20, park_after=0.3) as server:
        yield server


@pytest.fixture
async def server(engine: EngineServer, tmp_path: Path) -> AsyncIterator[OrchestratorServer]:
    server = await start_server(engine, tmp_path)
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


@pytest.fixture
async def http(server: OrchestratorServer) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{server.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        for source in (APPROVAL, CI, NAP):
            response = await client.post(
                "/api/v1/workflows", content=source, headers={"Content-Type": "application/yaml"}
            )
            assert response.status_code == 201, response.text
        yield client


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert "Traceback" not in response.text
    detail: dict[str, Any] = body["error"]
    return detail


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _start(http: httpx.AsyncClient, workflow: str, **inputs: Any) -> str:
    started = await http.post("/api/v1/executions", json={"workflow": workflow, "inputs": inputs})
    assert started.status_code == 201, started.text
    execution_id: str = started.json()["id"]
    return execution_id


async def _open_task(http: httpx.AsyncClient, execution: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        listed = (await http.get("/api/v1/tasks", params={"execution": execution})).json()
        open_ = [t for t in listed["tasks"] if t["status"] in ("pending", "running")]
        return open_[0] if open_ else None

    task: dict[str, Any] = await eventually(found, what=f"an open task of {execution}")
    return task


async def _ended(http: httpx.AsyncClient, execution: str) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        body: dict[str, Any] = (await http.get(f"/api/v1/executions/{execution}")).json()
        return body if body["status"] in ("completed", "failed", "cancelled") else None

    result: dict[str, Any] = await eventually(ended, within=20, what=f"{execution} to end")
    return result


# --- signals ---------------------------------------------------------------------------------


async def test_a_signal_to_a_waiting_node_is_consumed_and_routes_next(
    http: httpx.AsyncClient,
) -> None:
    execution = await _start(http, "approval")
    wait = await _open_task(http, execution)
    assert (wait["kind"], wait["queue"], wait["node"]) == ("signal", "approve", "D")
    assert wait["due_at"] is not None
    assert abs(_seconds(wait["due_at"]) - (_seconds(wait["created_at"]) + 3600)) < 1

    before = time.time()
    sent = await http.post(
        f"/api/v1/executions/{execution}/signals/approve",
        json={"outcome": "AGREE", "data": {"by": "ada"}},
    )
    assert sent.status_code == 200, sent.text
    receipt = sent.json()
    assert receipt["id"] and receipt["execution_id"] == execution
    assert (receipt["name"], receipt["outcome"]) == ("approve", "AGREE")
    assert (receipt["node"], receipt["visit"], receipt["consumed"]) == ("D", 1, True)
    assert before - 1 <= _seconds(receipt["sent_at"]) <= time.time() + 1

    result = await _ended(http, execution)
    assert result["status"] == "completed", result
    assert result["path"] == ["prepare", "D", "B"]
    assert result["nodes"]["D"]["output"] == {"by": "ada"}
    assert result["nodes"]["D"]["outcome"] == "AGREE"
    assert result["wake_at"] is None
    taken = (await http.get(f"/api/v1/tasks/{wait['token']}")).json()
    assert (taken["status"], taken["outcome"]) == ("completed", "AGREE")

    late = await http.post(f"/api/v1/executions/{execution}/signals/approve", json={})
    assert execution in _error(late, 409, "failed_precondition")["message"]


async def test_a_signal_sent_before_the_node_is_reached_is_kept_until_it_is(
    http: httpx.AsyncClient,
) -> None:
    execution = await _start(http, "approval", gate="held")
    await eventually(lambda: "held" in gates.at_gate, what="the execution at its gate")
    sent = await http.post(
        f"/api/v1/executions/{execution}/signals/approve", json={"data": {"outcome": "REJECT"}}
    )
    assert sent.status_code == 200, sent.text
    receipt = sent.json()
    assert (receipt["node"], receipt["visit"], receipt["consumed"]) == (None, None, False)
    assert receipt["outcome"] == ""
    second = await http.post(f"/api/v1/executions/{execution}/signals/approve")  # no body
    assert second.status_code == 200 and second.json()["consumed"] is False, second.text
    assert second.json()["id"] != receipt["id"]

    gates.open_gate("held")
    result = await _ended(http, execution)
    # the first signal kept is the first taken; its data's outcome routes
    assert result["status"] == "completed", result
    assert result["path"] == ["prepare", "D", "C"]
    assert result["nodes"]["D"]["output"] == {"outcome": "REJECT"}


async def test_signal_refusals_have_the_error_shape(http: httpx.AsyncClient) -> None:
    missing = await http.post("/api/v1/executions/nope/signals/approve", json={})
    assert "nope" in _error(missing, 404, "not_found")["message"]

    execution = await _start(http, "approval")
    unknown = await http.post(f"/api/v1/executions/{execution}/signals/aprove", json={})
    message = _error(unknown, 400, "invalid_signal")["message"]
    assert "aprove" in message and "approve" in message

    extra = await http.post(f"/api/v1/executions/{execution}/signals/approve", json={"x": 1})
    assert _error(extra, 422, "invalid_argument")["issues"][0]["path"] == "x"
    long = await http.post(
        f"/api/v1/executions/{execution}/signals/approve", json={"outcome": "A" * 201}
    )
    assert _error(long, 422, "invalid_argument")["issues"][0]["path"] == "outcome"
    not_json = await http.post(
        f"/api/v1/executions/{execution}/signals/approve",
        content=b"{",
        headers={"Content-Type": "application/json"},
    )
    _error(not_json, 422, "invalid_argument")

    cancelled = await http.post(f"/api/v1/executions/{execution}/cancel", json={})
    assert cancelled.status_code == 200
    await _ended(http, execution)
    finished = await http.post(f"/api/v1/executions/{execution}/signals/approve", json={})
    assert "cancelled" in _error(finished, 409, "failed_precondition")["message"]


# --- POST /step --------------------------------------------------------------------------------


def _report(task: dict[str, Any], **fields: Any) -> dict[str, Any]:
    report = {
        "flowId": task["execution"],
        "stepName": task["node"],
        "ackState": "AGREE",
        "uuid": task["token"],
        "done": True,
    }
    report.update(fields)
    return report


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        (b"{not json", "body", "not JSON"),
        (b"[1, 2]", "body", "JSON object"),
        (b'"done"', "body", "JSON object"),
        (b'{"flowId": "x", "stepName": "A", "ackState": "AGREE"}', "uuid", "task token"),
        (b'{"flowId": "x", "stepName": "A", "ackState": "AGREE", "uuid": ""}', "uuid", "required"),
        (b'{"flowId": "x", "stepName": "A", "ackState": "OK", "uuid": 7}', "uuid", "string"),
        (b'{"stepName": "A", "ackState": "AGREE", "uuid": "t"}', "flowId", "execution id"),
        (b'{"flowId": "x", "ackState": "AGREE", "uuid": "t"}', "stepName", "step"),
        (b'{"flowId": "x", "stepName": "A", "uuid": "t"}', "ackState", "outcome"),
        (b'{"flowId": "x", "stepName": "A", "uuid": "t", "done": true}', "ackState", "outcome"),
        (b'{"flowId": "x", "stepName": "A", "ackState": 1, "uuid": "t"}', "ackState", "string"),
        (b'{"flowId": "x", "stepName": "A", "uuid": "t", "done": "yes"}', "done", "true"),
        (
            b'{"flowId": "x", "stepName": "A", "ackState": 3, "uuid": "t", "done": false}',
            "ackState",
            "string",
        ),
    ],
)
async def test_step_bodies_that_are_not_reports_are_400_naming_the_field(
    http: httpx.AsyncClient, body: bytes, path: str, words: str
) -> None:
    answer = await http.post("/step", content=body, headers={"Content-Type": "application/json"})
    detail = _error(answer, 400, "invalid_report")
    assert path in [i["path"] for i in detail["issues"]], detail
    issue = next(i for i in detail["issues"] if i["path"] == path)
    assert words in issue["message"], issue


async def test_step_reports_progress_then_completes_the_task_and_routes_next(
    http: httpx.AsyncClient,
) -> None:
    execution = await _start(http, "ci")
    task = await _open_task(http, execution)
    assert (task["kind"], task["queue"], task["outcome"]) == ("worker", "ci", None)

    unknown = await http.post("/step", json=_report(task, uuid="f" * 32))
    _error(unknown, 404, "not_found")
    other_flow = await http.post("/step", json=_report(task, flowId="someone-else"))
    detail = _error(other_flow, 400, "invalid_report")
    assert detail["issues"][0]["path"] == "flowId"
    assert "someone-else" in detail["message"] and execution in detail["message"]
    other_step = await http.post("/step", json=_report(task, stepName="Z"))
    detail = _error(other_step, 400, "invalid_report")
    assert detail["issues"] == [{"path": "stepName", "message": "is 'Z', but the task is step 'A'"}]

    progress = _report(task, done=False, ackState="", percent=40)
    answer = await http.post("/step", json=progress)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "flowId": execution,
        "stepName": "A",
        "ackState": "",
        "uuid": task["token"],
        "done": False,
    }
    still = (await http.get(f"/api/v1/tasks/{task['token']}")).json()
    assert still["status"] in ("pending", "running") and still["details"] == progress

    report = _report(task, ackState="REJECT", build=17)
    del report["done"]  # done defaults to true
    # a Go service posts with its own Content-Type; the body is read as JSON whatever it says
    answer = await http.post(
        "/step", content=json.dumps(report), headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {**{k: report[k] for k in report if k != "build"}, "done": True}
    again = await http.post("/step", json=report)
    assert again.status_code == 200, again.text  # the same report twice: a duplicate
    other = await http.post("/step", json={**report, "ackState": "AGREE"})
    _error(other, 409, "task_ended")

    result = await _ended(http, execution)
    assert result["status"] == "completed", result
    assert result["path"] == ["A", "C"]
    assert result["nodes"]["A"]["outcome"] == "REJECT"
    assert result["nodes"]["A"]["output"] == report
    done = (await http.get(f"/api/v1/tasks/{task['token']}")).json()
    assert (done["status"], done["outcome"], done["output"]) == ("completed", "REJECT", report)


async def test_step_is_open_with_an_api_token_the_rest_is_not(
    engine: EngineServer, tmp_path: Path
) -> None:
    server = await start_server(engine, tmp_path, api_token=TOKEN)
    try:
        base = f"http://127.0.0.1:{server.http_port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            registered = await http.post(
                "/api/v1/workflows",
                content=CI,
                headers={**auth, "Content-Type": "application/yaml"},
            )
            assert registered.status_code == 201, registered.text
            started = await http.post("/api/v1/executions", json={"workflow": "ci"}, headers=auth)
            execution = started.json()["id"]
            _error(await http.get("/api/v1/tasks"), 401, "unauthenticated")

            async def open_task() -> dict[str, Any] | None:
                listed = await http.get(
                    "/api/v1/tasks", params={"execution": execution}, headers=auth
                )
                found = listed.json()["tasks"]
                return found[0] if found else None

            task = await eventually(open_task, what="the ci task")
            _error(await http.post("/step", json=_report(task, uuid="0" * 32)), 404, "not_found")
            answer = await http.post("/step", json=_report(task, ackState="SUCCESS"))
            assert answer.status_code == 200, answer.text
            complete = await http.post(f"/api/v1/tasks/{task['token']}/complete", json={})
            _error(complete, 401, "unauthenticated")  # only /step is open
    finally:
        await server.stop(grace=0.5)


async def test_the_openapi_document_has_the_new_routes(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    signal = spec["paths"]["/api/v1/executions/{execution_id}/signals/{name}"]["post"]
    assert {"200", "400", "404", "409"} <= set(signal["responses"])
    step = spec["paths"]["/step"]["post"]
    assert {"200", "400", "404", "409"} <= set(step["responses"])
    body = step["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"flowId", "stepName", "uuid"}
    task = spec["components"]["schemas"]["TaskOut"]["properties"]
    assert {"kind", "outcome", "due_at"} <= set(task)
    complete = spec["components"]["schemas"]["CompleteIn"]["properties"]
    assert set(complete) == {"output", "outcome"}


# --- tasks completed with an outcome; parked executions ------------------------------------------


async def test_a_task_completed_with_an_outcome_routes_next(http: httpx.AsyncClient) -> None:
    execution = await _start(http, "ci")
    task = await _open_task(http, execution)
    answer = await http.post(
        f"/api/v1/tasks/{task['token']}/complete",
        json={"output": {"outcome": "REJECT", "by": "ada"}, "outcome": "AGREE"},
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["outcome"], answer.json()["kind"]) == ("AGREE", "worker")
    long = await http.post(f"/api/v1/tasks/{task['token']}/complete", json={"outcome": "A" * 201})
    assert _error(long, 422, "invalid_argument")["issues"][0]["path"] == "outcome"

    result = await _ended(http, execution)
    assert result["path"] == ["A", "B"] and result["nodes"]["A"]["outcome"] == "AGREE"
    assert result["nodes"]["A"]["output"] == {"outcome": "REJECT", "by": "ada"}


async def test_a_parked_execution_is_waiting_with_its_wake_time(http: httpx.AsyncClient) -> None:
    execution = await _start(http, "nap")

    async def waiting() -> dict[str, Any] | None:
        body: dict[str, Any] = (await http.get(f"/api/v1/executions/{execution}")).json()
        return body if body["status"] == "waiting" else None

    parked = await eventually(waiting, what="the execution parked")
    timer = await _open_task(http, execution)
    assert (timer["kind"], timer["queue"], timer["node"]) == ("timer", "", "nap")
    assert abs(_seconds(timer["due_at"]) - (_seconds(timer["created_at"]) + 3600)) < 1
    # the timer's end wakes it through its task; wake_at is the engine's own earliest timer,
    # here the execution's timeout
    assert abs(_seconds(parked["wake_at"]) - (_seconds(parked["started_at"]) + 7200)) < 2

    listed = (await http.get("/api/v1/executions", params={"status": "waiting"})).json()
    assert [(e["id"], e["wake_at"]) for e in listed["executions"]] == [
        (execution, parked["wake_at"])
    ]
    others = (await http.get("/api/v1/executions", params={"status": "running"})).json()
    assert others["executions"] == []
    bad = await http.get("/api/v1/executions", params={"status": "parked"})
    _error(bad, 422, "invalid_argument")

    cancelled = await http.post(f"/api/v1/executions/{execution}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    result = await _ended(http, execution)
    assert result["status"] == "cancelled" and result["wake_at"] is None
