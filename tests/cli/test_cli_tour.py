"""examples/cli/tour.sh (the tour of docs/guides/cli.md) runs as a new user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tour_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW")}
    env |= {"PYWORKFLOW": str(Path(sys.executable).parent / "pyworkflow"), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(ROOT / "examples" / "cli" / "tour.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert '"Hello, Ada! (delivered)"' in out
    assert "run total" in out  # the timeline
    assert out.count(": step.completed") == 2
    assert "run_status  completed" in out  # the hook resumed the approval run
    assert "Scheduler stopped" in out
    counted = out.strip().splitlines()[-1]  # "<n> runs, <n> completed"
    total, completed = int(counted.split()[0]), int(counted.split()[2])
    assert total == completed >= 3
