"""Long waits in ``weir run`` (no orchestrator): a callback or a signal wait fails with a message
saying why, not retried; ``sleep`` sleeps in the process (docs/waits.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.definition import Workflow
from engine.local import run_workflow

ROOT = Path(__file__).parents[2]
WEIR = shutil.which("weir", path=str(Path(sys.executable).parent)) or "weir"


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            {"http": {"url": "http://127.0.0.1:9/x", "callback": True}},
            "http.callback to http://127.0.0.1:9/x needs an orchestrator (weir run has none)",
        ),
        (
            {"wait": {"signal": "approve"}},
            "wait for signal 'approve' needs an orchestrator (weir run has none)",
        ),
    ],
)
async def test_a_wait_without_an_orchestrator_fails_clearly_and_is_not_retried(
    node: dict[str, object], message: str
) -> None:
    wf = Workflow("w", "1.0.0").node("a", **node, retry={"attempts": 3, "backoff": "1ms"})
    result = await run_workflow(wf.build())
    assert result.status == "failed"
    summary = result.to_json()["nodes"]["a"]
    assert summary["error"] == message
    assert summary["attempts"] == 1


async def test_a_long_sleep_sleeps_in_the_process() -> None:
    started = time.monotonic()
    wf = Workflow("w", "1.0.0").node("a", sleep="1s", args={"x": 1})
    result = await run_workflow(wf.build())
    assert result.status == "completed"
    assert result.to_json()["nodes"]["a"]["output"] == {"x": 1}
    assert time.monotonic() - started >= 1.0


def test_weir_run_refuses_a_flow_that_waits_for_callbacks_up_front(tmp_path: Path) -> None:
    answer = subprocess.run(
        [WEIR, "run", str(ROOT / "examples" / "approval-flow.fsl")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 2
    assert "nodes A, D, B, E, C wait for callbacks or signals" in answer.stderr
    assert "Traceback" not in answer.stderr
