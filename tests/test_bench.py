"""The benchmarks are not tests, but they must keep running: ``scripts/bench --quick`` and the
offline half of ``scripts/bench compare`` (weir only: the peers need their own venv and the
package registry), plus the arithmetic the comparison table rests on and the check that stops
``scripts/bench map`` on a wrong result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_compare  # noqa: E402
import bench_map  # noqa: E402


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
