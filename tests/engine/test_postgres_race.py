"""Eight processes append to and resume the same 200 runs on one PostgreSQL database.

The test starts the runs (they suspend on a one-second sleep) and stops its timer
service. When the sleeps fall due, all eight processes go over all 200 runs in the same order,
so that they arrive at each run together: each appends a marker event to the run and
resumes it. The lease lets one of them advance the run while the markers of the
others land in the middle of its activation, whose commits then conflict and retry.
Afterwards every event log must be gap-free and duplicate-free, every run completed
exactly once, and every step body run once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pyworkflow import sleep, start, step, workflow
from pyworkflow.engine.events import dedup_key
from pyworkflow.runtime import timer_service
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.storage.postgres import PostgresStorageBackend
from pyworkflow.storage.schemas import RunStatus
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 8
RUNS = 200


def bump(name: str) -> None:
    """Count a step body execution (one file per process: appends never interleave)."""
    with open(Path(os.environ["PG_RACE_DIR"], f"counters-{os.getpid()}.log"), "a") as f:
        f.write(name + "\n")


@step(name="pg_race_charge")
async def charge(i: int) -> int:
    bump(f"charge:{i}")
    return i


@step(name="pg_race_ship")
async def ship(i: int) -> int:
    bump(f"ship:{i}")
    return 2 * i


@workflow(name="pg_race", durable=True)
async def pg_race(i: int) -> int:
    await sleep(1.0)
    return await charge(i) + await ship(i)


CHILD = """
import asyncio, json, sys, time
from pathlib import Path

from pyworkflow import resume
from pyworkflow.engine.events import Event, EventType
from pyworkflow.storage.postgres import PostgresStorageBackend
from tests.engine.test_postgres_race import RUNS

dsn, slot, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])


async def main() -> None:
    storage = PostgresStorageBackend(dsn=dsn, max_pool_size=4)
    await storage.connect()
    (folder / f"ready-{slot}").touch()
    while not (folder / "go").exists():
        await asyncio.sleep(0.005)
    await asyncio.sleep(max(0.0, float((folder / "go").read_text()) - time.time()))
    started = time.perf_counter()
    run_ids = [(folder / f"run-{i}").read_text() for i in range(RUNS)]
    errors, results = [], 0
    for run_id in run_ids:
        marker = Event(run_id=run_id, type=EventType.WORKFLOW_RESUMED, data={"by": slot})
        await storage.record_event(marker)
        try:
            results += await resume(run_id, storage=storage) is not None
        except Exception as error:
            errors.append(repr(error))
    # Runs another process was advancing when we came by: wait until their logs end
    # (the log is the truth; the run row is checked against it by the test).
    deadline = time.monotonic() + 30
    for run_id in run_ids:
        while not await storage.get_events(run_id, ["workflow.completed", "workflow.failed"]):
            if time.monotonic() > deadline:
                errors.append(f"{run_id} never ended: {await storage.get_events(run_id)}")
                break
            await asyncio.sleep(0.01)
    seconds = time.perf_counter() - started
    await storage.disconnect()
    print(json.dumps({"errors": errors, "results": results, "seconds": seconds}))


asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_eight_processes_share_two_hundred_runs(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_RACE_DIR", str(tmp_path))
    storage = PostgresStorageBackend(dsn=pg_dsn)
    await storage.connect()
    try:
        run_ids = await asyncio.gather(*(start(pg_race, i, storage=storage) for i in range(RUNS)))
        # Only the processes' explicit resumes advance the runs: no timer service here.
        await timer_service(storage).stop()
        for i, run_id in enumerate(run_ids):
            (tmp_path / f"run-{i}").write_text(run_id)
        reports, elapsed = await _race(storage, pg_dsn, tmp_path)
        total_events, disagreeing = await _check_every_run(storage, tmp_path)
        assert await storage.list_timers() == []
    finally:
        await storage.disconnect()

    counters = collections.Counter(
        line for log in tmp_path.glob("counters-*.log") for line in log.read_text().split()
    )
    expected = {f"{name}:{i}" for name in ("charge", "ship") for i in range(RUNS)}
    assert set(counters) == expected
    assert set(counters.values()) == {1}  # every step body ran exactly once
    print(
        f"\n{PROCESSES} processes x {RUNS} runs: {total_events} events, "
        f"{sum(r['results'] for r in reports)} resumes returned a result, "
        f"race {elapsed:.2f}s (slowest process {max(r['seconds'] for r in reports):.2f}s)"
    )
    # Every run row agrees with its log (a resumer that lost the race to completion
    # once marked a finished run RUNNING again).
    assert disagreeing == []


async def _race(
    storage: PostgresStorageBackend, dsn: str, folder: Path
) -> tuple[list[dict[str, Any]], float]:
    """Start the processes, let them go when every sleep is due; their reports."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, dsn, str(slot), str(folder)],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for slot in range(PROCESSES)
    ]

    def ready() -> bool:
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"a child exited early: {proc.communicate()[1]}")
        return all((folder / f"ready-{slot}").exists() for slot in range(PROCESSES))

    try:
        await eventually(ready, timeout=60, message="children never got ready")
        timers = await storage.list_timers()
        assert len(timers) == RUNS  # every run asleep, none fired yet
        # Go once the last sleep is due (epoch seconds): every resume finds work to do.
        (folder / "go").write_text(str(max(t.fire_at for t in timers).timestamp()))
        started = time.perf_counter()
        outputs = [proc.communicate(timeout=90) for proc in procs]
        elapsed = time.perf_counter() - started
    finally:
        for proc in procs:  # a failed test leaves no process behind
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outputs]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [r["errors"] for r in reports] == [[]] * PROCESSES
    return reports, elapsed


async def _check_every_run(storage: PostgresStorageBackend, folder: Path) -> tuple[int, list[str]]:
    """Assert each run's log; return the event count and the runs whose row disagrees."""
    total, disagreeing = 0, []
    for i in range(RUNS):
        run_id = (folder / f"run-{i}").read_text()
        events = await storage.get_events(run_id)
        total += len(events)
        assert [e.sequence for e in events] == list(range(len(events)))  # gap-free
        keys = [k for k in map(dedup_key, events) if k is not None]
        assert len(keys) == len(set(keys)), keys  # duplicate-free
        kinds = collections.Counter(e.type.value for e in events)
        assert kinds["workflow.started"] == 1 and kinds["workflow.completed"] == 1
        assert kinds["sleep.completed"] == 1 and kinds["step.completed"] == 2
        [completed] = [e for e in events if e.type.value == "workflow.completed"]
        assert deserialize(completed.data["result"]) == 3 * i
        markers = sorted(e.data["by"] for e in events if e.type.value == "workflow.resumed")
        assert markers == list(range(PROCESSES))  # every process appended once
        run = await storage.get_run(run_id)
        assert run is not None and await storage.get_run_lease(run_id) is None
        if run.status is not RunStatus.COMPLETED:
            disagreeing.append(run_id)
        else:
            assert run.result is not None and deserialize(run.result) == 3 * i
    return total, disagreeing
