"""``scripts/run-local`` starts the cluster, runs the demo, serves until Ctrl-C, then stops all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import httpx
import pytest

from tests.integration.cluster import ROOT

pytestmark = pytest.mark.integration


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_run_local_serves_until_ctrl_c_and_stops_everything() -> None:
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run-local")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ},
        start_new_session=True,  # Ctrl-C goes to the whole process group, as in a terminal
    )
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 90
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
                break
        text = "".join(lines)
        assert "Ctrl-C stops everything" in text, text
        assert "approval-flow 1.0.0 execution" in text and ": completed" in text, text
        assert text.count("completed") >= 6, text
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", text.split("The cluster")[1])]
        assert len(set(ports)) >= 5
        assert all(listening(p) for p in ports)
        ui = re.search(r"web UI +(http://127\.0\.0\.1:\d+/ui)", text)
        assert ui is not None, text
        page = httpx.get(ui.group(1) + "/executions?workflow=etl", timeout=10)
        assert page.status_code == 200 and 'data-execution="' in page.text, page.text[:500]
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "stopping" in rest
    assert not any(listening(p) for p in ports), "a process outlived run-local"
