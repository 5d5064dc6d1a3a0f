"""The interpreters under test and the machine they run on.

Ours is the interpreter running the harness (the project's ``.venv``). Each upstream
release gets its own venv under ``bench/.venvs/upstream-<version>``; plotting gets
``bench/.venvs/tools``. They are made once (``--without-pip``, then filled by this
venv's pip through ``pip --python``) and reused while their requirements are unchanged.
"""

from __future__ import annotations

import os
import platform
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / "bench" / ".venvs"
OURS = Path(sys.executable)
PACKAGE = "pyworkflow-engine"
#: Used when PyPI cannot be asked which release is the newest.
KNOWN_NEWEST = "0.4.0"
_STAMP = ".bench-requirements"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def newest_upstream() -> str:
    """The newest release of pyworkflow-engine (``pip index versions``)."""
    try:
        out = subprocess.run(
            [str(OURS), "-m", "pip", "index", "versions", PACKAGE],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return KNOWN_NEWEST
    found = re.search(rf"^{re.escape(PACKAGE)} \(([^)]+)\)", out, re.M)
    return found.group(1) if found else KNOWN_NEWEST


def ensure_venv(name: str, requirements: list[str]) -> Path:
    """The python of ``bench/.venvs/<name>`` with ``requirements`` installed."""
    target = VENVS / name
    python = target / "bin" / "python"
    stamp = target / _STAMP
    wanted = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"creating {target.relative_to(ROOT)} with {' '.join(requirements)}")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", "--without-pip", str(target)], check=True)
    result = subprocess.run(
        [str(OURS), "-m", "pip", "--python", str(python), "install", "-q", *requirements],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip install {requirements} failed:\n{result.stderr[-3000:]}")
    stamp.write_text(wanted)
    return python


def upstream_python(version: str) -> Path:
    # redis: the client of W4's broker (upstream's Celery runtime needs the extra), and
    # packaging, which kombu's Redis transport imports but neither of them requires (a
    # venv made with pip usually has it; these are made without).
    return ensure_venv(
        f"upstream-{version}", [f"{PACKAGE}[sqlite,postgres,redis]=={version}", "packaging"]
    )


def tools_python() -> Path:
    return ensure_venv("tools", ["matplotlib"])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        out = subprocess.run(["free", "-h"], capture_output=True, text=True, check=True).stdout
        return out.splitlines()[1].split()[1]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory": _memory(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
    }
