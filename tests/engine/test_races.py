"""Racing activations: two resumers, two timer services, in one process and in several.

Each step body must run once and each result be recorded once, whoever wins.
"""

from __future__ import annotations

import asyncio
import collections
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyworkflow import get_workflow_result, resume, sleep, start, step, workflow
from pyworkflow.runtime import timer_service
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import RunStatus
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.support import eventually

APP = Path(__file__).with_name("race_app.py")
ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, RACE_DIR=str(tmp_path))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(APP), *args],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _counters(tmp_path: Path) -> dict[str, int]:
    return dict(collections.Counter((tmp_path / "counters.log").read_text().split()))


async def _check_once(db: str, run_id: str) -> None:
    store = SQLiteStorageBackend(db)
    await store.connect()
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED, run
    events = await store.get_events(run_id)
    kinds = [e.type.value for e in events]
    assert kinds.count("step.completed") == 3
    assert kinds.count("sleep.completed") == 1
    assert kinds.count("workflow.completed") == 1
    assert [e.sequence for e in events] == list(range(len(events)))
    assert await store.list_timers(run_id) == []
    await store.disconnect()


def _start(tmp_path: Path) -> tuple[str, str]:
    db = str(tmp_path / "race.db")
    proc = _run(tmp_path, "start", db)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return db, out.strip()


@pytest.mark.slow
async def test_two_processes_resume_the_same_run(tmp_path: Path) -> None:
    db, run_id = _start(tmp_path)
    await asyncio.sleep(0.4)  # the sleep is due
    procs = [_run(tmp_path, "resume", db, run_id) for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    # One resumer advanced the run; the other found it leased and returned None.
    assert sorted(out.strip() for out, _ in outputs) == ["6", "null"]
    assert _counters(tmp_path) == {"first": 1, "slow": 1, "last": 1}
    await _check_once(db, run_id)


@pytest.mark.slow
async def test_two_timer_services_fire_a_timer_once(tmp_path: Path) -> None:
    db, run_id = _start(tmp_path)
    procs = [_run(tmp_path, "timers", db, "2.5") for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert _counters(tmp_path) == {"first": 1, "slow": 1, "last": 1}
    await _check_once(db, run_id)


async def test_concurrent_resumes_in_one_process(store: StorageBackend) -> None:
    runs: collections.Counter[str] = collections.Counter()

    @step
    async def work(name: str) -> str:
        runs[name] += 1
        await asyncio.sleep(0.05)
        return name

    @workflow(name="contended")
    async def contended() -> list[str]:
        a = await work("a")
        await sleep(0.1)
        return [a, await work("b"), await work("c")]

    run_id = await start(contended, durable=True, storage=store)
    await asyncio.sleep(0.15)
    # Five resumes race each other and the in-process timer service (due at 0.1 s).
    results = await asyncio.gather(*(resume(run_id, storage=store) for _ in range(5)))
    assert await get_workflow_result(run_id, storage=store, wait=True, timeout=5) == ["a", "b", "c"]
    assert runs == {"a": 1, "b": 1, "c": 1}
    assert all(r in (None, ["a", "b", "c"]) for r in results)
    completed = await store.get_events(run_id, ["step.completed"])
    assert len(completed) == 3


async def test_restarted_process_finishes_due_sleep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, run_id = _start(tmp_path)  # that process exited while the run slept
    await asyncio.sleep(0.4)
    # A restarted process imports its workflow modules, then runs the timer service.
    monkeypatch.setenv("RACE_DIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(APP.parent))
    importlib.import_module("race_app")
    store = SQLiteStorageBackend(db)
    await store.connect()
    service = timer_service(store)
    await eventually(lambda: _completed(store, run_id), timeout=10)
    await service.stop()
    await store.disconnect()
    assert _counters(tmp_path) == {"first": 1, "slow": 1, "last": 1}


async def _completed(store: StorageBackend, run_id: str) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status is RunStatus.COMPLETED


async def test_resumer_that_loses_the_race_to_completion_leaves_it_completed(
    store: StorageBackend,
) -> None:
    """Resumer B reads the run, A completes it and releases the lease, then B takes
    the lease: B must see the run ended and leave it alone (it used to mark the run
    RUNNING again, with a completed log)."""

    @workflow(name="race_to_finish")
    async def race_to_finish() -> str:
        await sleep(0.05)
        return "done"

    run_id = await start(race_to_finish, durable=True, storage=store)
    await timer_service(store).stop()  # only the two resumes below advance the run
    await asyncio.sleep(0.1)
    real = store.acquire_run_lease

    async def acquire_late(*args: object, **kwargs: object) -> bool:
        store.acquire_run_lease = real  # type: ignore[method-assign]
        assert await resume(run_id, storage=store) == "done"  # A, while B waits
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    store.acquire_run_lease = acquire_late  # type: ignore[method-assign]
    assert await resume(run_id, storage=store) == "done"  # B finds it ended: its result
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED
    assert await store.get_run_lease(run_id) is None
