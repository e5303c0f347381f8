"""The ``weir`` command as a user runs it: real processes, exit codes, output, no traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
WEIR = shutil.which("weir", path=str(Path(sys.executable).parent)) or "weir"


def weir(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [WEIR, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def test_validate_examples() -> None:
    proc = weir("validate", *map(str, sorted(EXAMPLES.glob("*.yaml"))))
    assert proc.returncode == 0, proc.stderr
    assert "etl.yaml: ok (etl 1.0.0, 3 nodes)" in proc.stdout


def test_validate_reports_every_error_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nversion: 1.0\nnodes:\n"
        "  - {id: a, lua: 'return {x = }'}\n"
        "  - {id: b, noop: {}, depends_on: [c]}\n"
        "  - {id: c, noop: {}, depends_on: [b], timeout: soon}\n"
    )
    proc = weir("validate", str(bad), str(EXAMPLES / "etl.yaml"))
    assert proc.returncode == 2
    no_traceback(proc)
    assert f"{bad}: version: invalid semantic version '1.0'" in proc.stderr
    assert f"{bad}: nodes[2].timeout: invalid duration 'soon'" in proc.stderr
    assert "1 of 2 file(s) invalid" in proc.stderr


def test_validate_names_the_cycle_and_lua_line(tmp_path: Path) -> None:
    bad = tmp_path / "cycle.yaml"
    bad.write_text(
        "name: cyc\nversion: 1.0.0\nnodes:\n"
        '  - {id: s, lua: "local a = 1\\nreturn {x = }"}\n'
        "  - {id: b, noop: {}, depends_on: [c]}\n"
        "  - {id: c, noop: {}, depends_on: [b]}\n"
    )
    proc = weir("validate", str(bad))
    assert proc.returncode == 2
    assert "nodes: depends_on cycle: b -> c -> b" in proc.stderr
    assert "nodes[0].lua: Lua syntax error: line 2:" in proc.stderr


def test_schema_is_json() -> None:
    proc = weir("schema")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["title"] == "weir workflow"


def test_run_json_prints_exactly_the_result_object() -> None:
    proc = weir(
        "run", str(EXAMPLES / "arithmetic.yaml"), "-i", "a=12", "--input", "b=4", "--output", "json"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) >= {
        "id",
        "workflow",
        "version",
        "status",
        "inputs",
        "outputs",
        "error",
        "nodes",
        "path",
    }
    assert result["inputs"] == {"a": 12, "b": 4}
    assert result["outputs"]["product"] == 48
    assert result["nodes"]["ADD"] == {
        **result["nodes"]["ADD"],
        "status": "completed",
        "outcome": "SUCCESS",
        "attempts": 1,
        "visits": 1,
        "output": {"value": 16},
        "error": None,
    }


def test_run_failed_execution_exits_1() -> None:
    proc = weir(
        "run", str(EXAMPLES / "order.yaml"), "--inputs-json", '{"amount": -5}', "-o", "json"
    )
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert result["status"] == "failed"
    assert result["error"]["node"] == "validate_payment"
    assert "amount must be positive" in result["error"]["message"]


def test_run_text_output() -> None:
    proc = weir("run", str(EXAMPLES / "etl.yaml"), "-i", "rows=2", "-i", "source=files")
    assert proc.returncode == 0, proc.stderr
    assert "completed" in proc.stdout and "extract → transform → load" in proc.stdout
    assert (
        "node.completed extract" in proc.stderr
    )  # plain progress lines when stderr is not a terminal


def test_run_shows_a_mapped_node_s_items(tmp_path: Path) -> None:
    flow = tmp_path / "map.yaml"
    flow.write_text(
        "name: m\nversion: 1.0.0\nnodes:\n"
        "  - id: each\n"
        "    map: {items: [a, b, c], concurrency: 1, tolerate: 1}\n"
        "    lua: if item == 'b' then error('no b') end return item\n"
    )
    proc = weir("run", str(flow))
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert "node.mapped each (3 items)" in proc.stderr
    assert "item.completed each item 0 (1/3 items)" in proc.stderr
    assert "item.failed each item 1 (2/3 items, 1 failed; each:1: no b)" in proc.stderr
    assert "item.completed each item 2 (3/3 items, 1 failed)" in proc.stderr


def test_validate_names_the_map_field(tmp_path: Path) -> None:
    items, tolerate = tmp_path / "items.yaml", tmp_path / "tolerate.yaml"
    node = "name: m\nversion: 1.0.0\nnodes:\n  - id: each\n    lua: return 1\n    map: "
    items.write_text(node + "{items: 3}\n")
    tolerate.write_text(node + "{items: [1], tolerate: '150%'}\n")
    proc = weir("validate", str(items), str(tolerate))
    assert proc.returncode == 2
    no_traceback(proc)
    assert "nodes[0].map.items: must be a list" in proc.stdout + proc.stderr
    assert "nodes[0].map.tolerate: invalid tolerate '150%'" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "a=1"], "inputs.b: required input missing (number)"),
        (["-i", "a=1", "-i", "b=x"], 'inputs.b: expected number, got string "x"'),
        (["-i", "a=1", "-i", "b=2", "-i", "c=3"], "inputs.c: undeclared input (declared: a, b)"),
        (["--inputs-json", "{nope"], "--inputs-json is not valid JSON"),
        (["-i", "novalue"], "expected KEY=VALUE"),
    ],
)
def test_run_bad_inputs_exit_2(args: list[str], message: str) -> None:
    proc = weir("run", str(EXAMPLES / "arithmetic.yaml"), *args)
    assert proc.returncode == 2
    no_traceback(proc)
    assert message in proc.stderr


def test_run_missing_or_invalid_file_exits_2(tmp_path: Path) -> None:
    proc = weir("run", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "cannot read file" in proc.stderr
    (tmp_path / "x.yaml").write_text("name: x\n")
    proc = weir("run", str(tmp_path / "x.yaml"))
    assert proc.returncode == 2 and "version: required" in proc.stderr
    no_traceback(proc)


def test_ctrl_c_cancels_and_prints_the_result(tmp_path: Path) -> None:
    slow = tmp_path / "slow.yaml"
    slow.write_text("name: slow\nversion: 1.0.0\nnodes:\n  - {id: wait, sleep: 30s}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [WEIR, "run", str(slow), "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 20
    assert proc.stderr is not None
    while time.monotonic() < deadline:  # wait until the node is running
        line = proc.stderr.readline()
        if "node.started wait" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 1
    result = json.loads(out)
    assert result["status"] == "cancelled"
    assert result["nodes"]["wait"]["status"] == "cancelled"


def test_run_with_sub_workflows_from_a_directory(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "child.yaml").write_text(
        "name: child\nversion: 1.4.0\ninputs: {n: {type: integer}}\n"
        "nodes:\n  - {id: sq, lua: 'return {v = inputs.n * inputs.n}'}\n"
        "outputs: {v: '${outputs.sq.v}'}\n"
    )
    parent = tmp_path / "parent.yaml"
    parent.write_text(
        "name: parent\nversion: 1.0.0\n"
        "nodes:\n  - {id: call, workflow: {name: child, version: ^1.2}, args: {n: 7}}\n"
        "outputs: {v: '${outputs.call.v}'}\n"
    )
    proc = weir("run", str(parent), "--workflows", str(lib), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["outputs"] == {"v": 49}
    assert result["children"][0]["workflow"] == "child"
    proc = weir("run", str(parent), "-o", "json")  # no catalogue: the node fails clearly
    assert proc.returncode == 1
    assert "sub-workflow 'child' is not known" in json.loads(proc.stdout)["error"]["message"]


def _three_steps(tmp_path: Path, url: str) -> Path:
    flow = tmp_path / "three.json"
    steps = []
    for i, name in enumerate(("one", "two", "three")):
        step: dict[str, object] = {
            "id": name,
            "http": {
                "url": url,
                "json": {"execution": "run", "node": name, "fail_first": name == "three"},
            },
        }
        if i:
            step["depends_on"] = [("one", "two")[i - 1]]
        steps.append(step)
    flow.write_text(json.dumps({"name": "three", "version": "1.0.0", "nodes": steps}))
    return flow


def test_run_retry_from_a_journal_reuses_what_completed(tmp_path: Path) -> None:
    from tests.support.hits import hits_server

    with hits_server() as hits:
        flow = _three_steps(tmp_path, hits.url)
        first = weir("run", str(flow), "--journal", str(tmp_path / "j1"), "-o", "json")
        assert first.returncode == 1, first.stderr
        failed = json.loads(first.stdout)
        assert failed["error"]["node"] == "three"
        retry = weir(
            "run", str(flow), "--retry", str(tmp_path / "j1"), "--journal", str(tmp_path / "j2"),
            "-o", "json",
        )  # fmt: skip
        assert retry.returncode == 0, retry.stderr
        no_traceback(retry)
        result = json.loads(retry.stdout)
        assert result["status"] == "completed" and result["id"] != failed["id"]
        assert result["nodes"]["one"]["reused_from"] == failed["id"]
        assert result["nodes"]["two"]["reused_from"] == failed["id"]
        assert "reused_from" not in result["nodes"]["three"]
        assert hits.of("run") == {"one": 1, "two": 1, "three": 2}  # side effects once each

        again = weir("run", str(flow), "--retry", str(tmp_path / "j2"))
        assert again.returncode == 2
        assert "completed: give --from NODE" in again.stderr
        rerun = weir(
            "run", str(flow), "--retry", str(tmp_path / "j2"), "--from", "two", "-o", "json"
        )
        assert rerun.returncode == 0, rerun.stderr
        result = json.loads(rerun.stdout)
        assert result["nodes"]["one"]["reused_from"] == failed["id"]  # where it really ran
        assert "reused_from" not in result["nodes"]["two"]
        assert hits.of("run") == {"one": 1, "two": 2, "three": 3}


def test_run_retry_refusals(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    proc = weir("run", str(EXAMPLES / "arithmetic.yaml"), "-i", "a=1", "-i", "b=0",
                "--journal", str(journal))  # fmt: skip
    assert proc.returncode in (0, 1) and journal.exists(), proc.stderr
    other = weir("run", str(EXAMPLES / "etl.yaml"), "--retry", str(journal))
    assert other.returncode == 2 and "the journal is of arithmetic 1.0.0, not etl" in other.stderr
    unknown = weir("run", str(EXAMPLES / "arithmetic.yaml"), "--retry", str(journal), "--from", "x")
    assert unknown.returncode == 2 and "--from: unknown node 'x'" in unknown.stderr
    inputs = weir("run", str(EXAMPLES / "arithmetic.yaml"), "--retry", str(journal), "-i", "a=2")
    assert inputs.returncode == 2 and "journal's inputs" in inputs.stderr
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    bad = weir("run", str(EXAMPLES / "arithmetic.yaml"), "--retry", str(journal))
    assert bad.returncode == 2 and f"{journal}:2: not a journal record" in bad.stderr
    for proc in (other, unknown, inputs, bad):
        no_traceback(proc)
