"""The REST API over real HTTP: an ``OrchestratorServer`` in this process (gRPC and HTTP on
127.0.0.1 ports, SQLite in tmp_path) with a real in-process engine.

Covers workflows, executions with pagination, ``POST /trigger/{workflow}`` (at once and with
``?wait=true``), the error shape and statuses, the bearer token on both APIs, the request-size
limit, event pages, and Server-Sent Events resumed with ``Last-Event-ID`` without a gap.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from weir import Client

from engine.server.process import EngineServer
from orchestrator.errors import RpcError
from orchestrator.server import OrchestratorServer
from tests.support.engines import running_engine
from tests.support.poll import eventually
from tests.support.servers import start_server

ADD = """
name: add
version: 1.0.0
inputs:
  a: {type: integer}
  b: {type: integer, default: 1}
nodes:
  - id: sum
    lua: return {n = inputs.a + inputs.b}
outputs:
  n: ${outputs.sum.n}
"""
SLOW = """
name: slow
version: 1.0.0
nodes:
  - id: wait
    sleep: 30s
"""
TOKEN = "s3cret-token"


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine(capacity=50) as server:
        yield server


@pytest.fixture
async def server(engine: EngineServer, tmp_path: Path) -> AsyncIterator[OrchestratorServer]:
    server = await start_server(engine, tmp_path, max_request_bytes=4096, subscriber_buffer=50)
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


@pytest.fixture
async def http(server: OrchestratorServer) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{server.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        response = await client.post(
            "/api/v1/workflows", content=ADD, headers={"Content-Type": "application/yaml"}
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


async def test_workflows_register_list_read_deprecate_and_delete(
    http: httpx.AsyncClient,
) -> None:
    again = await http.post("/api/v1/workflows", content=ADD)
    assert again.status_code == 200 and again.json()["created"] is False
    newer = ADD.replace("1.0.0", "1.1.0").replace("inputs.b}", "inputs.b + 100}")
    as_json = await http.post(
        "/api/v1/workflows",
        content=json.dumps(
            {"name": "slow", "version": "1.0.0", "nodes": [{"id": "w", "noop": {}}]}
        ),
        headers={"Content-Type": "application/json"},
    )
    assert as_json.status_code == 201, as_json.text
    assert (await http.post("/api/v1/workflows", content=newer)).status_code == 201

    listing = (await http.get("/api/v1/workflows")).json()["workflows"]
    assert [(w["name"], w["latest_version"], w["versions"]) for w in listing] == [
        ("add", "1.1.0", ["1.0.0", "1.1.0"]),
        ("slow", "1.0.0", ["1.0.0"]),
    ]
    latest = (await http.get("/api/v1/workflows/add")).json()
    assert latest["version"] == "1.1.0" and latest["nodes"] == ["sum"]
    diff = (await http.get("/api/v1/workflows/add/diff?from=1.0.0&to=1.1.0")).json()
    assert diff["changed"] == [{"node": "sum", "fields": ["lua"]}]

    deprecated = await http.post(
        "/api/v1/workflows/add/versions/1.1.0/deprecate", json={"deprecated": True}
    )
    assert deprecated.json()["deprecated"] is True
    assert (await http.get("/api/v1/workflows/add")).json()["version"] == "1.0.0"
    refused = await http.post("/api/v1/executions", json={"workflow": "add", "version": "1.1.0"})
    assert "deprecated" in _error(refused, 409, "failed_precondition")["message"]

    assert (await http.delete("/api/v1/workflows/add/versions/1.1.0")).status_code == 204
    versions = (await http.get("/api/v1/workflows/add/versions")).json()["versions"]
    assert [v["version"] for v in versions] == ["1.0.0"]
    gone = await http.get("/api/v1/workflows/add/versions/1.1.0")
    assert "1.1.0" in _error(gone, 404, "not_found")["message"]


async def test_bad_input_names_the_field_and_changes_nothing(http: httpx.AsyncClient) -> None:
    broken = ADD.replace("name: add", "name: broken").replace("inputs.a + inputs.b", "inputs.a +")
    detail = _error(await http.post("/api/v1/workflows", content=broken), 422, "invalid_definition")
    assert any(i["path"].startswith("nodes[0]") for i in detail["issues"]), detail
    assert "broken" not in (await http.get("/api/v1/workflows")).text

    detail = _error(
        await http.post("/api/v1/executions", json={"workflow": "add", "inputs": {"a": "x"}}),
        422,
        "invalid_argument",
    )
    assert any(i["path"] == "inputs.a" for i in detail["issues"]), detail
    detail = _error(
        await http.post("/api/v1/executions", json={"workflow": "add", "colour": 1}),
        422,
        "invalid_argument",
    )
    assert detail["issues"][0]["path"] == "colour"
    _error(await http.get("/api/v1/executions/nope"), 404, "not_found")
    _error(await http.get("/api/v1/executions?page_token=garbage"), 422, "invalid_argument")
    _error(await http.get("/api/v1/executions?limit=0"), 422, "invalid_argument")
    _error(await http.get("/api/v1/nowhere"), 404, "not_found")
    _error(await http.delete("/api/v1/workflows"), 405, "method_not_allowed")
    wrong_type = await http.post(
        "/api/v1/workflows", content=ADD, headers={"Content-Type": "image/png"}
    )
    _error(wrong_type, 415, "unsupported_media_type")
    assert (await http.get("/api/v1/executions")).json()["executions"] == []


async def test_request_size_limit_answers_413_declared_or_chunked(
    http: httpx.AsyncClient,
) -> None:
    big = "# " + "x" * 5000 + "\n" + ADD
    _error(await http.post("/api/v1/workflows", content=big), 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"# " + b"y" * 1000 + b"\n"

    chunked = await http.post("/api/v1/workflows", content=chunks())
    _error(chunked, 413, "payload_too_large")


async def test_executions_start_wait_get_list_pages_and_cancel(http: httpx.AsyncClient) -> None:
    started = await http.post(
        "/api/v1/executions?wait=true", json={"workflow": "add", "inputs": {"a": 2}}
    )
    assert started.status_code == 200, started.text
    result = started.json()
    assert result["status"] == "completed" and result["outputs"] == {"n": 3}
    assert result["nodes"]["sum"]["status"] == "completed" and result["path"] == ["sum"]
    assert started.headers["location"] == f"/api/v1/executions/{result['id']}"
    assert (await http.get(started.headers["location"])).json()["outputs"] == {"n": 3}

    ids = {result["id"]}
    for a in range(4):
        response = await http.post(
            "/api/v1/executions", json={"workflow": "add", "inputs": {"a": a}}
        )
        assert response.status_code == 201
        ids.add(response.json()["id"])
    seen: list[str] = []
    token = ""
    for _ in range(5):
        page = (
            await http.get(f"/api/v1/executions?workflow=add&limit=2&page_token={token}")
        ).json()
        seen += [e["id"] for e in page["executions"]]
        token = page["next_page_token"]
        if not token:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5

    slow = (await http.post("/api/v1/workflows", content=SLOW)).json()
    assert slow["created"]
    running = (await http.post("/api/v1/executions", json={"workflow": "slow"})).json()
    cancelled = await http.post(
        f"/api/v1/executions/{running['id']}/cancel", json={"reason": "enough"}
    )
    assert cancelled.status_code == 200

    async def cancelled_state() -> dict[str, Any] | None:
        state: dict[str, Any] = (await http.get(f"/api/v1/executions/{running['id']}")).json()
        return state if state["status"] == "cancelled" else None

    state = await eventually(cancelled_state, what="the slow execution to be cancelled")
    assert state["status"] == "cancelled"
    page = (await http.get("/api/v1/executions?status=cancelled")).json()
    assert [e["id"] for e in page["executions"]] == [running["id"]]
    engines = (await http.get("/api/v1/engines")).json()["engines"]
    assert [e["id"] for e in engines] == ["e1"] and engines[0]["capacity"] == 50


async def test_executions_list_by_version_and_creation_time_in_iso_8601_or_unix_seconds(
    http: httpx.AsyncClient,
) -> None:
    newer = ADD.replace("1.0.0", "1.1.0")
    assert (await http.post("/api/v1/workflows", content=newer)).status_code == 201
    ids = []
    for version in ("1.0.0", "1.1.0", "1.1.0"):
        body = {"workflow": "add", "version": version, "inputs": {"a": 1}}
        started = await http.post("/api/v1/executions?wait=true", json=body)
        assert started.status_code == 200, started.text
        ids.append(started.json()["id"])
    newest_first = ids[::-1]

    async def listed(**params: str | int) -> list[str]:
        response = await http.get("/api/v1/executions", params=params)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["executions"]]

    summaries = (await http.get("/api/v1/executions")).json()["executions"]
    assert [e["id"] for e in summaries] == newest_first
    assert await listed(version="1.1.0") == newest_first[:2]
    assert await listed(workflow="add", version="1.0.0") == [ids[0]]
    # between the first and the second execution, written four ways
    created = [datetime.fromisoformat(e["created_at"]) for e in reversed(summaries)]
    between = created[0] + (created[1] - created[0]) / 2
    for written in (
        between.isoformat().replace("+00:00", "Z"),
        between.astimezone(timezone(timedelta(hours=1))).isoformat(),
        between.replace(tzinfo=None).isoformat(),  # no offset: UTC
        f"{between.timestamp():.6f}",
    ):
        assert await listed(created_after=written) == newest_first[:2], written
        assert await listed(created_before=written) == [ids[0]], written
    # with the other filters and the keyset pages
    page = (
        await http.get(
            "/api/v1/executions",
            params={"created_after": f"{between.timestamp()}", "version": "1.1.0", "limit": 1},
        )
    ).json()
    assert [e["id"] for e in page["executions"]] == [ids[2]]
    rest = await listed(
        created_after=f"{between.timestamp()}", limit=1, page_token=page["next_page_token"]
    )
    assert rest == [ids[1]]
    assert await listed(created_after=f"{created[2].timestamp() + 1}") == []
    detail = _error(
        await http.get("/api/v1/executions?created_after=yesterday"), 422, "invalid_argument"
    )
    assert "created_after" in json.dumps(detail)


async def test_answers_on_a_kept_alive_connection_are_not_held_back(
    http: httpx.AsyncClient,
) -> None:
    # The accepted sockets have TCP_NODELAY (asyncio sets it on the connections of a socket
    # made for TCP): without it, an answer's second segment waited for the client's delayed
    # ACK of the first, 40 ms a request on Linux, on every request but a connection's first.
    assert (await http.get("/healthz")).status_code == 200
    began = time.perf_counter()
    for _ in range(10):
        assert (await http.get("/healthz")).status_code == 200
    assert time.perf_counter() - began < 0.3


async def test_http_trigger_returns_the_id_at_once_or_the_result_with_wait(
    http: httpx.AsyncClient,
) -> None:
    at_once = await http.post("/trigger/add", json={"inputs": {"a": 40}})
    assert at_once.status_code == 202, at_once.text
    body = at_once.json()
    assert body["workflow"] == "add" and body["url"] == f"/api/v1/executions/{body['execution_id']}"
    waited = await http.post("/trigger/add?wait=true", json={"inputs": {"a": 1, "b": 2}})
    assert waited.status_code == 200 and waited.json()["outputs"] == {"n": 3}

    async def first_completed() -> dict[str, Any] | None:
        first: dict[str, Any] = (await http.get(body["url"])).json()
        return first if first["status"] == "completed" else None

    first = await eventually(first_completed, what="the first execution to complete")
    assert first["outputs"] == {"n": 41}

    keyed = [
        await http.post(
            "/trigger/add", json={"inputs": {"a": 5}}, headers={"Idempotency-Key": "k1"}
        )
        for _ in range(2)
    ]
    assert keyed[0].json()["execution_id"] == keyed[1].json()["execution_id"]
    _error(await http.post("/trigger/missing", json={}), 404, "not_found")
    detail = _error(await http.post("/trigger/add", json={"inputs": {}}), 422, "invalid_argument")
    assert any(i["path"] == "inputs.a" for i in detail["issues"]), detail
    _error(await http.post("/trigger/add", content=b"{not json"), 422, "invalid_argument")
    as_curl_sends_it = await http.post(
        "/trigger/add?wait=true",
        content=b'{"inputs": {"a": 8}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert as_curl_sends_it.status_code == 200 and as_curl_sends_it.json()["outputs"] == {"n": 9}
    detail = _error(
        await http.post("/trigger/add", json={"inputs": {"a": 1}, "colour": "red"}),
        422,
        "invalid_argument",
    )
    assert detail["issues"][0]["path"] == "colour"


async def test_event_pages_filter_and_read_on_from_a_sequence(http: httpx.AsyncClient) -> None:
    done = await http.post("/trigger/add?wait=true", json={"inputs": {"a": 1}})
    execution_id = done.json()["id"]
    timeline = (await http.get(f"/api/v1/executions/{execution_id}/events")).json()["events"]
    types = [e["type"] for e in timeline]
    assert types[0] == "execution.queued" and types[-1] == "execution.completed"
    assert "node.completed" in types
    nodes = (await http.get(f"/api/v1/events?execution={execution_id}&type=node.&since=0")).json()
    assert nodes["events"] and all(e["type"].startswith("node.") for e in nodes["events"])
    first = (await http.get("/api/v1/events?since=0&limit=2")).json()
    rest = (await http.get(f"/api/v1/events?since={first['last_sequence']}&limit=1000")).json()
    sequences = [e["sequence"] for e in first["events"] + rest["events"]]
    assert sequences == list(range(1, len(sequences) + 1))
    newest = (await http.get("/api/v1/events?limit=3")).json()["events"]
    assert [e["sequence"] for e in newest] == sequences[-3:]
    warnings = (await http.get("/api/v1/events?since=0&severity=warning")).json()["events"]
    assert all(e["severity"] in ("warning", "error") for e in warnings)


async def _sse(
    client: httpx.AsyncClient, until: str, headers: dict[str, str] | None = None, query: str = ""
) -> list[tuple[str, int, dict[str, Any]]]:
    """Read SSE messages until one of type ``until`` (or ``event: until``) arrives."""
    got: list[tuple[str, int, dict[str, Any]]] = []
    async with client.stream(
        "GET",
        f"/api/v1/events{query}",
        headers={"Accept": "text/event-stream", **(headers or {})},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind, ident, data = "message", 0, ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("id: "):
                ident = int(line[4:])
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                payload = json.loads(data)
                got.append((kind, ident, payload))
                if kind == until or payload.get("type") == until:
                    return got
                kind, data = "message", ""
    return got


async def test_sse_resumes_after_a_disconnect_with_no_missed_event(
    http: httpx.AsyncClient, server: OrchestratorServer
) -> None:
    monitor = server.core.monitor
    subscribed = monitor.subscriber_count
    reader = asyncio.create_task(_sse(http, "execution.completed", query="?workflow=add"))
    await eventually(
        lambda: monitor.subscriber_count > subscribed, what="the SSE reader to subscribe"
    )
    first = (await http.post("/trigger/add", json={"inputs": {"a": 1}})).json()
    got = await asyncio.wait_for(reader, 20)
    assert all(p["execution_id"] == first["execution_id"] for _, _, p in got)
    last_seen = got[-1][1]

    # While nobody listens: two more executions.
    missed = [
        (await http.post("/trigger/add?wait=true", json={"inputs": {"a": a}})).json()["id"]
        for a in (2, 3)
    ]
    resumed = await asyncio.wait_for(
        _sse(http, "execution.completed", headers={"Last-Event-ID": str(last_seen)}), 20
    )
    assert resumed[0][1] > last_seen
    assert resumed[-1][2]["execution_id"] == missed[0]
    log = (await http.get(f"/api/v1/events?since={last_seen}&limit=10000")).json()["events"]
    expected = [e["sequence"] for e in log][: len(resumed)]
    assert [ident for _, ident, _ in resumed] == expected  # the log's order, none skipped
    again = await asyncio.wait_for(
        _sse(http, "execution.completed", query=f"?since={resumed[-1][1]}&execution={missed[1]}"),
        20,
    )
    assert {p["execution_id"] for _, _, p in again} == {missed[1]}
    bad = await http.get(
        "/api/v1/events", headers={"Accept": "text/event-stream", "Last-Event-ID": "x"}
    )
    _error(bad, 422, "invalid_argument")


async def test_openapi_document_lists_the_api(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    for path in (
        "/api/v1/workflows",
        "/api/v1/executions",
        "/api/v1/executions/{execution_id}",
        "/api/v1/events",
        "/api/v1/engines",
        "/trigger/{workflow}",
        "/api/v1/workflows/{name}/triggers/{trigger}",
    ):
        assert path in spec["paths"], path
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"status": "ok"}


async def test_bearer_token_guards_rest_and_grpc_but_not_health_or_metrics(
    engine: EngineServer, tmp_path: Path
) -> None:
    server = await start_server(engine, tmp_path, api_token=TOKEN)
    try:
        base = f"http://127.0.0.1:{server.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            detail = _error(await http.get("/api/v1/workflows"), 401, "unauthenticated")
            assert "Bearer" in detail["message"]
            wrong = await http.get("/api/v1/workflows", headers={"Authorization": "Bearer no"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith(
                "Bearer"
            )
            ok = await http.get("/api/v1/workflows", headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/metrics")).status_code == 200

        address = f"127.0.0.1:{server.port}"
        async with Client(address, timeout=5) as anonymous:
            with pytest.raises(RpcError) as denied:
                await anonymous.workflows()
            assert denied.value.code == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(RpcError):
                async for _ in anonymous.events(follow=False):
                    pass
        async with Client(address, timeout=5, token=TOKEN) as client:
            assert await client.workflows() == []
            types = [e.type async for e in client.events(follow=False)]
            assert "engine.joined" in types
        async with grpc.aio.insecure_channel(address) as channel:
            from grpc_health.v1 import health_pb2, health_pb2_grpc

            check = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert check.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(grace=0.5)


async def test_cron_triggers_through_the_api(http: httpx.AsyncClient) -> None:
    nightly = ADD.replace("name: add", "name: nightly") + (
        "triggers:\n  - {name: nightly, cron: '0 3 * * *', timezone: Europe/Paris, "
        "inputs: {a: 1}}\n"
    )
    assert (await http.post("/api/v1/workflows", content=nightly)).status_code == 201
    spec = {
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "inputs": {"a": 2},
        "overlap": "allow",
        "catch_up": "latest",
        "catch_up_window": "2h",
    }
    saved = await http.put("/api/v1/workflows/nightly/triggers/every-5", json=spec)
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["source"] == "api" and body["catch_up_window"] == 7200
    assert body["next_fire_at"] is not None and body["last_fire_at"] is None

    listed = (await http.get("/api/v1/workflows/nightly/triggers")).json()["triggers"]
    assert {(t["name"], t["source"]) for t in listed} == {
        ("nightly", "definition"),
        ("every-5", "api"),
    }
    everything = (await http.get("/api/v1/triggers")).json()["triggers"]
    assert {t["workflow"] for t in everything} == {"nightly"}

    bad = await http.put(
        "/api/v1/workflows/nightly/triggers/bad", json={**spec, "cron": "61 * * * *"}
    )
    detail = _error(bad, 422, "invalid_definition")
    assert any(i["path"].endswith("cron") for i in detail["issues"]), detail
    _error(
        await http.put("/api/v1/workflows/nightly/triggers/nightly", json=spec),
        409,
        "failed_precondition",
    )
    _error(await http.put("/api/v1/workflows/nope/triggers/x", json=spec), 404, "not_found")
    _error(await http.get("/api/v1/workflows/nope/triggers"), 404, "not_found")
    assert (await http.delete("/api/v1/workflows/nightly/triggers/every-5")).status_code == 204
    _error(await http.delete("/api/v1/workflows/nightly/triggers/every-5"), 404, "not_found")
    _error(
        await http.delete("/api/v1/workflows/nightly/triggers/nightly"),
        409,
        "failed_precondition",
    )
    events = (await http.get("/api/v1/events?since=0&type=trigger.")).json()["events"]
    assert [e["type"] for e in events] == ["trigger.saved", "trigger.deleted"]
