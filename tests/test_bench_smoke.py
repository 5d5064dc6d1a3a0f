"""The benchmark harness runs end to end (``python -m bench --smoke``).

Only that it works: ours only, tiny sizes, no upstream venv, no PostgreSQL. W4 starts
a Redis server and Celery workers of its own (~10 s of the run). The benchmarks
themselves never run in the test suite, and nothing here asserts a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
def test_smoke_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("workload"))
    assert header.split()[:4] == ["workload", "case", "engine", "metric"]
    for row in ("W1", "W3", "W4", "ours", "floor", "runs/s", "one resume", "lateness p95"):
        assert row in done.stdout, f"{row!r} missing from the table:\n{done.stdout}"

    (written,) = tmp_path.glob("*.json")
    results = json.loads(written.read_text())
    assert results["meta"]["mode"] == "smoke"
    assert results["meta"]["engines"] == ["ours"]
    assert results["errors"] == []
    w1 = results["workloads"]["W1"]["samples"]
    assert [s["runs"] for s in w1["ours"]] == [5]
    assert w1["ours"][0]["runs_per_s"] > 0 and w1["floor"][0]["ms_per_step"] > 0
    loop = results["workloads"]["W3"]["shapes"]["loop"]["per_k"]["20"]["ours"]
    assert loop[0]["resumes"] == 20
    w4 = results["workloads"]["W4"]["samples"]
    assert set(w4) == {"floor", "ours"} and not results["workloads"]["W4"]["failed"]
    for side in ("floor", "ours"):
        assert [len(w4[side][0][c]["latencies_ms"]) for c in ("one", "two")] == [5, 5]
    assert len(w4["ours"][0]["sleep"]["lateness_ms"]) == 2
    assert min(w4["ours"][0]["sleep"]["lateness_ms"]) >= 0  # a sleep never ends early
    assert {t["target"] for t in results["targets"]}  # the targets were evaluated
