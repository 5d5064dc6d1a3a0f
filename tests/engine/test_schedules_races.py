"""A slot fires once: the same slot processed twice (at once, or again after a
scheduler died between starting the run and saving the schedule), and a run that
ends while its schedule is being processed. Injected clock, every backend."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyworkflow import (
    OverlapPolicy,
    ScheduleSpec,
    ScheduleStatus,
    create_schedule,
    pause_schedule,
    resume,
    step,
    update_schedule,
    workflow,
)
from pyworkflow.scheduler import schedules
from pyworkflow.scheduler.schedules import arm, process_schedule
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import RunStatus, Schedule

T0 = datetime(2030, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)


@step(name="sched_race_work")
async def work() -> int:
    return 1


@workflow(name="sched_race_job")
async def job() -> int:
    return await work()


class Recorder:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, run_id: str) -> None:
        self.ids.append(run_id)


async def make(store: StorageBackend, policy: OverlapPolicy = OverlapPolicy.SKIP) -> Schedule:
    schedule = await create_schedule(
        "sched_race_job", ScheduleSpec(interval="1m"), overlap_policy=policy, storage=store
    )
    schedule.next_run_time = T0
    await store.update_schedule(schedule)
    await arm(store, schedule, T0)
    return schedule


async def schedule_runs(store: StorageBackend, sid: str) -> list[str]:
    runs, _ = await store.list_runs(limit=1000)
    return sorted(
        r.run_id for r in runs if (r.idempotency_key or "").startswith(f"schedule:{sid}:")
    )


async def triggered(store: StorageBackend, sid: str) -> list[str]:
    evts = await store.get_events(sid, ["schedule.triggered"])
    return [e.data["workflow_run_id"] for e in evts]


async def state(store: StorageBackend, sid: str) -> Schedule:
    schedule = await store.get_schedule(sid)
    assert schedule is not None
    return schedule


async def finish(store: StorageBackend, run_id: str) -> None:
    with contextlib.suppress(Exception):
        await resume(run_id, storage=store)
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED


def crash_once_creating_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler dies after saving its decision (the slot's run counted and
    tracked) and before creating that run."""
    real = schedules._create_run
    calls = {"n": 0}

    async def flaky(storage: StorageBackend, schedule: Schedule, run_id: str) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("scheduler killed before creating the run")
        return await real(storage, schedule, run_id)

    monkeypatch.setattr(schedules, "_create_run", flaky)


