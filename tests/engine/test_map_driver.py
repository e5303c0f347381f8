"""``map`` with real executors in-process: Lua, HTTP against a local counting service, Python,
sub-workflows, tasks; the errors a user sees; the result's items and the events per item."""

from __future__ import annotations

from typing import Any

from engine.definition import Workflow
from engine.local import LocalWorkflows, run_workflow
from engine.state import Event
from tests.support.hits import hits_server


def wf(**kwargs: Any) -> Workflow:
    return Workflow("t", "1.0.0", **kwargs)


async def test_lua_items_see_item_and_index_in_args_and_code() -> None:
    d = (
        wf()
        .node("list", lua="return {files = {'a.csv', 'b.csv', 'c.csv'}}")
        .node(
            "each",
            depends_on="list",
            map={"items": "${outputs.list.files}"},
            args={"name": "${item}", "n": "${index}", "label": "${index}:${item}"},
            lua="return {upper = args.name:upper(), n = args.n, i = index, label = args.label}",
        )
        .node("count", depends_on="each", lua="return #outputs.each")
        .build()
    )
    events: list[Event] = []
    result = (await run_workflow(d, on_event=events.append)).to_json()
    assert result["status"] == "completed", result["error"]
    assert result["nodes"]["each"]["output"] == [
        {"upper": "A.CSV", "n": 0, "i": 0, "label": "0:a.csv"},
        {"upper": "B.CSV", "n": 1, "i": 1, "label": "1:b.csv"},
        {"upper": "C.CSV", "n": 2, "i": 2, "label": "2:c.csv"},
    ]
    assert result["nodes"]["count"]["output"] == 3
    items = result["nodes"]["each"]["items"]
    assert [(i["index"], i["status"], i["attempts"]) for i in items] == [
        (0, "completed", 1),
        (1, "completed", 1),
        (2, "completed", 1),
    ]
    per_item = [(e.type, (e.data or {}).get("item")) for e in events if e.type.startswith("item.")]
    assert sorted(per_item) == sorted(
        [(kind, i) for i in range(3) for kind in ("item.started", "item.completed")]
    )
    mapped = [e for e in events if e.type == "node.mapped"]
    assert len(mapped) == 1 and mapped[0].data == {"items": 3}


async def test_http_items_never_exceed_the_concurrency() -> None:
    with hits_server() as hits:
        d = (
            wf(inputs={"n": {"type": "integer"}})
            .node(
                "each",
                map={
                    "items": "${inputs.n > 0 and (function() local t = {} "
                    "for i = 1, inputs.n do t[i] = i end return t end)() or {}}",
                    "concurrency": 3,
                },
                http={
                    "url": hits.url,
                    "json": {"execution": "${execution.id}", "node": "each/${index}", "hold": 0.05},
                },
            )
            .build()
        )
        result = (await run_workflow(d, {"n": 12})).to_json()
        assert result["status"] == "completed", result["error"]
        assert hits.of(result["id"]) == {f"each/{i}": 1 for i in range(12)}
        assert hits.peak == 3
        assert [o["node"] for o in result["nodes"]["each"]["output"]] == [
            f"each/{i}" for i in range(12)
        ]


async def test_retry_and_timeout_apply_per_item() -> None:
    with hits_server() as hits:
        d = (
            wf()
            .node(
                "each",
                map={"items": [0, 1, 2, 3]},
                http={
                    "url": hits.url,
                    "json": {
                        "execution": "${execution.id}",
                        "node": "each/${index}",
                        "fail_first": "${index % 2 == 1}",
                    },
                },
                retry={"attempts": 2, "backoff": "10ms"},
                timeout="5s",
            )
            .build()
        )
        result = (await run_workflow(d)).to_json()
    assert result["status"] == "completed", result["error"]
    attempts = [i["attempts"] for i in result["nodes"]["each"]["items"]]
    assert attempts == [1, 2, 1, 2]
    assert result["nodes"]["each"]["attempts"] == 1


