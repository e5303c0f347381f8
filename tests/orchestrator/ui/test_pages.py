"""The UI's pages and fragments over real HTTP: an ``OrchestratorServer`` in this process
(SQLite in tmp_path) with a real in-process engine.

Every page and fragment of executions, events and the overview: status codes, filters and
keyset pages, user data escaped everywhere it shows (outputs, errors, inputs are user input),
the actions (cancel, run again, retry, signal, complete a task) with their CSRF rules, the
session's Server-Sent Events, and the security headers. The token rules are in
``test_session.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from engine.server.process import EngineServer
from orchestrator.server import OrchestratorServer
from tests.support import tasks as gates
from tests.support.engines import running_engine
from tests.support.poll import eventually
from tests.support.servers import start_server
from tests.support.ui import UiSession
from tests.support.waits import APPROVAL, CI

EVIL = "<script>alert(1)</script>\"'&"
HOSTILE = """
name: hostile
version: 1.0.0
description: 'desc <b>bold</b>'
inputs:
  text: {type: string, default: "x"}
nodes:
  - id: echo
    lua: return {said = inputs.text}
  - id: boom
    depends_on: [echo]
    lua: error("bad <img src=x onerror=alert(2)> & more")
  - id: after
    depends_on: [boom]
    lua: return {}
"""
LOOP = """
name: loop
version: 1.0.0
nodes:
  - id: count
    lua: |
      local n = (outputs.count and outputs.count.n or 0) + 1
      return {n = n, outcome = n < 3 and "again" or "done"}
    next: {again: count, done: finish}
  - id: finish
    noop: {}
"""
SLOW = """
name: slow
version: 1.0.0
nodes:
  - id: first
    noop: {}
  - id: nap
    depends_on: [first]
    sleep: 30s
"""
RAW_TAGS = ("<script>alert(1)", "<img src=x", "<b>bold</b>")


@pytest.fixture(autouse=True)
def _open_gates() -> None:
    gates.reset()
    gates.open_gate("open")  # APPROVAL's first node passes at once


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine(capacity=50, park_after=0.3) as server:
        yield server


@pytest.fixture
async def server(engine: EngineServer, tmp_path: Path) -> AsyncIterator[OrchestratorServer]:
    server = await start_server(engine, tmp_path)
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


@pytest.fixture
async def ui(server: OrchestratorServer) -> AsyncIterator[UiSession]:
    base = f"http://127.0.0.1:{server.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        for source in (HOSTILE, LOOP, SLOW, APPROVAL, CI):
            answer = await client.post(
                "/api/v1/workflows", content=source, headers={"Content-Type": "application/yaml"}
            )
            assert answer.status_code == 201, answer.text
        yield UiSession(client)


async def _run(ui: UiSession, workflow: str, inputs: dict[str, object] | None = None) -> str:
    answer = await ui.http.post(
        "/api/v1/executions?wait=true", json={"workflow": workflow, "inputs": inputs or {}}
    )
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["id"])


def _no_raw_tags(html: str) -> None:
    for tag in RAW_TAGS:
        assert tag not in html, f"{tag!r} reached the page unescaped"


def _nodes(html: str) -> dict[str, str]:
    """``data-node`` → ``data-status`` of the graph's node elements."""
    found = {}
    for element in re.findall(r"<g [^>]*data-node=[^>]*>", html):
        node = re.search(r'data-node="([^"]*)"', element)
        status = re.search(r'data-status="([^"]*)"', element)
        assert node and status, element
        found[node.group(1)] = status.group(1)
    return found


async def test_a_failed_execution_shows_its_path_and_escapes_what_users_wrote(
    ui: UiSession,
) -> None:
    execution = await _run(ui, "hostile", {"text": EVIL})
    html = await ui.page(f"/ui/executions/{execution}")
    _no_raw_tags(html)
    assert _nodes(html) == {"echo": "completed", "boom": "failed", "after": "skipped"}
    assert "&lt;img src=x onerror=alert(2)&gt;" in html  # the error, shown escaped
    assert "✗ failed" in html and "\N{EN DASH} skipped" in html  # status words beside the colour
    assert 'class="edge' in html and "failed-path" in html
    panel = await ui.page(f"/ui/executions/{execution}/nodes/echo", headers={"HX-Request": "true"})
    _no_raw_tags(panel)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in panel  # the output, escaped
    failed = await ui.page(f"/ui/executions/{execution}/nodes/boom")
    assert "bad &lt;img" in failed
    timeline = await ui.page(f"/ui/executions/{execution}/timeline")
    assert 'data-node="boom"' in timeline and 'data-status="failed"' in timeline
    events = await ui.page(f"/ui/executions/{execution}/events")
    assert "node.failed" in events
    _no_raw_tags(events)
    status = (await ui.http.get(f"/ui/executions/{execution}/status")).json()
    assert status["status"] == "failed" and status["finished"] is True
    assert status["nodes"]["boom"][0] == "failed"