async def test_same_slot_processed_twice_at_once_starts_one_run(store: StorageBackend) -> None:
    s = await make(store)
    launch = Recorder()
    results = await asyncio.gather(
        process_schedule(store, s.schedule_id, launch, now=T0),
        process_schedule(store, s.schedule_id, launch, now=T0),
        return_exceptions=True,
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    runs = await schedule_runs(store, s.schedule_id)
    assert len(runs) == 1
    after = await state(store, s.schedule_id)
    assert (after.total_runs, after.running_run_ids) == (1, runs)
    await finish(store, runs[0])
    await process_schedule(store, s.schedule_id, launch, now=T0 + timedelta(seconds=1))
    after = await state(store, s.schedule_id)
    assert (after.successful_runs, after.running_run_ids) == (1, [])
    (next_run,) = await process_schedule(store, s.schedule_id, launch, now=T0 + MIN)
    assert next_run not in runs


async def test_same_slot_processed_twice_at_once_records_one_trigger(
    store: StorageBackend,
) -> None:
    s = await make(store)
    launch = Recorder()
    await asyncio.gather(
        process_schedule(store, s.schedule_id, launch, now=T0),
        process_schedule(store, s.schedule_id, launch, now=T0),
    )
    assert len(await triggered(store, s.schedule_id)) == 1


async def test_scheduler_dies_before_creating_the_run_then_slot_is_reprocessed(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await make(store)
    launch = Recorder()
    crash_once_creating_the_run(monkeypatch)
    with pytest.raises(ConnectionError):
        await process_schedule(store, s.schedule_id, launch, now=T0)
    assert await schedule_runs(store, s.schedule_id) == []
    saved = await state(store, s.schedule_id)
    (first,) = saved.running_run_ids  # decided and saved: the slot is not fired twice
    # The claim expired; another scheduler processes the schedule again.
    await process_schedule(store, s.schedule_id, launch, now=T0 + timedelta(seconds=30))
    assert await schedule_runs(store, s.schedule_id) == [first]
    after = await state(store, s.schedule_id)
    assert (after.total_runs, after.last_run_id) == (1, first)
    assert after.next_run_time == T0 + MIN
    await finish(store, first)
    await process_schedule(store, s.schedule_id, launch, now=T0 + timedelta(seconds=40))
    after = await state(store, s.schedule_id)
    assert (after.successful_runs, after.failed_runs, after.running_run_ids) == (1, 0, [])
    # The next slot starts a new run, counted once.
    (second,) = await process_schedule(store, s.schedule_id, launch, now=T0 + MIN)
    assert second != first
    await finish(store, second)
    await process_schedule(store, s.schedule_id, launch, now=T0 + MIN + timedelta(seconds=1))
    after = await state(store, s.schedule_id)
    assert (after.total_runs, after.successful_runs, after.skipped_runs) == (2, 2, 0)


def hold_first_save(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, asyncio.Event]:
    """The first ``patch_schedule`` waits (after its caller read the schedule) until
    released; returns (saving, release)."""
    real = store.patch_schedule
    saving, release = asyncio.Event(), asyncio.Event()
    calls = {"n": 0}

    async def held(schedule_id: str, changes: dict[str, Any], **kw: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            saving.set()
            await release.wait()
        return await real(schedule_id, changes, **kw)

    monkeypatch.setattr(store, "patch_schedule", held)
    return saving, release


@pytest.mark.parametrize("call", ["pause", "update"])
@pytest.mark.parametrize("last", ["processor", "api"])
async def test_api_change_while_the_schedule_is_processed_loses_nothing(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch, call: str, last: str
) -> None:
    """``pause_schedule``/``update_schedule`` and the processor both read the schedule
    and save it whole. Whichever saves last must not undo the other: the pause (or
    the new policy) stays, and the run the slot started stays counted."""
    s = await make(store)
    launch = Recorder()

    async def api() -> None:
        if call == "pause":
            await pause_schedule(s.schedule_id, storage=store)
        else:
            await update_schedule(
                s.schedule_id, overlap_policy=OverlapPolicy.ALLOW_ALL, storage=store
            )

    saving, release = hold_first_save(store, monkeypatch)
    first, second = (
        (lambda: process_schedule(store, s.schedule_id, launch, now=T0), api)
        if last == "processor"
        else (api, lambda: process_schedule(store, s.schedule_id, launch, now=T0))
    )
    held = asyncio.create_task(first())
    await saving.wait()
    await second()
    release.set()
    await held
    after = await state(store, s.schedule_id)
    if call == "pause" and last == "processor":
        # The pause was saved before the slot's decision: the processor's conditional
        # save fails, it looks again, finds the schedule paused and starts nothing.
        assert (launch.ids, after.total_runs, after.running_run_ids) == ([], 0, [])
        assert await schedule_runs(store, s.schedule_id) == []
    else:
        assert launch.ids and (after.total_runs, after.running_run_ids) == (1, launch.ids[:1])
    if call == "pause":
        assert after.status is ScheduleStatus.PAUSED
    else:
        assert after.overlap_policy is OverlapPolicy.ALLOW_ALL


def _summary(schedule: Schedule) -> dict[str, Any]:
    return {
        k: getattr(schedule, k)
        for k in ("total_runs", "successful_runs", "skipped_runs", "running_run_ids")
    }