async def test_tolerate_by_count_and_by_percentage() -> None:
    code = "if item % 4 == 0 then error('bad item ' .. item) end return item"
    cases = ((3, "completed"), (2, "failed"), ("30%", "completed"), ("29.9%", "failed"))
    for tolerate, status in cases:
        d = wf().node("each", map={"items": list(range(10)), "tolerate": tolerate}, lua=code)
        result = (await run_workflow(d.build())).to_json()
        assert result["status"] == status, (tolerate, result["error"])
        node = result["nodes"]["each"]
        if status == "completed":
            assert node["output"] == [None, 1, 2, 3, None, 5, 6, 7, None, 9]
        else:
            assert result["error"]["node"] == "each"
            assert "3 of 10 items failed (tolerate 2)" in result["error"]["message"]
            assert "bad item 0" in result["error"]["message"]


async def test_an_empty_list_completes_with_an_empty_list() -> None:
    d = (
        wf()
        .node("list", lua="return {files = {}}")
        .node("each", depends_on="list", map={"items": "${outputs.list.files}"}, lua="return 1")
        .node("after", depends_on="each", lua="return #outputs.each")
        .build()
    )
    result = (await run_workflow(d)).to_json()
    assert result["status"] == "completed", result["error"]
    assert result["nodes"]["each"]["output"] == []
    assert result["nodes"]["each"]["items"] == []
    assert result["nodes"]["after"]["output"] == 0


async def test_something_that_is_not_a_list_fails_naming_the_expression_and_type() -> None:
    d = (
        wf()
        .node("list", lua="return {files = 'a.csv'}")
        .node("each", depends_on="list", map={"items": "${outputs.list.files}"}, lua="return 1")
        .build()
    )
    result = (await run_workflow(d)).to_json()
    assert result["status"] == "failed"
    assert result["error"] == {
        "node": "each",
        "message": 'map.items "${outputs.list.files}" must be a list, got a string',
    }


async def test_when_false_skips_the_whole_node() -> None:
    d = wf().node("each", map={"items": [1, 2]}, when="false", lua="return item").build()
    result = (await run_workflow(d)).to_json()
    assert result["nodes"]["each"]["status"] == "skipped"
    assert "items" not in result["nodes"]["each"]


async def test_next_routes_on_the_mapped_node_outcome() -> None:
    d = (
        wf()
        .node(
            "each",
            map={"items": [1, 2, 3]},
            lua="return item * 10",
            next=[
                {"to": "big", "when": "outputs.each[3] > 20"},
                {"to": "small"},
            ],
        )
        .node("big", lua="return 'big'")
        .node("small", lua="return 'small'")
        .build()
    )
    result = (await run_workflow(d)).to_json()
    assert result["status"] == "completed", result["error"]
    assert result["path"] == ["each", "big"]
    assert result["nodes"]["small"]["status"] == "skipped"


def _double() -> Workflow:
    return (
        Workflow("double", "1.0.0", inputs={"n": {"type": "integer"}})
        .node("x", lua="if inputs.n == 13 then error('unlucky') end return {v = inputs.n * 2}")
        .output("v", "${outputs.x.v}")
    )


async def test_a_sub_workflow_per_item() -> None:
    d = (
        wf()
        .node(
            "each",
            map={"items": [1, 2, 13], "tolerate": 1},
            workflow={"name": "double", "version": "^1"},
            args={"n": "${item}"},
        )
        .build()
    )
    result = (await run_workflow(d, workflows=LocalWorkflows([_double().build()]))).to_json()
    assert result["status"] == "completed", result["error"]
    assert result["nodes"]["each"]["output"] == [{"v": 2}, {"v": 4}, None]
    assert "unlucky" in result["nodes"]["each"]["items"][2]["error"]
    assert len(result["children"]) == 3


async def test_python_items() -> None:
    d = (
        wf()
        .node(
            "each",
            map={"items": ["a", "bb"]},
            python="tests.engine.test_map_driver:length",
            args={"text": "${item}"},
        )
        .build()
    )
    result = (await run_workflow(d)).to_json()
    assert result["nodes"]["each"]["output"] == [1, 2], result["error"]


def length(text: str) -> int:
    return len(text)


async def test_task_items_in_process_fail_saying_they_need_workers() -> None:
    d = wf().node("each", map={"items": [1]}, task="q").build()
    result = (await run_workflow(d)).to_json()
    assert result["status"] == "failed"
    assert "needs an orchestrator and its workers" in result["error"]["message"]
