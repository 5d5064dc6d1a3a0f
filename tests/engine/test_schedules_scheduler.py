"""``LocalScheduler`` (API.md §1.11): run(duration), stop(), is_running, tick_once();
schedules written straight to storage; ``@scheduled_workflow`` activated and fired."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pyworkflow import (
    LocalScheduler,
    RunStatus,
    ScheduleSpec,
    ScheduleStatus,
    activate_scheduled_workflows,
    create_schedule,
    scheduled_workflow,
    step,
    workflow,
)
from pyworkflow.core.scheduled import clear_scheduled_workflows
from pyworkflow.runtime.local import _services
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.schemas import Schedule
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.support import eventually


@step(name="sched_ls_work")
async def work() -> str:
    return "done"


@workflow(name="sched_ls_job")
async def job() -> str:
    return await work()


@pytest.fixture(autouse=True)
def no_declared_schedules() -> Iterator[None]:
    clear_scheduled_workflows()
    yield
    clear_scheduled_workflows()


@pytest.fixture(params=["memory", "sqlite"])
async def fast_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    backend: StorageBackend
    if request.param == "memory":
        backend = InMemoryStorageBackend()
    else:
        backend = SQLiteStorageBackend(str(tmp_path / "sched.db"))
    await backend.connect()
    yield backend
    for service in _services.get(asyncio.get_running_loop(), {}).values():
        await service.stop()
    await backend.disconnect()


async def state(store: StorageBackend, sid: str) -> Schedule:
    schedule = await store.get_schedule(sid)
    assert schedule is not None
    return schedule


def raw_schedule(sid: str, workflow_name: str, due: datetime, interval: str = "1h") -> Schedule:
    """A schedule as another tool would write it: no timer."""
    return Schedule(sid, workflow_name, ScheduleSpec(interval=interval), next_run_time=due)


async def test_run_for_a_duration(fast_store: Any) -> None:
    scheduler = LocalScheduler(storage=fast_store, poll_interval=0.05)
    assert not scheduler.is_running
    began = time.monotonic()
    task = asyncio.create_task(scheduler.run(duration=0.4))
    await eventually(lambda: scheduler.is_running, timeout=2)
    await asyncio.wait_for(task, timeout=3)
    assert 0.35 <= time.monotonic() - began < 2.0
    assert not scheduler.is_running


async def test_stop_ends_run(fast_store: Any) -> None:
    scheduler = LocalScheduler(storage=fast_store, poll_interval=10)
    task = asyncio.create_task(scheduler.run())
    await eventually(lambda: scheduler.is_running, timeout=2)
    began = time.monotonic()
    scheduler.stop()
    await asyncio.wait_for(task, timeout=2)
    assert time.monotonic() - began < 1.0 and not scheduler.is_running


async def test_no_slot_fires_after_stop(fast_store: Any) -> None:
    """Once the scheduler has stopped, this process fires no more slots."""
    s = await create_schedule("sched_ls_job", ScheduleSpec(interval="1s"), storage=fast_store)
    scheduler = LocalScheduler(storage=fast_store, poll_interval=0.1)
    await scheduler.run(duration=0.5)
    fired = (await state(fast_store, s.schedule_id)).total_runs
    assert fired == 1
    await asyncio.sleep(2.2)
    assert (await state(fast_store, s.schedule_id)).total_runs == fired


async def test_tick_once_processes_due_schedules(fast_store: Any) -> None:
    now = datetime.now(UTC)
    await fast_store.create_schedule(raw_schedule("raw_due", "sched_ls_job", now))
    await fast_store.create_schedule(
        raw_schedule("raw_later", "sched_ls_job", now + timedelta(hours=2))
    )
    paused = raw_schedule("raw_paused", "sched_ls_job", now - timedelta(minutes=5))
    paused.status = ScheduleStatus.PAUSED
    await fast_store.create_schedule(paused)
    scheduler = LocalScheduler(storage=fast_store)
    assert await scheduler.tick_once() == 1
    due = await state(fast_store, "raw_due")
    assert due.total_runs == 1 and due.last_run_id is not None
    assert due.next_run_time is not None and due.next_run_time > now
    run = await eventually(lambda: _completed(fast_store, due.last_run_id))
    assert run.workflow_name == "sched_ls_job"
    assert (await state(fast_store, "raw_later")).total_runs == 0
    assert (await state(fast_store, "raw_paused")).total_runs == 0
    assert await scheduler.tick_once() == 0


async def _completed(store: StorageBackend, run_id: str | None) -> Any:
    run = await store.get_run(run_id or "")
    return run if run is not None and run.status is RunStatus.COMPLETED else None


async def test_run_picks_up_schedules_written_straight_to_storage(fast_store: Any) -> None:
    now = datetime.now(UTC)
    await fast_store.create_schedule(raw_schedule("raw_1", "sched_ls_job", now))
    assert [t for t in await fast_store.list_timers("raw_1")] == []
    await LocalScheduler(storage=fast_store, poll_interval=0.1).run(duration=1.0)
    after = await state(fast_store, "raw_1")
    assert after.total_runs == 1
    await eventually(lambda: _completed(fast_store, after.last_run_id))
    timers = [t for t in await fast_store.list_timers("raw_1") if t.kind == "schedule"]
    assert len(timers) == 1


async def test_unregistered_workflow_counts_a_failure_and_starts_nothing(fast_store: Any) -> None:
    await fast_store.create_schedule(raw_schedule("raw_ghost", "ghost_wf", datetime.now(UTC)))
    assert await LocalScheduler(storage=fast_store).tick_once() == 1
    after = await state(fast_store, "raw_ghost")
    assert (after.total_runs, after.failed_runs, after.running_run_ids) == (0, 1, [])
    assert (await fast_store.list_runs())[0] == []


async def test_scheduled_workflow_activated_and_fired(fast_store: Any) -> None:
    @scheduled_workflow(interval="1s", name="sched_ls_declared")
    async def declared() -> str:
        return await work()

    assert await activate_scheduled_workflows(storage=fast_store) == ["auto_sched_ls_declared"]
    assert await activate_scheduled_workflows(storage=fast_store) == []
    stored = await state(fast_store, "auto_sched_ls_declared")
    assert stored.workflow_name == "sched_ls_declared" and stored.spec.interval == "1s"
    await LocalScheduler(storage=fast_store, poll_interval=0.1).run(duration=1.6)
    after = await state(fast_store, "auto_sched_ls_declared")
    assert after.total_runs >= 2
    await eventually(lambda: _completed(fast_store, after.last_run_id))
