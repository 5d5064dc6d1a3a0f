"""The README's tour runs as written, in an empty directory, and exits promptly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make demo", "make test"]
    assert text.index("```bash") < text.index("```python")


def test_readme_tour_runs_and_exits(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    tour = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    script = tmp_path / "tour.py"
    script.write_text(tour)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # No disconnect() in the tour: the process must still exit on its own.
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "shipped A-1001"
    assert (tmp_path / "pyworkflow_data" / "pyworkflow.db").exists()
