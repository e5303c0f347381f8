"""Monitoring against real processes: a ``weir orchestrator`` and two ``weir engine`` processes
on 127.0.0.1, driven over HTTP.

* ``POST /trigger/{workflow}`` end to end, at once and with ``?wait=true``.
* A deliberately stalled Server-Sent Events subscriber (a socket that never reads) while 1,000
  executions run: every execution completes, the stalled subscriber is cut off with a
  ``lagged`` event naming its resume point, the drop is counted in ``/metrics``, and resuming
  from that point (``Last-Event-ID``) yields every later event: no sequence number is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.cluster import Cluster
from tests.support.poll import eventually

pytestmark = pytest.mark.integration

CHAIN = """
name: chain
version: 1.0.0
inputs:
  n: {type: integer, default: 0}
nodes:
  - id: a
    lua: return {n = inputs.n + 1}
  - id: b
    depends_on: [a]
    noop: {}
  - id: c
    depends_on: [b]
    lua: return {n = outputs.a.n * 2}
outputs:
  n: ${outputs.c.n}
"""
FAN = "\n".join(
    [
        "name: fan",
        "version: 1.0.0",
        "nodes:",
        *(f"  - {{id: n{i}, noop: {{}}}}" for i in range(10)),
        "  - {id: join, depends_on: [" + ", ".join(f"n{i}" for i in range(10)) + "], noop: {}}",
    ]
)
"""24 events an execution: more than the kernel's socket buffers hold for 1,000 of them."""
EXECUTIONS = 1000


@contextlib.asynccontextmanager
async def _started(cluster: Cluster, **env: Any) -> AsyncIterator[httpx.AsyncClient]:
    cluster.start_engine("e1", capacity=200)
    cluster.start_engine("e2", capacity=200)
    cluster.start_orchestrator(**env)
    async with cluster.client() as client:
        await cluster.wait_ready(client, 2)
    async with httpx.AsyncClient(base_url=cluster.http_url, timeout=30) as http:
        response = await http.post("/api/v1/workflows", content=CHAIN)
        assert response.status_code == 201, response.text
        response = await http.post("/api/v1/workflows", content=FAN)
        assert response.status_code == 201, response.text
        yield http


async def test_http_trigger_end_to_end(cluster: Cluster) -> None:
    async with _started(cluster) as http:
        at_once = await http.post(
            "/trigger/chain",
            json={"inputs": {"n": 4}},
            headers={"Content-Type": "application/json"},
        )
        assert at_once.status_code == 202, at_once.text
        execution_id = at_once.json()["execution_id"]
        waited = await http.post("/trigger/chain?wait=true", json={"inputs": {"n": 1}})
        assert waited.status_code == 200, waited.text
        result = waited.json()
        assert result["status"] == "completed" and result["outputs"] == {"n": 4}
        assert result["path"] == ["a", "b", "c"]

        async def first_completed() -> dict[str, Any] | None:
            first: dict[str, Any] = (await http.get(f"/api/v1/executions/{execution_id}")).json()
            return first if first["status"] == "completed" else None

        first = await eventually(first_completed, what="the first execution to complete")
        assert first["outputs"] == {"n": 10}
        missing = await http.post("/trigger/nope", json={})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"


class StalledSubscriber:
    """An SSE request on a socket that is never read (with a tiny receive buffer) once its
    first event arrived: the proof that the server subscribed it."""

    def __init__(self, port: int, after: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            b"GET /api/v1/events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n"
            b"Last-Event-ID: %d\r\n\r\n" % after
        )
        self.head: list[bytes] = []

    def first_event(self, within: float) -> None:
        """Read until the first event message (the server subscribes before it reads the log
        that this one comes from), then read no more until ``drain``."""
        self.sock.settimeout(within)
        while b"\nid: " not in b"".join(self.head):
            chunk = self.sock.recv(256)
            assert chunk, b"".join(self.head)
            self.head.append(chunk)

    def drain(self, within: float) -> str:
        """Everything the server sent, up to its end of stream (it ends after ``lagged``)."""
        self.sock.settimeout(0.5)
        chunks: list[bytes] = self.head
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                if b"event: lagged" in b"".join(chunks[-2:]):
                    break
                continue
            if not chunk:
                break
            chunks.append(chunk)
        self.sock.close()
        return b"".join(chunks).decode(errors="replace")


