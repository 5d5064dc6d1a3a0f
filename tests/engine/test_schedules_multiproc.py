"""Schedulers in separate processes on one SQLite file or PostgreSQL database: two
of them never fire a slot twice, and one SIGKILLed between starting a run and saving
the schedule leaves nothing that re-processing the slot would start again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pyworkflow import OverlapPolicy, ScheduleSpec, create_schedule, step, workflow
from pyworkflow.runtime.local import links_for
from pyworkflow.scheduler.schedules import process_schedule
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import RunStatus
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.support import eventually

APP = Path(__file__).with_name("schedule_app.py")
ROOT = Path(__file__).resolve().parents[2]


@step(name="sched_mp_work")
async def work() -> str:
    return "done"


@workflow(name="sched_mp_job")
async def job() -> str:
    return await work()


# Several processes on one database: the SQL backends.
pytestmark = pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)


def storage_json(store: StorageBackend) -> str:
    if isinstance(store, SQLiteStorageBackend):
        return json.dumps({"type": "sqlite", "path": str(store.db_path)})
    return json.dumps({"type": "postgres", "dsn": store.dsn})  # type: ignore[attr-defined]


def scheduler(store: StorageBackend, seconds: float, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, str(APP), storage_json(store), str(seconds), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def instant(event: Any) -> datetime:
    return datetime.fromisoformat(event.data["scheduled_time"]).astimezone(UTC)


async def test_two_scheduler_processes_fire_each_slot_once(
    store: StorageBackend, request: pytest.FixtureRequest
) -> None:
    s = await create_schedule(
        "sched_mp_job",
        ScheduleSpec(interval="1s"),
        overlap_policy=OverlapPolicy.ALLOW_ALL,
        storage=store,
    )
    procs = [scheduler(store, 4.0), scheduler(store, 4.0)]
    for proc in procs:
        _, err = proc.communicate(timeout=40)
        assert proc.returncode == 0, err
    fired = await store.get_events(s.schedule_id, ["schedule.triggered"])
    skipped = await store.get_events(s.schedule_id, ["schedule.skipped"])
    run_ids = [e.data["workflow_run_id"] for e in fired]
    assert len(run_ids) >= 3 and len(set(run_ids)) == len(run_ids), run_ids
    # Every slot from the first to the last is fired or (missed at start-up) skipped, once.
    slots = sorted([instant(e) for e in fired] + [instant(e) for e in skipped])
    assert slots == [slots[0] + timedelta(seconds=n) for n in range(len(slots))]
    assert all("missed" in e.data["reason"] for e in skipped)
    runs, _ = await store.list_runs(limit=1000)
    ours = sorted(r.run_id for r in runs if (r.idempotency_key or "").startswith("schedule:"))
    after = await store.get_schedule(s.schedule_id)
    assert after is not None
    assert ours == sorted(run_ids) and after.total_runs == len(run_ids)
    assert after.skipped_runs == len(skipped)


async def test_scheduler_killed_before_saving_leaves_one_run(
    store: StorageBackend, request: pytest.FixtureRequest
) -> None:
    s = await create_schedule("sched_mp_job", ScheduleSpec(interval="1h"), storage=store)
    proc = scheduler(store, 20.0, "die-on-save")
    _, err = proc.communicate(timeout=40)
    assert proc.returncode == -9, err
    runs, _ = await store.list_runs()
    assert runs == []  # killed after saving the decision, before creating the run
    before = await store.get_schedule(s.schedule_id)
    assert before is not None and before.total_runs == 1
    (run_id,) = before.running_run_ids
    # The schedule is processed again (its claim expired): the decided run, once.
    links = links_for(store)

    async def launch(run_id: str) -> None:
        await links.launch(run_id, True)

    await process_schedule(store, s.schedule_id, launch, now=datetime.now(UTC))
    runs, _ = await store.list_runs()
    assert [r.run_id for r in runs] == [run_id]
    (run,) = runs
    done = await eventually(lambda: store.get_run(run.run_id))
    assert done.status is RunStatus.COMPLETED
    await process_schedule(store, s.schedule_id, launch, now=datetime.now(UTC))
    after = await store.get_schedule(s.schedule_id)
    assert after is not None
    assert (after.total_runs, after.successful_runs, after.running_run_ids) == (1, 1, [])
    assert after.last_run_id == run.run_id
