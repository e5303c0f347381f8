"""``weir events``, ``weir logs`` and ``weir triggers`` against a real orchestrator and engine.

Executions are set up through ``Client`` (each ``weir`` process costs seconds of imports);
the commands under test run as the user runs them, as subprocesses.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import signal
import subprocess
import threading
import time
from typing import Any

import pytest

from tests.integration.cluster import ROOT, WEIR, Cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
EXAMPLES = ROOT / "examples"
FLAKY = (
    "name: flaky\nversion: 1.0.0\nnodes:\n"
    "  - {id: a, lua: 'error(\"boom\")', retry: {attempts: 2, backoff: 10ms}}\n"
)


@pytest.fixture
def one(cluster: Cluster) -> Cluster:
    cluster.start_engine("e1")
    cluster.start_orchestrator()
    return cluster


def weir(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [WEIR, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "WEIR_SERVER": cluster.address},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def json_lines(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def run_executions(cluster: Cluster, *starts: tuple[str, dict[str, Any]]) -> list[str]:
    """Register arithmetic and flaky, run ``starts`` to their end; their ids."""

    async def go() -> list[str]:
        async with cluster.client() as client:
            await cluster.wait_ready(client, 1)
            await client.register((EXAMPLES / "arithmetic.yaml").read_text())
            await client.register(FLAKY)
            ids = []
            for workflow, inputs in starts:
                started = await client.start(workflow, inputs)
                async with asyncio.timeout(30):
                    await client.wait(started.id)
                ids.append(started.id)
            return ids

    return asyncio.run(go())


def increasing(records: list[dict[str, Any]]) -> bool:
    sequences = [r["sequence"] for r in records]
    return all(a < b for a, b in itertools.pairwise(sequences))


def test_events_list_and_filters(one: Cluster) -> None:
    ok, failed = run_executions(one, ("arithmetic", {"a": 12, "b": 4}), ("flaky", {}))

    text = weir(one, "events", "--limit", "500")
    assert text.returncode == 0, text.stderr
    for kind in ("execution.queued", "execution.started", "execution.completed"):
        assert kind in text.stdout
    assert f"arithmetic@1.0.0 {ok[:8]} ADD[1/1]" in text.stdout
    assert "node.retrying" in text.stdout and "a:1: boom; attempt 2" in text.stdout

    everything = json_lines(weir(one, "events", "-n", "500", "-o", "json"))
    assert increasing(everything)
    assert {"sequence", "type", "at", "severity", "data", "engine_id"} <= set(everything[0])

    mine = json_lines(weir(one, "events", "--execution", ok, "-o", "json", "-n", "500"))
    assert mine and {r["execution_id"] for r in mine} == {ok} and increasing(mine)
    types = [r["type"] for r in mine]
    assert types[0] == "execution.queued" and types[-1] == "execution.completed"
    assert {"execution.started", "node.started", "node.completed"} <= set(types)
    add = next(r for r in mine if r["type"] == "node.completed" and r["node"] == "ADD")
    assert add["data"]["output"] == {"value": 16} and add["at"].endswith("Z")

    flaky = json_lines(weir(one, "events", "--workflow", "flaky", "-o", "json"))
    assert {r["workflow"] for r in flaky} == {"flaky"}
    assert {r["execution_id"] for r in flaky if r["execution_id"]} == {failed}
    assert "execution.failed" in [r["type"] for r in flaky]

    nodes = json_lines(weir(one, "events", "--type", "node.", "-o", "json", "-n", "500"))
    assert nodes and all(r["type"].startswith("node.") for r in nodes) and increasing(nodes)

    warnings = json_lines(weir(one, "events", "--severity", "warning", "-o", "json"))
    assert {r["severity"] for r in warnings} == {"warning", "error"}

    since = everything[2]["sequence"]
    page = json_lines(weir(one, "events", "--since", str(since), "-n", "3", "-o", "json"))
    assert page == everything[3:6]
    newest = json_lines(weir(one, "events", "-n", "2", "-o", "json"))
    assert newest == everything[-2:]


class Lines:
    """A subprocess's stdout, read by a thread so the test can wait for a line with a deadline."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert popen.stdout is not None
        stdout = popen.stdout
        self.thread = threading.Thread(
            target=lambda: [self.queue.put(line) for line in stdout], daemon=True
        )
        self.thread.start()

    def until(self, check: Any, within: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {within}s; saw {self.seen}")
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            record: dict[str, Any] = json.loads(line)
            if check(record):
                return record


def test_events_follow_sees_later_executions_and_ends_on_sigint(one: Cluster) -> None:
    (before,) = run_executions(one, ("arithmetic", {"a": 1, "b": 2}))
    with subprocess.Popen(
        [WEIR, "events", "--follow", "--workflow", "arithmetic", "-n", "1", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "WEIR_SERVER": one.address},
    ) as popen:
        lines = Lines(popen)
        try:
            # The newest event so far is the first execution's end: the follower is reading.
            last = lines.until(lambda r: True, 60, "history line")
            assert last["type"] == "execution.completed" and last["execution_id"] == before
            (after,) = run_executions(one, ("arithmetic", {"a": 3, "b": 0}))
            lines.until(
                lambda r: r["type"] == "execution.completed" and r["execution_id"] == after,
                30,
                "completion of the later execution",
            )
            popen.send_signal(signal.SIGINT)
            code = popen.wait(20)
        finally:
            if popen.poll() is None:
                popen.kill()
                popen.wait(10)
            lines.thread.join(10)
        assert popen.stderr is not None
        stderr = popen.stderr.read()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    records = [json.loads(line) for line in lines.seen]
    assert increasing(records)  # history then live: no duplicate
    types = [r["type"] for r in records if r["execution_id"] == after]
    assert types[0] == "execution.queued" and "node.failed" in types  # DIV by zero


def test_logs(one: Cluster) -> None:
    ok, failed = run_executions(one, ("arithmetic", {"a": 12, "b": 0}), ("flaky", {}))

    done = weir(one, "logs", ok)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"arithmetic 1.0.0  execution {ok}  completed" in out
    assert "took " in out and "engine e1" in out and "timeline" in out
    assert "execution.queued" in out and "execution.completed" in out
    assert "ADD[1/1]  completed in " in out and 'output: {"value": 12}' in out
    assert "DIV[1/1]  failed in " in out and "error: DIV:1: division by zero" in out

    bad = weir(one, "logs", failed)
    assert bad.returncode == 1, bad.stderr
    assert "a[1/1]  retrying in " in bad.stdout and "retry: a:1: boom; attempt 2" in bad.stdout
    assert "a[1/2]  failed in " in bad.stdout and "error: node a: a:1: boom" in bad.stdout

    document = json.loads(weir(one, "logs", failed, "-o", "json").stdout)
    assert document["execution"]["status"] == "failed"
    assert [e["type"] for e in document["events"]][-1] == "execution.failed"
    assert increasing(document["events"])

    followed = weir(one, "logs", "--follow", ok)  # already finished: prints and ends
    assert followed.returncode == 0 and "timeline" in followed.stdout

    unknown = weir(one, "logs", "no-such-execution")
    assert unknown.returncode == 2
    assert "execution 'no-such-execution' not found" in unknown.stderr


def test_triggers_set_list_delete(one: Cluster) -> None:
    run_executions(one)  # registers the workflows
    saved = weir(
        one,
        "triggers",
        "set",
        "arithmetic",
        "nightly",
        "--cron",
        "0 3 * * *",
        "--timezone",
        "Europe/Paris",
        "-i",
        "a=1",
        "-i",
        "b=2",
        "--overlap",
        "allow",
        "--catch-up",
        "latest",
        "--catch-up-window",
        "2h",
    )
    assert saved.returncode == 0, saved.stderr
    assert "arithmetic/nightly: saved" in saved.stdout and "next fire:" in saved.stdout

    (item,) = json.loads(weir(one, "triggers", "list", "arithmetic", "-o", "json").stdout)
    assert item["workflow"] == "arithmetic" and item["name"] == "nightly"
    assert item["source"] == "api" and item["next_fire_at"]
    spec = item["spec"]
    assert spec["cron"] == "0 3 * * *" and spec["timezone"] == "Europe/Paris"
    assert spec["inputs"] == {"a": 1, "b": 2}  # typed by the workflow's declaration
    assert (spec["overlap"], spec["catch_up"], spec["enabled"]) == ("allow", "latest", True)
    assert spec["catch_up_window"] in ("2h", 7200, 7200.0)

    replaced = weir(
        one,
        "triggers",
        "set",
        "arithmetic",
        "nightly",
        "--cron",
        "@hourly",
        "-i",
        "a=1",
        "-i",
        "b=2",
        "--disabled",
    )
    assert "saved (disabled)" in replaced.stdout, replaced.stderr
    table = weir(one, "triggers", "list")
    assert table.returncode == 0 and "nightly" in table.stdout and "@hourly" in table.stdout
    (item,) = json.loads(weir(one, "triggers", "list", "-o", "json").stdout)
    assert item["spec"]["cron"] == "@hourly" and item["spec"]["enabled"] is False

    invalid = weir(one, "triggers", "set", "arithmetic", "bad", "--cron", "nope")
    assert invalid.returncode == 2 and "cron" in invalid.stderr

    deleted = weir(one, "triggers", "delete", "arithmetic", "nightly")
    assert deleted.returncode == 0 and "arithmetic/nightly: deleted" in deleted.stdout
    assert json.loads(weir(one, "triggers", "list", "-o", "json").stdout) == []
    again = weir(one, "triggers", "delete", "arithmetic", "nightly")
    assert again.returncode == 2 and "nightly" in again.stderr
