"""Run one workload script in a subprocess and read its JSON result."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.envs import ROOT, log

WORKLOADS = ROOT / "bench" / "workloads"
#: Options whose values (paths, DSNs, broker URLs) are left out of the log lines.
_PATHS = ("--store", "--ids", "--profile", "--broker", "--backend")


class WorkloadFailed(RuntimeError):
    """A workload script exited non-zero, printed no result, or timed out."""


def _env() -> dict[str, str]:
    # No PYTHONPATH or pyworkflow settings of the caller's may leak into either side.
    return {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PYWORKFLOW")
    }


def run_script(python: Path, script: str, args: list[str], timeout: float) -> dict[str, Any]:
    """Run ``bench/workloads/<script>`` with ``python``; return its last JSON line.

    The working directory is an empty temp dir, so ``import pyworkflow`` finds the
    venv's package, never this repository's source tree.
    """
    cmd = [str(python), str(WORKLOADS / script), *args]
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-cwd-") as cwd:
        try:
            done = subprocess.run(
                cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise WorkloadFailed(
                f"{script} {' '.join(args)}: no result after {timeout:.0f}s"
            ) from exc
    if done.returncode != 0:
        raise WorkloadFailed(f"{script} exited {done.returncode}: {_last_error(done.stderr)}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise WorkloadFailed(f"{script} printed no JSON result:\n{done.stdout[-1000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["wall_s"] = time.monotonic() - began
    log(f"  {python.parent.parent.name}: {script} {_shown(args)} ({result['wall_s']:.1f} s)")
    return result


def _shown(args: list[str]) -> str:
    """The arguments worth a log line: paths and DSNs left out."""
    kept = [a for a, prev in zip(args, ["", *args], strict=False) if prev not in _PATHS]
    return " ".join(a for a in kept if a not in _PATHS)


def _last_error(stderr: str) -> str:
    """The exception line of a traceback (loguru's colours stripped), else the tail."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", stderr)
    errors = [line for line in plain.splitlines() if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return errors[-1] if errors else plain[-500:]
