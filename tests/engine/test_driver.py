"""The asyncio driver with real executors: Lua, HTTP against a local server, Python, sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from engine.definition import Definition, Workflow
from engine.driver import ExecutionDriver
from engine.executors.node import NodeRunner
from engine.local import LocalWorkflows, run_workflow
from engine.lua import LuaSandbox
from engine.state import Event
from engine.testing import scripted_server
from tests.support import tasks
from tests.support.poll import eventually


@pytest.fixture(autouse=True)
def _reset_tasks() -> Iterator[None]:
    tasks.reset()
    yield


def wf(**kwargs: Any) -> Workflow:
    return Workflow("t", "1.0.0", **kwargs)


async def test_python_sync_and_async_functions() -> None:
    d = (
        wf(inputs={"x": {"type": "number"}})
        .node("add", python="tests.support.tasks:add", args={"a": "${inputs.x}", "b": 2})
        .node(
            "double",
            python="tests.support.tasks:slow_double",
            depends_on="add",
            args={"x": "${outputs.add.sum}"},
        )
        .output("value", "${outputs.double.value}")
        .build()
    )
    result = (await run_workflow(d, {"x": 3})).to_json()
    assert result["status"] == "completed"
    assert result["outputs"] == {"value": 10}


@pytest.mark.parametrize(
    ("target", "args", "message", "attempts"),
    [
        (
            "tests.support.tasks:boom",
            {"message": "nope"},
            "tests.support.tasks:boom raised ValueError: nope",
            2,
        ),
        ("tests.support.tasks:missing", {}, "has no 'missing'", 1),
        ("tests.nowhere:fn", {}, "cannot import 'tests.nowhere'", 1),
        ("tests.support.tasks:not_json", {}, "not JSON", 1),
        ("tests.support.tasks:add", {"a": 1}, "missing 1 required positional argument", 1),
    ],
)
async def test_python_failures(
    target: str, args: dict[str, Any], message: str, attempts: int
) -> None:
    d = wf().node("p", python=target, args=args, retry={"attempts": 2, "backoff": "10ms"}).build()
    result = (await run_workflow(d)).to_json()
    node = result["nodes"]["p"]
    assert result["status"] == "failed" and node["status"] == "failed"
    assert message in node["error"] and node["attempts"] == attempts


async def test_http_retries_5xx_and_reads_json() -> None:
    script = {
        "/api": [(503, {"e": 1}), (500, "oops"), (200, {"ok": True, "state": {"name": "GO"}})]
    }
    with scripted_server(script) as server:
        d = (
            wf(inputs={"id": {"type": "string"}})
            .node(
                "call",
                http={
                    "url": f"{server.url}/api",
                    "json": {"order": "${inputs.id}", "n": 1},
                    "headers": {"X-Order": "${inputs.id}"},
                    "outcome": "state.name",
                },
                retry={"attempts": 3, "backoff": "10ms"},
                next={"GO": "end"},
            )
            .build()
        )
        result = (await run_workflow(d, {"id": "A7"})).to_json()
    node = result["nodes"]["call"]
    assert result["status"] == "completed", result["error"]
    assert (node["attempts"], node["outcome"], node["output"]) == (
        3,
        "GO",
        {"ok": True, "state": {"name": "GO"}},
    )
    assert server.requests[0]["body"] == {"order": "A7", "n": 1}
    assert server.requests[0]["method"] == "POST"
    assert server.requests[0]["headers"]["X-Order"] == "A7"


async def test_http_4xx_is_not_retried() -> None:
    with scripted_server({"/api": [(404, {"error": "no such order"})]}) as server:
        d = (
            wf()
            .node(
                "call", http={"url": f"{server.url}/api"}, retry={"attempts": 3, "backoff": "10ms"}
            )
            .build()
        )
        result = (await run_workflow(d)).to_json()
    node = result["nodes"]["call"]
    assert node["attempts"] == 1 and "GET" in node["error"] and "answered 404" in node["error"]
    assert len(server.requests) == 1


async def test_http_connection_refused_is_retried() -> None:
    d = (
        wf()
        .node(
            "call", http={"url": "http://127.0.0.1:9/x"}, retry={"attempts": 2, "backoff": "10ms"}
        )
        .build()
    )
    result = (await run_workflow(d)).to_json()
    node = result["nodes"]["call"]
    assert node["attempts"] == 2 and "connection failed" in node["error"]


async def test_http_outcome_field_missing() -> None:
    with scripted_server({"/a": [(200, {"other": 1})]}) as server:
        d = wf().node("call", http={"url": f"{server.url}/a", "outcome": "ackState"}).build()
        result = (await run_workflow(d)).to_json()
    assert "response has no field 'ackState'" in result["nodes"]["call"]["error"]


async def test_node_timeout_cancels_the_attempt() -> None:
    d = (
        wf()
        .node("slow", sleep="10s", timeout="200ms", retry={"attempts": 2, "backoff": "10ms"})
        .build()
    )
    began = time.monotonic()
    result = (await run_workflow(d)).to_json()
    assert time.monotonic() - began < 3
    node = result["nodes"]["slow"]
    assert (node["status"], node["attempts"], node["error"]) == (
        "failed",
        2,
        "timed out after 200ms",
    )


async def test_execution_timeout() -> None:
    d = wf(timeout="300ms").node("slow", sleep="10s").node("quick", noop=True).build()
    result = (await run_workflow(d)).to_json()
    assert result["status"] == "failed"
    assert result["error"] == {"node": None, "message": "execution timed out after 300ms"}
    assert result["nodes"]["slow"]["status"] == "cancelled"
    assert result["nodes"]["quick"]["status"] == "completed"


async def test_cancel_a_running_execution() -> None:
    d = wf().node("slow", sleep="10s").node("after", noop=True, depends_on="slow").build()
    events: list[Event] = []
    async with NodeRunner(sandbox=LuaSandbox()) as runner:
        driver = ExecutionDriver(d, {}, runner, on_event=events.append)
        task = asyncio.create_task(driver.run())
        await eventually(
            lambda: any(e.type == "node.started" and e.node == "slow" for e in events),
            what="the slow node to start",
        )
        driver.cancel("operator said stop")
        result = (await asyncio.wait_for(task, 2)).to_json()
    assert result["status"] == "cancelled"
    assert result["error"] == {"node": None, "message": "operator said stop"}
    assert (result["nodes"]["slow"]["status"], result["nodes"]["after"]["status"]) == (
        "cancelled",
        "skipped",
    )


async def test_concurrency_limit_holds_with_real_tasks() -> None:
    w = wf(concurrency=2)
    for i in range(6):
        w.node(f"n{i}", python="tests.support.tasks:track", args={"delay": 0.05})
    result = (await run_workflow(w.build())).to_json()
    assert result["status"] == "completed"
    assert tasks.max_running == 2


async def test_when_and_conditional_edges_in_lua() -> None:
    d = (
        wf(inputs={"score": {"type": "number"}})
        .node(
            "route",
            lua="return {score = inputs.score}",
            next=[
                {"when": "outputs.route.score > 90", "to": "fast", "priority": 1},
                {"when": "outputs.route.score > 50", "to": "review", "priority": 2},
                {"to": "reject"},
            ],
        )
        .node("fast", noop=True)
        .node("review", noop=True)
        .node("reject", noop=True)
        .node("audit", lua="return {}", depends_on="route", when="inputs.score ~= 42")
        .build()
    )
    for score, chosen, audit in (
        (95, "fast", "completed"),
        (60, "review", "completed"),
        (42, "reject", "skipped"),
    ):
        result = (await run_workflow(d, {"score": score})).to_json()
        assert result["path"] == ["route", chosen] + (["audit"] if audit == "completed" else [])
        assert [
            n for n in ("fast", "review", "reject") if result["nodes"][n]["status"] == "completed"
        ] == [chosen]
        assert result["nodes"]["audit"]["status"] == audit


async def test_edges_route_failures_by_outcome() -> None:
    d = (
        wf()
        .node(
            "risky", lua="error('bad')", next=[{"to": "ok"}, {"outcome": "FAIL", "to": "cleanup"}]
        )
        .node("ok", noop=True)
        .node("cleanup", noop=True)
        .build()
    )
    result = (await run_workflow(d)).to_json()
    assert result["status"] == "completed"
    assert result["path"] == ["risky", "cleanup"]


async def test_outputs_template_error_fails_the_execution() -> None:
    d = wf().node("a", lua="return {x = 1}").output("bad", "${outputs.a.x + nil}").build()
    result = (await run_workflow(d)).to_json()
    assert result["status"] == "failed"
    assert result["error"]["node"] is None and result["error"]["message"].startswith("outputs:")


async def test_args_template_error_fails_the_node() -> None:
    d = wf().node("a", noop=True, args={"x": "${nil .. 'x'}"}, retry={"attempts": 3}).build()
    result = (await run_workflow(d)).to_json()
    node = result["nodes"]["a"]
    assert node["attempts"] == 1 and node["error"].startswith("args:")


async def test_long_lua_escapes_the_inline_slice_and_completes() -> None:
    d = (
        wf()
        .node("loop", lua="local s = 0 for i = 1, 2000000 do s = s + i end return {s = s}")
        .build()
    )
    result = (await run_workflow(d)).to_json()
    assert result["nodes"]["loop"]["output"] == {"s": 2000001000000}


async def test_events_reach_the_sink_in_order() -> None:
    events: list[Event] = []
    d = wf().node("a", lua="return {}").node("b", noop=True, depends_on="a").build()
    result = (await run_workflow(d, on_event=events.append)).to_json()
    assert [e.type for e in events] == [
        "execution.started",
        "node.started",
        "node.completed",
        "node.started",
        "node.completed",
        "execution.completed",
    ]
    assert {e.execution_id for e in events} == {result["id"]}


async def test_resume_from_a_checkpoint_does_not_rerun_finished_nodes() -> None:
    d = (
        wf()
        .node("one", python="tests.support.tasks:count", args={"name": "one"})
        .node("two", python="tests.support.tasks:count", args={"name": "two"}, depends_on="one")
        .node("three", python="tests.support.tasks:count", args={"name": "three"}, depends_on="two")
        .build()
    )
    async with NodeRunner(sandbox=LuaSandbox()) as runner:
        first = ExecutionDriver(d, {}, runner)
        await first.run()
        checkpoint = first.state.journal[:2]
        second = ExecutionDriver(d, {}, runner, execution_id=first.id, checkpoint=checkpoint)
        result = (await second.run()).to_json()
    assert result["status"] == "completed"
    assert tasks.calls == {"one": 1, "two": 1, "three": 2}
    assert result["path"] == ["one", "two", "three"]


def family() -> LocalWorkflows:
    child = (
        Workflow("child", "1.2.0", inputs={"n": {"type": "integer"}})
        .node("double", lua="if inputs.n < 0 then error('negative') end return {v = inputs.n * 2}")
        .output("v", "${outputs.double.v}")
        .build()
    )
    old = Workflow("child", "2.0.0").node("x", noop=True).build()
    loop = (
        Workflow("loop", "1.0.0").node("again", workflow={"name": "loop", "version": "*"}).build()
    )
    return LocalWorkflows([child, old, loop])


def parent(n: int, version: str = "^1.0") -> Definition:
    return (
        Workflow("parent", "1.0.0")
        .node("sub", workflow={"name": "child", "version": version}, args={"n": n})
        .output("v", "${outputs.sub.v}")
        .build()
    )


async def test_sub_workflow_picks_the_range_and_returns_outputs() -> None:
    result = (await run_workflow(parent(21), workflows=family())).to_json()
    assert result["status"] == "completed" and result["outputs"] == {"v": 42}
    (child,) = result["children"]
    assert (child["workflow"], child["version"], child["status"]) == ("child", "1.2.0", "completed")
    assert child["parent"] == {"execution": result["id"], "node": "sub"}


async def test_sub_workflow_failure_flows_up() -> None:
    result = (await run_workflow(parent(-1), workflows=family())).to_json()
    assert result["status"] == "failed"
    assert (
        "sub-workflow child@1.2.0" in result["error"]["message"]
        and "negative" in result["error"]["message"]
    )


async def test_sub_workflow_errors() -> None:
    result = (await run_workflow(parent(1, "^3"), workflows=family())).to_json()
    assert "no version of 'child' matches ^3 (have 1.2.0, 2.0.0)" in result["error"]["message"]
    loop = family().resolve("loop", "*")
    result = (await run_workflow(loop, workflows=family())).to_json()
    assert result["status"] == "failed" and "nested deeper than 10" in result["error"]["message"]
