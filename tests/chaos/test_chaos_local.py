"""Short mode of the local chaos scenarios (tests/chaos/scenarios_local.py), and the
regression tests for what they found.

Each scenario runs once, seeded by ``PYWORKFLOW_CHAOS_SEED`` (default 1), sized by
``PYWORKFLOW_CHAOS_SCALE`` (default 1). A failure prints the scenario's row, its
violations and the seed; replay it with
``PYWORKFLOW_CHAOS_SEED=<seed> pytest tests/chaos/test_chaos_local.py -k <name>``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pyworkflow import get_workflow_result, resume, sleep, start, step, workflow
from pyworkflow.runtime import timer_service
from pyworkflow.storage.base import CorruptStorageError, StorageError
from pyworkflow.storage.file import FileStorageBackend
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.chaos.harness import run_scenario
from tests.chaos.local_app import CappedSQLite
from tests.chaos.scenarios_corrupt import damage
from tests.chaos.scenarios_local import LOCAL_SCENARIOS, scenario_dir
from tests.chaos.scenarios_storage import stop_service

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(120)]

SEED = int(os.environ.get("PYWORKFLOW_CHAOS_SEED", "1"))


@pytest.mark.parametrize("name", list(LOCAL_SCENARIOS))
async def test_local_scenario(name: str, tmp_path: Path) -> None:
    scenario = LOCAL_SCENARIOS[name](SEED)
    result = await run_scenario(scenario, scenario_dir(tmp_path, scenario))
    assert result.ok, f"seed={SEED}\n{result.summary()}"
    assert result.runs > 0


async def test_regression_concurrent_resumes_stopped_timer_service_stays_stopped(
    tmp_path: Path,
) -> None:
    """local_concurrent_resumes: a process stopping its timer service while a resume
    was in flight had the service restarted by that resume (its run suspended on a
    timer). The restarted service claimed due timers and the process exited: those
    timers fired only when their claims expired, 30 s later."""
    gate, entered = asyncio.Event(), asyncio.Event()

    @step(name="regr_gate")
    async def wait_gate() -> int:
        entered.set()
        await gate.wait()
        return 1

    @workflow(name="regr_stop_wf")
    async def stop_wf() -> int:
        await sleep(0.05)
        value = await wait_gate()
        await sleep(30)  # suspends on a timer after the service was asked to stop
        return value

    store = SQLiteStorageBackend(str(tmp_path / "stop.db"))
    await store.connect()
    service = timer_service(store)
    await start(stop_wf, durable=True, storage=store)
    await asyncio.wait_for(entered.wait(), 10)  # the service resumed it: in flight
    stopping = asyncio.create_task(service.stop())
    await asyncio.sleep(0.1)
    gate.set()
    await stopping
    try:
        assert not service.running, "stop() returned with the timer service running again"
    finally:
        for _ in range(10):
            await service.stop()
        await store.disconnect()


async def test_regression_full_disk_raises_storage_error_naming_the_file(
    tmp_path: Path,
) -> None:
    """local_full_disk: SQLite's "database or disk is full" reached callers as a bare
    sqlite3.OperationalError, naming neither the file nor the fix. It must be a
    StorageError that does; the run stays resumable and finishes once there is room."""

    @step(name="regr_big")
    async def big(i: int) -> str:
        return "x" * 200_000 + str(i)

    @workflow(name="regr_full_wf")
    async def full_wf() -> int:
        return sum([len(await big(i)) for i in range(4)])

    path = tmp_path / "full.db"
    store = SQLiteStorageBackend(str(path))
    await store.connect()
    pages = (await store._fetch_all("PRAGMA page_count", ()))[0][0]
    await store.disconnect()
    capped = CappedSQLite(str(path), pages + 60)  # room for the run, not its results
    await capped.connect()
    with pytest.raises(StorageError) as caught:
        await start(full_wf, durable=True, storage=capped)
    message = str(caught.value)
    assert "full" in message.lower() and str(path) in message, message
    (run,), _ = await capped.list_runs()
    await capped.disconnect()
    roomy = SQLiteStorageBackend(str(path))  # space freed
    await roomy.connect()
    assert await resume(run.run_id, storage=roomy) == 4 * 200_001
    await roomy.disconnect()


async def test_regression_corrupt_file_record_does_not_stall_other_runs(tmp_path: Path) -> None:
    """local_corrupt_file_record: one run's unreadable record made every stale-run
    scan raise (it reads every run record) after the same tick had claimed the due
    timers of healthy runs; those were then left claimed, so healthy runs waited 30 s
    per attempt and the whole timer service stalled on one damaged file."""

    @workflow(name="regr_nap_wf")
    async def nap_wf(seconds: float) -> float:
        await sleep(seconds)
        return seconds

    store = FileStorageBackend(str(tmp_path / "files"))
    await store.connect()
    healthy = await start(nap_wf, 0.3, durable=True, storage=store)
    damaged = await start(nap_wf, 3600.0, durable=True, storage=store)
    damage(tmp_path / "files", damaged, "garbage_run_record")
    service = timer_service(store)
    service.stale_check_interval = 0.0  # every tick also looks for stale runs
    service.poll_interval = 0.1
    try:
        # Claims last 30 s: a healthy run still asleep after 10 s was stalled.
        assert await get_workflow_result(healthy, storage=store, wait=True, timeout=10) == 0.3
        with pytest.raises(CorruptStorageError, match="Restore the file from a backup"):
            await store.get_run(damaged)
    finally:
        await stop_service(service)
        await store.disconnect()