async def test_loop_visits_are_counted_on_the_node(ui: UiSession) -> None:
    execution = await _run(ui, "loop")
    html = await ui.page(f"/ui/executions/{execution}")
    assert _nodes(html) == {"count": "completed", "finish": "completed"}
    assert "\N{MULTIPLICATION SIGN}3" in html  # three visits of `count`
    assert "edge-loop" in html
    status = (await ui.http.get(f"/ui/executions/{execution}/status")).json()
    assert status["nodes"]["count"] == ["completed", 1, 3]
    table = await ui.page(f"/ui/executions/{execution}/nodes", headers={"HX-Request": "true"})
    rows = re.findall(
        r"<tr><td>.*?<code>(\w+)</code>.*?data-status=\"(\w+)\".*?<td>(\d+)</td><td>(\d+)</td>",
        table,
        re.S,
    )
    assert rows == [("count", "completed", "1", "3"), ("finish", "completed", "1", "1")]


async def test_unknown_things_are_404_pages_and_bad_input_422(ui: UiSession) -> None:
    missing = await ui.http.get("/ui/executions/nope")
    assert missing.status_code == 404 and "nope" in missing.text and "<html" in missing.text
    execution = await _run(ui, "loop")
    node = await ui.http.get(f"/ui/executions/{execution}/nodes/ghost")
    assert node.status_code == 422 and "ghost" in node.text
    for url, field in [
        ("/ui/executions?status=sideways", "status"),
        ("/ui/executions?window=3y", "window"),
        ("/ui/executions?after=yesterday", "after"),
        ("/ui/executions?before=x~y", "before"),
        ("/ui/events?severity=loud", "severity"),
    ]:
        answer = await ui.http.get(url)
        assert answer.status_code == 422, (url, answer.text)
        assert f"<code>{field}</code>" in answer.text and "Traceback" not in answer.text
    fragment = await ui.http.get("/ui/executions/nope", headers={"HX-Request": "true"})
    assert fragment.status_code == 404 and "<html" not in fragment.text


async def test_the_list_filters_and_pages_by_keyset(ui: UiSession) -> None:
    ids = [await _run(ui, "loop") for _ in range(4)]
    failed = await _run(ui, "hostile")
    from orchestrator.ui import executions as pages

    pages.PAGE, saved = 2, pages.PAGE  # small pages, so four executions take three
    try:
        first = await ui.page("/ui/executions?workflow=loop")
        rows = re.findall(r'<tr data-execution="([^"]+)"', first)
        assert rows == ids[::-1][:2]
        older = re.search(r'<a rel="next" href="([^"]+)"', first)
        assert older is not None
        second = await ui.page(older.group(1).replace("&amp;", "&"))
        assert re.findall(r'<tr data-execution="([^"]+)"', second) == ids[::-1][2:4]
    finally:
        pages.PAGE = saved
    only_failed = await ui.page("/ui/executions?status=failed")
    assert re.findall(r'<tr data-execution="([^"]+)"', only_failed) == [failed]
    recent = await ui.page("/ui/executions?window=1h&workflow=hostile")
    assert failed in recent
    future = await ui.page("/ui/executions?after=2999-01-01T00:00")
    assert "No execution matches." in future
    rows_only = await ui.page(
        "/ui/executions?workflow=loop", headers={"HX-Request": "true", "HX-Target": "executions"}
    )
    assert "<html" not in rows_only and ids[0] in rows_only


async def test_cancel_rerun_and_retry_from_the_page(ui: UiSession) -> None:
    answer = await ui.http.post("/api/v1/executions", json={"workflow": "slow"})
    slow = answer.json()["id"]
    await ui.page(f"/ui/executions/{slow}")
    refused = await ui.http.post(f"/ui/executions/{slow}/cancel", data={"reason": "x"})
    assert refused.status_code == 403  # no CSRF token
    cancelled = await ui.post(f"/ui/executions/{slow}/cancel", {"reason": "from a test"})
    assert cancelled.status_code == 204 and cancelled.headers["HX-Redirect"].endswith(slow)

    async def ended() -> bool:
        status = (await ui.http.get(f"/ui/executions/{slow}/status")).json()
        return bool(status["status"] == "cancelled")

    await eventually(ended, what="the cancel")

    failed = await _run(ui, "hostile", {"text": "again"})
    await ui.page(f"/ui/executions/{failed}")
    again = await ui.post(f"/ui/executions/{failed}/rerun", htmx=False)
    assert again.status_code == 303
    new = again.headers["location"].rsplit("/", 1)[1]
    assert new != failed
    record = (await ui.http.get(f"/api/v1/executions/{new}")).json()
    assert record["inputs"] == {"text": "again"} and record["workflow"] == "hostile"
    retried = await ui.post(f"/ui/executions/{failed}/retry")
    assert retried.status_code == 204
    retry_id = retried.headers["HX-Redirect"].rsplit("/", 1)[1]
    assert (await ui.http.get(f"/api/v1/executions/{retry_id}")).json()["retry_of"] == failed
    twice = await ui.post(f"/ui/executions/{failed}/retry")
    assert twice.status_code == 409 and "<html" not in twice.text