def _sse_ids(text: str) -> tuple[list[int], int | None]:
    """The ids of event messages, and the resume point of a ``lagged`` message if any."""
    ids: list[int] = []
    lagged = None
    for block in text.split("\n\n"):
        lines = block.splitlines()
        ident = next((int(x[4:]) for x in lines if x.startswith("id: ")), None)
        if ident is None:
            continue
        if "event: lagged" in lines:
            lagged = ident
        else:
            ids.append(ident)
    return ids, lagged


async def _follow(http: httpx.AsyncClient, after: int, until: int, seen: list[int]) -> int:
    """Read the stream from ``after`` like a browser's EventSource: reconnect with
    ``Last-Event-ID`` after a ``lagged`` end; stop once sequence ``until`` arrived.
    Returns how many times it was cut off."""
    cut_off = 0
    last = after
    while last < until:
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
        async with http.stream("GET", "/api/v1/events", headers=headers) as response:
            kind = "message"
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("id: "):
                    ident = int(line[4:])
                    if kind == "lagged":
                        cut_off += 1
                    else:
                        seen.append(ident)
                    last = ident
                elif line == "":
                    kind = "message"
                    if last >= until:
                        break
    return cut_off


def _metric(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not in /metrics")


async def test_a_stalled_subscriber_is_cut_off_and_resumes_without_a_gap(
    cluster: Cluster,
) -> None:
    async with _started(cluster, subscriber_buffer=200) as http:
        start_seq = (await http.get("/api/v1/events?limit=1")).json()["last_sequence"]
        assert start_seq > 0  # the engines joined, the workflows were registered
        # It resumes after start_seq - 1: its first event, start_seq, shows it is subscribed.
        stalled = StalledSubscriber(cluster.http_port, after=start_seq - 1)
        await asyncio.to_thread(stalled.first_event, within=20)

        async with cluster.client(timeout=60) as client:
            began = time.monotonic()
            ids: list[str] = []
            for offset in range(0, EXECUTIONS, 100):
                started = await asyncio.gather(
                    *(client.start("fan") for _ in range(offset, offset + 100))
                )
                ids += [s.id for s in started]

            async def all_done() -> bool:
                page = await client.executions(workflow="fan", status=3, limit=1000)
                return len(page) == EXECUTIONS

            await eventually(
                all_done,
                within=180 - (time.monotonic() - began),
                what="1,000 executions to finish",
                interval=0.5,
            )
        assert len(set(ids)) == EXECUTIONS

        last_seq = (await http.get("/api/v1/events?limit=1")).json()["last_sequence"]
        metrics = (await http.get("/metrics")).text
        assert _metric(metrics, "weir_subscriber_drops_total") >= 1
        assert _metric(metrics, "weir_executions_started_total") >= EXECUTIONS

        text = stalled.drain(within=30)
        got, resume_after = _sse_ids(text)
        assert resume_after is not None, text[-500:]
        assert got == list(range(start_seq, resume_after + 1))  # in order, none missing
        assert resume_after < last_seq  # it really fell behind

        resumed: list[int] = []
        await asyncio.wait_for(_follow(http, resume_after, last_seq, resumed), 60)
        assert resumed[: last_seq - resume_after] == list(range(resume_after + 1, last_seq + 1))

        completed = await http.get("/api/v1/events?since=0&type=execution.completed&limit=10000")
        finished = {e["execution_id"] for e in completed.json()["events"]}
        assert set(ids) <= finished
        page = json.loads((await http.get("/api/v1/executions?status=failed")).text)
        assert page["executions"] == []
