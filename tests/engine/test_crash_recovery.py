"""SIGKILL a process running a durable workflow; a new process finishes the run.

Side effects are counted in a file that survives the kill: a step that completed
before the kill never runs again; the step the kill interrupted runs again.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pyworkflow.storage.schemas import RunStatus
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from pyworkflow.testing.invariants import check_invariants
from tests.support import wait_until

APP = Path(__file__).with_name("crash_app.py")
ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, mode: str) -> dict[str, str]:
    env = dict(os.environ, CRASH_DIR=str(tmp_path), CRASH_MODE=mode)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _counters(tmp_path: Path) -> dict[str, int]:
    lines = (tmp_path / "counters.log").read_text().split()
    return dict(collections.Counter(lines))


def _kill_at_hang_point(tmp_path: Path, args: list[str], mode: str) -> None:
    """Run crash_app with ``args`` until it hangs at ``mode``'s point, then SIGKILL it."""
    (tmp_path / f"{mode}.ready").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, str(APP), *args],
        env=_env(tmp_path, mode),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: (tmp_path / f"{mode}.ready").exists(),
            timeout=30,
            message=f"the workflow never reached the {mode!r} hang point",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def _resume(db: str, run_id: str, tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(APP), "resume", db, run_id],
        env=_env(tmp_path, ""),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def _crash_then_resume(tmp_path: Path, mode: str) -> tuple[str, str]:
    db = str(tmp_path / "crash.db")
    _kill_at_hang_point(tmp_path, ["start", db], mode)
    store = SQLiteStorageBackend(db)
    await store.connect()
    (run,), _ = await store.list_runs()
    assert run.status is RunStatus.RUNNING  # killed mid-activation
    await store.disconnect()
    return run.run_id, _resume(db, run.run_id, tmp_path)


@pytest.mark.slow
async def test_kill_between_steps_runs_each_completed_step_once(tmp_path: Path) -> None:
    run_id, output = await _crash_then_resume(tmp_path, "between")
    assert output == "6"
    assert _counters(tmp_path) == {"one": 1, "two": 1, "three": 1}
    store = SQLiteStorageBackend(str(tmp_path / "crash.db"))
    await store.connect()
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED
    completed = await store.get_events(run_id, ["step.completed"])
    assert len(completed) == 3
    await store.disconnect()


@pytest.mark.slow
async def test_kill_inside_step_reruns_only_that_step(tmp_path: Path) -> None:
    _, output = await _crash_then_resume(tmp_path, "inside")
    assert output == "6"
    assert _counters(tmp_path) == {"one": 1, "two": 2, "three": 1}


@pytest.mark.slow
async def test_regression_killed_again_during_recovery_stays_running_and_stale(
    tmp_path: Path,
) -> None:
    """Found reviewing the chaos harness's notes: the activation that recovers a lost
    run (worker-loss recovery, as Celery workers run it) recorded ``workflow.interrupted``
    and status INTERRUPTED, then ran on without marking the run RUNNING again; killed in
    turn, it left an INTERRUPTED run that the stale-run scan (RUNNING runs only) never
    picked up."""
    db = str(tmp_path / "crash.db")
    _kill_at_hang_point(tmp_path, ["start", db], "inside")
    store = SQLiteStorageBackend(db)
    await store.connect()
    try:
        (run,), _ = await store.list_runs()
        _kill_at_hang_point(tmp_path, ["recover", db, run.run_id], "inside")
        again = await store.get_run(run.run_id)
        assert again is not None and again.status is RunStatus.RUNNING
        assert again.recovery_attempts == 1
        report = await check_invariants(store)
        assert report.ok, report.summary()
        later = datetime.now(UTC) + timedelta(minutes=5)  # every lease has expired
        assert run.run_id in await store.list_stale_runs(later)
        done = subprocess.run(
            [sys.executable, str(APP), "recover", db, run.run_id],
            env=_env(tmp_path, ""),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.stdout.strip() == '"completed"', done.stderr
        assert _counters(tmp_path) == {"one": 1, "two": 3, "three": 1}
        final = await store.get_run(run.run_id)
        assert final is not None and final.status is RunStatus.COMPLETED
        assert final.recovery_attempts == 2
    finally:
        await store.disconnect()
