"""SIGKILL a process in the middle of a fan-out of ten child workflows; a restarted
process finishes the tree. Side effects are counted in a file that survives the
kill: a child step recorded before the kill never runs again, any other runs once
more; every child run is created once and every outcome reaches the parent once.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyworkflow import RunStatus, resume
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.support import wait_until

APP = Path(__file__).with_name("children_crash_app.py")
ROOT = Path(__file__).resolve().parents[2]


def kinds(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


async def has_status(store: StorageBackend, run_id: str, status: RunStatus) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status is status


def _env(tmp_path: Path, mode: str) -> dict[str, str]:
    env = dict(os.environ, CRASH_DIR=str(tmp_path), CRASH_MODE=mode)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # Children created but never started by the dead process are picked up quickly.
    env["PYWORKFLOW_RESUME_GUARD_SECONDS"] = "0.5"
    return env


def _counters(tmp_path: Path) -> dict[str, int]:
    path = tmp_path / "counters.log"
    lines = path.read_text().split() if path.exists() else []
    return dict(collections.Counter(lines))


def _index(run: Any) -> int:
    return int(run.input_args.strip("[]"))


@pytest.mark.slow
async def test_sigkill_during_a_fan_out_of_ten_children(tmp_path: Path) -> None:
    db = str(tmp_path / "fan.db")
    proc = subprocess.Popen(
        [sys.executable, str(APP), "start", db],
        env=_env(tmp_path, "hang"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: (tmp_path / "hang.ready").exists() or proc.poll() is not None,
            timeout=30,
            message="the fan-out never reached the hang point",
        )
        assert proc.poll() is None, proc.communicate()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    before = _counters(tmp_path)
    store = SQLiteStorageBackend(db)
    await store.connect()
    runs, _ = await store.list_runs(query="crash_fan_out")
    (parent,) = [r for r in runs if r.workflow_name == "crash_fan_out"]
    assert parent.status is RunStatus.RUNNING  # killed mid-activation
    recorded_before = set()
    for kid in await store.get_children(parent.run_id):
        if await store.get_events(kid.run_id, ["step.completed"]):
            recorded_before.add(_index(kid))
    followups_owed = {
        t.run_id for t in await store.list_timers() if t.kind == "followup"
    }  # children that ended just before the kill, their follow-ups not yet done
    await store.disconnect()
    assert 5 not in recorded_before and before.get("work5") == 1

    done = subprocess.run(
        [sys.executable, str(APP), "recover", db, parent.run_id],
        env=_env(tmp_path, ""),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [i * i for i in range(10)]

    after = _counters(tmp_path)
    for i in range(10):
        name = f"work{i}"
        # A step recorded before the kill never ran again; any other ran once more.
        expected = before.get(name, 0) + (0 if i in recorded_before else 1)
        assert after.get(name, 0) == expected, (name, before, after, recorded_before)

    store = SQLiteStorageBackend(db)
    await store.connect()
    try:
        assert await has_status(store, parent.run_id, RunStatus.COMPLETED)
        kids = await store.get_children(parent.run_id)
        assert sorted(_index(k) for k in kids) == list(range(10))  # each created once
        for kid in kids:
            assert kid.status is RunStatus.COMPLETED, kid
            assert len(await store.get_events(kid.run_id, ["step.completed"])) == 1
        events = await store.get_events(parent.run_id)
        assert kinds(events).count("child_workflow.started") == 10
        assert kinds(events).count("child_workflow.completed") == 10
        # Left: only the follow-up timers owed since before the kill (due 30 s after
        # those children ended). Firing them now changes nothing for the parent.
        left = await store.list_timers()
        assert {t.run_id for t in left} <= followups_owed
        assert {t.kind for t in left} <= {"followup"}
        for timer in left:
            await resume(timer.run_id, storage=store)
        assert await store.list_timers() == []
        events = await store.get_events(parent.run_id)
        assert kinds(events).count("child_workflow.completed") == 10
        assert await has_status(store, parent.run_id, RunStatus.COMPLETED)
    finally:
        await store.disconnect()