async def test_answering_a_signal_and_a_task_from_the_page(ui: UiSession) -> None:
    answer = await ui.http.post("/api/v1/executions", json={"workflow": "approval"})
    waiting = answer.json()["id"]

    async def asks_for_approve() -> bool:
        return "Send approve" in await ui.page(f"/ui/executions/{waiting}")

    await eventually(asks_for_approve, what="the signal form")
    page = await ui.page(f"/ui/executions/{waiting}")
    assert "/complete" not in page  # its signal task is answered by the signal form only
    bad = await ui.post(
        f"/ui/executions/{waiting}/signal", {"name": "approve", "outcome": "AGREE", "data": "{x"}
    )
    assert bad.status_code == 422 and "<code>data</code>" in bad.text
    sent = await ui.post(
        f"/ui/executions/{waiting}/signal",
        {"name": "approve", "outcome": "AGREE", "data": '{"by": "ui"}'},
    )
    assert sent.status_code == 204, sent.text

    async def completed() -> bool:
        body = (await ui.http.get(f"/api/v1/executions/{waiting}")).json()
        return bool(body["status"] == "completed")

    await eventually(completed, what="the approval")
    done = (await ui.http.get(f"/api/v1/executions/{waiting}")).json()
    assert done["nodes"]["B"]["status"] == "completed" and done["nodes"]["D"]["output"] == {
        "by": "ui"
    }

    ci = (await ui.http.post("/api/v1/executions", json={"workflow": "ci"})).json()["id"]

    async def task_form() -> str | None:
        html = await ui.page(f"/ui/executions/{ci}")
        found = re.search(r'action="(/ui/executions/[^"]+/tasks/[^"]+/complete)"', html)
        return found.group(1) if found else None

    url = await eventually(task_form, what="the task form")
    assert url is not None
    panel = await ui.page(f"/ui/executions/{ci}/nodes/A")
    assert "Worker task, visit 1, attempt 1: pending" in panel
    unexplained = await ui.post(url.replace("/complete", "/fail"), {"message": " "})
    assert unexplained.status_code in (400, 422) and "say why" in unexplained.text
    wrong = await ui.post(url.replace("/complete", "/explode"), {})
    assert wrong.status_code == 422
    completed_task = await ui.post(url, {"output": '{"ok": true}', "outcome": "REJECT"})
    assert completed_task.status_code == 204, completed_task.text

    async def rejected() -> bool:
        body = (await ui.http.get(f"/api/v1/executions/{ci}")).json()
        return bool(body["status"] == "completed" and body["nodes"]["C"]["status"] == "completed")

    await eventually(rejected, what="the task's outcome to route to C")
    other = url.replace(ci, waiting)
    assert (await ui.post(other, {"output": "{}"})).status_code in (404, 422)


async def test_the_session_stream_follows_an_execution(ui: UiSession) -> None:
    await ui.page("/ui/events")
    execution = ""
    seen: list[str] = []

    async def read() -> None:
        async with ui.http.stream("GET", "/ui/stream?type=execution.") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    seen.append(event["type"])
                    if event["type"] == "execution.completed":
                        return

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.3)
    execution = await _run(ui, "loop")
    await asyncio.wait_for(reader, 20)
    assert "execution.started" in seen and seen[-1] == "execution.completed"
    html = await ui.page(f"/ui/events?execution={execution}")
    assert "execution.completed" in html and 'data-stream="/ui/stream?execution=' in html


async def test_the_session_stream_resumes_after_a_reconnect_without_a_gap(ui: UiSession) -> None:
    await ui.page("/ui/events")
    first = await _run(ui, "loop")
    log = (await ui.http.get(f"/api/v1/executions/{first}/events")).json()["events"]
    resume = log[2]["sequence"]  # as if the page had seen up to there, then lost its stream
    await _run(ui, "loop")  # while it was away
    missed = (await ui.http.get(f"/api/v1/events?since={resume}&limit=1000")).json()["events"]
    got: list[int] = []
    async with ui.http.stream(
        "GET", "/ui/stream", headers={"Last-Event-ID": str(resume)}
    ) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("id: "):
                got.append(int(line[4:]))
                if len(got) == len(missed):
                    break
    assert got == [e["sequence"] for e in missed]  # the log's order, none skipped


async def test_the_overview_counts_and_lists_failures(ui: UiSession) -> None:
    failed = await _run(ui, "hostile")
    await _run(ui, "loop")
    html = await ui.page("/ui")
    assert f'href="/ui/executions/{failed}"' in html
    assert re.search(r'data-count="failed">1<', html) and re.search(
        r'data-count="completed">1<', html
    )
    assert "in flight" in html  # the engine's row
    assert (await ui.http.get("/ui/")).status_code == 200


async def test_pages_carry_security_headers_and_static_files_are_served(ui: UiSession) -> None:
    answer = await ui.http.get("/ui/executions")
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    script = re.search(r'src="(/ui/static/app.js\?v=[0-9a-f]+)"', answer.text)
    assert script is not None
    js = await ui.http.get(script.group(1))
    assert js.status_code == 200 and "EventSource" in js.text
    assert (await ui.http.get("/ui/static/vendor/htmx.min.js")).status_code == 200
