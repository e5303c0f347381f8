"""``weir apply/start/get/list/cancel/engines`` against a real orchestrator and engines."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.cluster import ROOT, WEIR, Cluster

pytestmark = pytest.mark.integration
EXAMPLES = ROOT / "examples"


@pytest.fixture
def two(cluster: Cluster) -> Cluster:
    cluster.start_engine("e1")
    cluster.start_engine("e2")
    cluster.start_orchestrator()
    return cluster


def weir(cluster: Cluster, *args: str, server: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if server:
        env["WEIR_SERVER"] = cluster.address
    proc = subprocess.run(
        [WEIR, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_apply_start_wait_get_list(two: Cluster) -> None:
    cluster = two
    proc = weir(cluster, "apply", "-f", str(EXAMPLES))
    assert proc.returncode == 0, proc.stderr
    assert "arithmetic 1.0.0 registered" in proc.stdout
    again = weir(cluster, "apply", "-f", str(EXAMPLES / "etl.yaml"))
    assert "etl 1.0.0 unchanged" in again.stdout

    proc = weir(cluster, "start", "arithmetic", "-i", "a=12", "-i", "b=4", "--wait", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {
        "id",
        "workflow",
        "version",
        "status",
        "inputs",
        "outputs",
        "error",
        "started_at",
        "finished_at",
        "nodes",
        "path",
    }
    assert result["outputs"]["sum"] == 16 and result["status"] == "completed"
    assert "node.completed ADD" in proc.stderr  # progress lines when stderr is not a terminal

    failed = weir(cluster, "start", "etl", "-i", "rows=0", "--wait")
    assert failed.returncode in (0, 1)

    got = weir(cluster, "get", "execution", result["id"], "-o", "json")
    assert json.loads(got.stdout)["outputs"] == result["outputs"]
    listed = weir(cluster, "list", "executions", "-o", "json")
    assert result["id"] in [e["id"] for e in json.loads(listed.stdout)]
    assert {e["engine"] for e in json.loads(listed.stdout)} <= {"e1", "e2"}  # ids, not addresses
    workflows = weir(cluster, "list", "workflows")
    assert "approval-flow" in workflows.stdout
    engines = json.loads(weir(cluster, "engines", "-o", "json").stdout)
    assert {e["id"] for e in engines} == {"e1", "e2"}
    assert all(e["healthy"] and e["capacity"] == 10 for e in engines)


def test_apply_fsl_keeps_its_source_across_a_restart(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    flow = EXAMPLES / "approval-flow.fsl"
    proc = weir(cluster, "apply", "-f", str(flow))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"my-flow-run 1.0.0 registered ({flow})\n"
    assert cluster.orchestrator is not None
    cluster.orchestrator.stop()
    cluster.start_orchestrator()  # the registry loads the stored FSL source again
    assert weir(cluster, "get", "workflow", "my-flow-run").stdout == flow.read_text()
    again = weir(cluster, "apply", "-f", str(flow))
    assert again.stdout == f"my-flow-run 1.0.0 unchanged ({flow})\n"
    bad = tmp_path / "bad.fsl"
    bad.write_text(flow.read_text().replace('/approval";', '/approval"'))
    refused = weir(cluster, "apply", "-f", str(bad))
    assert refused.returncode == 2
    assert "line 10, column 1: expected ';' after addr, found 'method'" in refused.stderr


def test_cancel_and_errors(two: Cluster, tmp_path: Path) -> None:
    cluster = two
    slow = tmp_path / "slow.yaml"
    slow.write_text("name: slow\nversion: 1.0.0\nnodes:\n  - {id: nap, sleep: 30s}\n")
    assert weir(cluster, "apply", "-f", str(slow)).returncode == 0
    execution_id = weir(cluster, "start", "slow").stdout.strip()
    assert weir(cluster, "cancel", execution_id).returncode == 0
    proc = weir(cluster, "get", "execution", execution_id, "-o", "json")
    status = json.loads(proc.stdout)["status"]
    assert status in ("running", "cancelled")

    missing = weir(cluster, "start", "nope")
    assert missing.returncode == 2 and "'nope' is not registered" in missing.stderr
    bad = weir(cluster, "start", "slow", "-i", "x=1")
    assert bad.returncode == 2 and "inputs.x" in bad.stderr
    unreachable = weir(cluster, "engines", "--server", "127.0.0.1:1", server=False)
    assert unreachable.returncode == 3 and "cannot reach the orchestrator" in unreachable.stderr


def _version(tmp_path: Path, version: str, nodes: str, extra: str = "") -> str:
    path = tmp_path / f"flow-{version}.yaml"
    path.write_text(f"name: flow\nversion: {version}\n{extra}nodes:\n{nodes}")
    return str(path)


def test_versions_deprecate_delete_diff_and_idempotent_starts(two: Cluster, tmp_path: Path) -> None:
    cluster = two
    v1 = _version(tmp_path, "1.0.0", "  - {id: a, lua: 'return {n = 1}'}\n  - {id: b, noop: {}}\n")
    v2 = _version(
        tmp_path,
        "1.10.0",
        "  - {id: a, lua: 'return {n = 2}'}\n  - {id: c, noop: {}}\n",
        "inputs:\n  who: {type: string}\n",
    )
    v3 = _version(tmp_path, "1.9.0", "  - {id: a, noop: {}}\n")
    assert weir(cluster, "apply", "-f", v1, "-f", v2).returncode == 0
    older = weir(cluster, "apply", "-f", v3)  # 1.9.0 < 1.10.0: semver, not strings
    assert older.returncode == 2 and "not greater than the latest, 1.10.0" in older.stderr

    diff = weir(cluster, "diff", "flow", "1.0.0", "1.10.0")
    assert diff.returncode == 1, diff.stderr  # a running 1.0.0 could not continue
    assert "- b" in diff.stdout and "+ c" in diff.stdout and "~ a (lua)" in diff.stdout
    assert "cannot continue" in diff.stdout and "who" in diff.stdout
    same = json.loads(weir(cluster, "diff", "flow", "1.0.0", "1.0.0", "-o", "json").stdout)
    assert same["can_continue"] and not same["added"] and not same["removed"]

    listed = json.loads(weir(cluster, "list", "versions", "flow", "-o", "json").stdout)
    assert [(v["version"], v["deprecated"]) for v in listed] == [
        ("1.0.0", False),
        ("1.10.0", False),
    ]
    assert weir(cluster, "deprecate", "flow", "1.10.0").returncode == 0
    started = json.loads(weir(cluster, "start", "flow", "--wait", "-o", "json").stdout)
    assert started["version"] == "1.0.0"  # the latest version that is not deprecated
    refused = weir(cluster, "start", "flow", "--version", "1.10.0", "-i", "who=x")
    assert refused.returncode == 2 and "deprecated" in refused.stderr

    keyed = [
        weir(cluster, "start", "flow", "--idempotency-key", "k1", "-o", "json") for _ in range(2)
    ]
    ids = {json.loads(p.stdout)["id"] for p in keyed}
    assert len(ids) == 1, [p.stdout for p in keyed]

    assert weir(cluster, "delete", "flow", "1.10.0").returncode == 0
    missing = weir(cluster, "delete", "flow", "1.10.0")
    assert missing.returncode == 2 and "has no version 1.10.0" in missing.stderr
    gone = json.loads(weir(cluster, "list", "versions", "flow", "-o", "json").stdout)
    assert [v["version"] for v in gone] == ["1.0.0"]
