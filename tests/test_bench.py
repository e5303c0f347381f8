"""The benchmarks are not tests, but they must keep running: ``scripts/bench --quick`` and the
offline half of ``scripts/bench compare`` (weir only: the peers need their own venv and the
package registry), plus the arithmetic the comparison table rests on and the checks that stop
``scripts/bench map`` and ``scripts/bench waits`` on a wrong result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_compare  # noqa: E402
import bench_map  # noqa: E402
import bench_waits  # noqa: E402
from weir.proto.v1 import engine_pb2, orchestrator_pb2  # noqa: E402


def run(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "bench"), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_bench_quick_runs_every_engine_benchmark() -> None:
    proc = run("--quick", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split("  ")[0] for line in proc.stdout.splitlines()]
    for label in ("no-op DAG, wide", "no-op DAG, deep", "Lua chain", "Lua data chain"):
        assert label in rows, proc.stdout


@pytest.mark.integration
def test_compare_quick_runs_weir_in_process_and_through_a_cluster() -> None:
    proc = run("compare", "--quick", "--systems", "weir,weir-cluster", "--settle", "0", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    table = proc.stdout
    assert "microseconds per task" in table
    for workload in ("fan-out/in 100 ", "fan-out/in 1,000 ", "chain 100 "):
        row = next(line for line in table.splitlines() if line.startswith(workload))
        figures = row[len(workload) :].split()
        assert len(figures) == 2 and all(float(f.replace(",", "")) > 0 for f in figures), row
    assert "weir cluster target: >= 1,000 executions/s:" in table


@pytest.mark.integration
def test_workers_quick_runs_tasks_through_a_worker_beside_the_python_node() -> None:
    proc = run("workers", "--quick", "--window", "5", "--fanout", "4", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    for label in ("task (SDK worker round trip)", "python node (baseline)"):
        row = next(line for line in proc.stdout.splitlines() if line.startswith(label))
        figures = row[len(label) :].split()
        assert float(figures[0]) > 0 and "failed" not in row, row
    assert "ratio task / python" in proc.stdout and "targets:" in proc.stdout


@pytest.mark.integration
def test_map_quick_runs_static_and_mapped_in_process_and_through_a_cluster() -> None:
    proc = run("map", "--quick", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    for label in bench_map.LABELS.values():
        row = next(line for line in proc.stdout.splitlines() if line.startswith(label))
        figures = row[len(label) :].split()
        assert len(figures) == 4 and all(float(f) > 0 for f in figures), row
    assert "target (issue 16): mapped / static <= 1.5" in proc.stdout
    for mode in ("weir run", "engine only", "cluster"):
        assert any(line.split()[:-2] == mode.split() for line in proc.stdout.splitlines()), mode


def _mapped_result(indices: list[int], output: object) -> dict[str, object]:
    done = {"status": "completed", "output": None}
    items = [{"index": i, "status": "completed"} for i in indices]
    return {
        "status": "completed",
        "nodes": {"start": done, "each": {**done, "output": output, "items": items}, "join": done},
    }


def test_map_check_accepts_every_item_once_and_refuses_a_duplicate_or_a_short_output() -> None:
    bench_map.check("t", "mapped", 3, bench_map.from_json(_mapped_result([2, 0, 1], [1, 2, 3])))
    with pytest.raises(bench_map.WrongResult, match=r"3 items, 2 distinct indices"):
        bench_map.check("t", "mapped", 3, bench_map.from_json(_mapped_result([0, 0, 2], [1] * 3)))
    with pytest.raises(bench_map.WrongResult, match=r"expected a list of 3, got 2"):
        bench_map.check("t", "mapped", 3, bench_map.from_json(_mapped_result([0, 1, 2], [1, 2])))


@pytest.mark.integration
def test_waits_quick_parks_measures_memory_and_resumes_parked_beside_unparked() -> None:
    proc = run("waits", "--quick", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()

    def figures(label: str) -> list[str]:
        row = next(line for line in lines if line.strip().startswith(label))
        return row.strip()[len(label) :].split()

    for label in ("before (after the warm-up)", "300 parked", "after every execution completed"):
        assert [float(f) > 0 for f in figures(label)] == [True] * 3, label
    assert figures("orchestrator, bytes per parked execution")
    for label in ("parked, event in hand", "unparked, node's start stamp"):
        p50, p99, peak = (float(f) for f in figures(label))
        assert 0 < p50 <= p99 <= peak, label
    targets = lines[lines.index("targets (issue 17):") + 1 :]
    assert len(targets) == 3 and all(t.endswith(("MET", "MISS")) for t in targets), targets


def _approved(
    execution_id: str, path: list[str], by: str, placements: int
) -> orchestrator_pb2.Execution:
    e = orchestrator_pb2.Execution(
        id=execution_id,
        status=engine_pb2.EXECUTION_STATUS_COMPLETED,
        path=path,
        placements=placements,
    )
    e.nodes["ask"].output_json = json.dumps(bench_waits.data_of(by)).encode()
    return e


def test_waits_check_accepts_its_own_signal_and_refuses_a_wrong_path_data_or_placement() -> None:
    assert bench_waits.problems(_approved("e1", ["ask", "done"], "e1", 2), parked=True) == []
    assert bench_waits.problems(_approved("e1", ["ask", "done"], "e1", 1), parked=False) == []
    assert bench_waits.problems(_approved("e1", ["ask"], "e1", 2), parked=True) == ["path ['ask']"]
    (wrong,) = bench_waits.problems(_approved("e1", ["ask", "done"], "e2", 2), parked=True)
    assert "not its signal's data" in wrong
    (wrong,) = bench_waits.problems(_approved("e1", ["ask", "done"], "e1", 1), parked=True)
    assert wrong == "parked, yet placed 1 time(s)"


def test_compare_rejects_an_unknown_system_by_name() -> None:
    proc = run("compare", "--systems", "weir,airflow", timeout=60)
    assert proc.returncode != 0
    assert "--systems: unknown ['airflow']" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("option", ["--windows", "--max-tasks"])
def test_compare_rejects_a_malformed_per_system_option(option: str) -> None:
    proc = run("compare", option, "prefect=many", timeout=60)
    assert proc.returncode != 0
    assert f"{option}: expected SYSTEM=N" in proc.stderr and "'prefect=many'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ratios_pair_figures_of_the_same_round_only() -> None:
    dask = [1000.0, None, 900.0]
    weir = [10.0, 12.0, 30.0]
    assert bench_compare.ratios(dask, weir) == [100.0, None, 30.0]
    assert bench_compare.spread(bench_compare.ratios(dask, weir)) == "65.0 (30.0-100.0)"
    assert bench_compare.spread([None, None]) == "-"
    assert bench_compare.verdict([100.0, 30.0], 50.0) == "ok"
    assert bench_compare.verdict([40.0, 30.0, 100.0], 50.0) == "MISSED"


def test_rounds_rotate_the_order_so_each_system_takes_each_place() -> None:
    systems = ["weir", "weir-cluster", "dask", "prefect"]
    orders = [bench_compare.rotated(systems, r) for r in range(4)]
    for place in range(4):
        assert sorted(order[place] for order in orders) == sorted(systems)


def test_the_peers_are_pinned_and_fastapi_is_held_below_0_155() -> None:
    pins = [
        line.split("#")[0].strip()
        for line in bench_compare.REQUIREMENTS.read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    assert all("==" in pin for pin in pins), pins
    fastapi = next(pin for pin in pins if pin.startswith("fastapi=="))
    major, minor = (int(x) for x in fastapi.split("==")[1].split(".")[:2])
    assert (major, minor) < (0, 155)


def test_ui_quick_times_the_list_pages_and_the_execution_page_in_chromium() -> None:
    proc = run("ui", "--quick", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    out = proc.stdout
    assert "answered 404" not in out, out
    for filter_ in ("(none)", "workflow=reports", "status=failed"):
        assert filter_ in out, out
    assert out.count("UI / REST p50") == 4, out
    targets = [line for line in out.splitlines() if line.startswith("target:")]
    assert len(targets) == 2 and all(": MET" in t or ": MISS" in t for t in targets), targets
    page = next(line for line in out.splitlines() if line.strip().startswith("200 nodes "))
    ready = float(page.split()[4])
    assert ready > 0, page
