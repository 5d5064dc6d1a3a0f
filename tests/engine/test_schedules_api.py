"""The schedule API (API.md §1.6, §8.11) on every backend: creation and its errors,
update, pause, resume, delete, trigger, list; a run's end counting at once even
around API calls; a scheduled chain of continue-as-new counting once."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyworkflow import (
    OverlapPolicy,
    RunStatus,
    ScheduleSpec,
    ScheduleStatus,
    backfill_schedule,
    continue_as_new,
    create_schedule,
    delete_schedule,
    get_schedule,
    get_workflow_result,
    list_schedules,
    pause_schedule,
    resume,
    resume_schedule,
    step,
    trigger_schedule,
    update_schedule,
    workflow,
)
from pyworkflow.runtime.local import timer_service
from pyworkflow.scheduler.schedules import arm, process_schedule
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import Schedule
from tests.support import eventually

YEARLY = ScheduleSpec(cron="0 0 1 1 *")
T0 = datetime(2030, 1, 1, tzinfo=UTC)


@step(name="sched_api_add")
async def add(a: int, b: int, c: int) -> int:
    return a + b + c


@workflow(name="sched_api_sum")
async def summed(a: int, b: int, c: int = 0) -> int:
    return await add(a, b, c)


@workflow(name="sched_api_chain")
async def chain(n: int) -> int:
    value = await add(n, 0, 0)
    if value < 2:
        continue_as_new(value + 1)
    return value


async def state(store: StorageBackend, sid: str) -> Schedule:
    schedule = await store.get_schedule(sid)
    assert schedule is not None
    return schedule


async def timer_at(store: StorageBackend, sid: str) -> datetime | None:
    timers = [t for t in await store.list_timers(sid) if t.kind == "schedule"]
    assert len(timers) <= 1
    return timers[0].fire_at if timers else None


def near(a: datetime | None, b: datetime, slack: float = 5.0) -> bool:
    return a is not None and abs((a - b).total_seconds()) < slack


async def test_create_stores_an_active_schedule_with_its_timer(store: StorageBackend) -> None:
    s = await create_schedule(
        "sched_api_sum",
        ScheduleSpec(cron="0 9 * * *"),
        1,
        2,
        overlap_policy=OverlapPolicy.BUFFER_ALL,
        storage=store,
        c=3,
    )
    assert s.schedule_id.startswith("sched_") and len(s.schedule_id) == 18
    stored = await get_schedule(s.schedule_id, storage=store)
    assert stored is not None and stored.status is ScheduleStatus.ACTIVE
    assert (stored.args, stored.kwargs) == ("[1, 2]", '{"c": 3}')
    assert stored.overlap_policy is OverlapPolicy.BUFFER_ALL
    assert stored.next_run_time is not None and stored.next_run_time > datetime.now(UTC)
    assert stored.next_run_time.astimezone(UTC).strftime("%H:%M") == "09:00"
    assert await timer_at(store, s.schedule_id) == stored.next_run_time
    assert (stored.total_runs, stored.running_run_ids, stored.last_run_id) == (0, [], None)
    # The arguments reach the run.
    run_id = await trigger_schedule(s.schedule_id, storage=store)
    result = await eventually(lambda: _result(store, run_id))
    assert result == [6]


async def _result(store: StorageBackend, run_id: str) -> list[Any] | None:
    run = await store.get_run(run_id)
    if run is None or run.status is not RunStatus.COMPLETED:
        return None
    return [await get_workflow_result(run_id, storage=store)]


async def test_interval_schedule_first_slot_is_now_and_custom_id(store: StorageBackend) -> None:
    before = datetime.now(UTC)
    s = await create_schedule(
        "sched_api_sum", ScheduleSpec(interval="5m"), 1, 1, schedule_id="mine", storage=store
    )
    assert s.schedule_id == "mine"
    assert s.next_run_time is not None and before <= s.next_run_time <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("not_registered_wf", ScheduleSpec(interval="5m"), "not found in registry"),
        ("sched_api_sum", ScheduleSpec(cron="61 * * * *"), "Invalid cron expression"),
        ("sched_api_sum", ScheduleSpec(cron="every day"), "Invalid cron expression"),
        ("sched_api_sum", ScheduleSpec(), "cron, interval"),
        ("sched_api_sum", ScheduleSpec(interval="1.5h"), "interval"),
        ("sched_api_sum", ScheduleSpec(cron="0 9 * * *", timezone="Mars/Base"), "Mars/Base"),
    ],
)
async def test_bad_input_raises_and_stores_nothing(
    store: StorageBackend, name: str, spec: ScheduleSpec, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await create_schedule(name, spec, storage=store)
    assert await list_schedules(storage=store) == []
    assert [t for t in await store.list_timers() if t.kind == "schedule"] == []


@pytest.mark.parametrize(
    "call",
    [
        lambda: create_schedule("sched_api_sum", YEARLY),
        lambda: get_schedule("x"),
        lambda: list_schedules(),
        lambda: update_schedule("x", spec=YEARLY),
        lambda: pause_schedule("x"),
        lambda: resume_schedule("x"),
        lambda: delete_schedule("x"),
        lambda: trigger_schedule("x"),
        lambda: backfill_schedule("x", T0, T0 + timedelta(days=1)),
    ],
)
async def test_no_storage_is_a_clear_error(call: Any) -> None:
    with pytest.raises(ValueError, match="Storage backend required"):
        await call()


async def test_update_recomputes_next_slot_and_changes_policy(store: StorageBackend) -> None:
    s = await create_schedule("sched_api_sum", ScheduleSpec(interval="5m"), 1, 1, storage=store)
    updated = await update_schedule(
        s.schedule_id, spec=YEARLY, overlap_policy=OverlapPolicy.ALLOW_ALL, storage=store
    )
    jan1 = datetime(datetime.now(UTC).year + 1, 1, 1, tzinfo=UTC)
    stored = await state(store, s.schedule_id)
    assert updated.next_run_time == stored.next_run_time == jan1
    assert stored.spec.cron == "0 0 1 1 *" and stored.overlap_policy is OverlapPolicy.ALLOW_ALL
    assert stored.updated_at is not None and stored.updated_at >= s.created_at
    assert await timer_at(store, s.schedule_id) == jan1
    # Policy only: the slot stays.
    await update_schedule(s.schedule_id, overlap_policy=OverlapPolicy.SKIP, storage=store)
    assert (await state(store, s.schedule_id)).next_run_time == jan1
    with pytest.raises(ValueError, match="Invalid cron expression"):
        await update_schedule(s.schedule_id, spec=ScheduleSpec(cron="nope"), storage=store)
    assert (await state(store, s.schedule_id)).spec.cron == "0 0 1 1 *"
    with pytest.raises(ValueError, match="not found"):
        await update_schedule("missing", spec=YEARLY, storage=store)


async def test_pause_stops_firing_and_resume_fires_from_the_next_slot(
    store: StorageBackend,
) -> None:
    s = await create_schedule("sched_api_sum", ScheduleSpec(interval="1m"), 1, 1, storage=store)
    paused = await pause_schedule(s.schedule_id, storage=store)
    assert paused.status is ScheduleStatus.PAUSED
    assert await timer_at(store, s.schedule_id) is None
    assert await store.get_due_schedules(datetime.now(UTC) + timedelta(hours=1)) == []
    assert await process_schedule(store, s.schedule_id, _never, now=T0) == []
    assert (await state(store, s.schedule_id)).total_runs == 0
    before = datetime.now(UTC)
    resumed = await resume_schedule(s.schedule_id, storage=store)
    assert resumed.status is ScheduleStatus.ACTIVE
    assert near(resumed.next_run_time, before)  # an interval's first slot is now
    assert await timer_at(store, s.schedule_id) == resumed.next_run_time
    await update_schedule(s.schedule_id, spec=ScheduleSpec(cron="*/10 * * * *"), storage=store)
    await pause_schedule(s.schedule_id, storage=store)
    resumed = await resume_schedule(s.schedule_id, storage=store)
    assert resumed.next_run_time is not None and resumed.next_run_time > datetime.now(UTC)
    assert resumed.next_run_time.minute % 10 == 0


async def _never(run_id: str) -> None:
    raise AssertionError(f"nothing should start, got {run_id}")


async def test_delete_never_fires_again(store: StorageBackend) -> None:
    s = await create_schedule("sched_api_sum", ScheduleSpec(interval="1m"), 1, 1, storage=store)
    assert await delete_schedule(s.schedule_id, storage=store) is None
    stored = await state(store, s.schedule_id)
    assert stored.status is ScheduleStatus.DELETED
    assert await timer_at(store, s.schedule_id) is None
    assert await process_schedule(store, s.schedule_id, _never, now=T0) == []
    assert await store.get_due_schedules(T0) == []
    with pytest.raises(ValueError):
        await delete_schedule("missing", storage=store)


async def test_trigger_counts_and_keeps_the_next_slot(store: StorageBackend) -> None:
    s = await create_schedule("sched_api_sum", YEARLY, 2, 3, storage=store)
    run_id = await trigger_schedule(s.schedule_id, storage=store)
    after = await state(store, s.schedule_id)
    assert (after.total_runs, after.last_run_id) == (1, run_id)
    assert after.next_run_time == s.next_run_time
    assert after.last_run_at is not None and near(after.last_run_at, datetime.now(UTC))
    assert await eventually(lambda: _result(store, run_id)) == [5]
    trig = await store.get_events(s.schedule_id, ["schedule.triggered"])
    assert [e.data["workflow_run_id"] for e in trig] == [run_id]
    # The run's end has the schedule count it (the timer service does the looking).
    timer_service(store)
    done = await eventually(lambda: _counted(store, s.schedule_id, 1), timeout=5)
    assert (done.running_run_ids, done.failed_runs) == ([], 0)
    assert await timer_at(store, s.schedule_id) == s.next_run_time
    with pytest.raises(ValueError, match="not found"):
        await trigger_schedule("missing", storage=store)


async def _counted(store: StorageBackend, sid: str, n: int) -> Schedule | None:
    schedule = await state(store, sid)
    return schedule if schedule.successful_runs == n else None


async def test_list_filters_limit_and_offset(store: StorageBackend) -> None:
    ids = []
    for n in range(5):
        s = await create_schedule("sched_api_sum", YEARLY, n, 0, storage=store)
        ids.append(s.schedule_id)
    await create_schedule("sched_api_chain", YEARLY, 0, storage=store)
    await pause_schedule(ids[0], storage=store)
    assert len(await list_schedules(storage=store)) == 6
    assert len(await list_schedules("sched_api_sum", storage=store)) == 5
    paused = await list_schedules(status=ScheduleStatus.PAUSED, storage=store)
    assert [p.schedule_id for p in paused] == [ids[0]]
    assert len(await list_schedules(limit=4, storage=store)) == 4
    assert len(await list_schedules("sched_api_sum", limit=10, offset=2, storage=store)) == 3


@pytest.mark.parametrize("call", ["pause", "update", "resume"])
async def test_run_that_ended_just_before_an_api_call_is_counted_promptly(
    store: StorageBackend, call: str
) -> None:
    """A run's end re-arms its schedule's timer to "now"; an API call right after must
    not push that back (to a minute later, or for a pause, forever)."""
    s = await create_schedule("sched_api_sum", YEARLY, 1, 1, storage=store)
    s.next_run_time = T0
    await store.update_schedule(s)
    await arm(store, s, T0)
    (run_id,) = await process_schedule(store, s.schedule_id, _pending, now=T0)
    if call == "resume":
        await pause_schedule(s.schedule_id, storage=store)
    with contextlib.suppress(Exception):
        await resume(run_id, storage=store)
    assert near(await timer_at(store, s.schedule_id), datetime.now(UTC))  # "look now"
    if call == "pause":
        await pause_schedule(s.schedule_id, storage=store)
    elif call == "update":
        await update_schedule(s.schedule_id, overlap_policy=OverlapPolicy.BUFFER_ONE, storage=store)
    else:
        await resume_schedule(s.schedule_id, storage=store)
    timer_service(store)
    done = await eventually(lambda: _counted(store, s.schedule_id, 1), timeout=2)
    assert done.running_run_ids == []


async def _pending(run_id: str) -> None:
    """Leave the run PENDING: the test resumes it."""


async def test_continued_chain_counts_as_one_run(store: StorageBackend) -> None:
    s = await create_schedule(
        "sched_api_chain", YEARLY, 0, overlap_policy=OverlapPolicy.SKIP, storage=store
    )
    root = await trigger_schedule(s.schedule_id, storage=store)
    chain_runs = await eventually(lambda: _finished_chain(store, root), timeout=10)
    assert [r.status for r in chain_runs] == [
        RunStatus.CONTINUED_AS_NEW,
        RunStatus.CONTINUED_AS_NEW,
        RunStatus.COMPLETED,
    ]
    timer_service(store)
    done = await eventually(lambda: _counted(store, s.schedule_id, 1), timeout=5)
    assert (done.total_runs, done.failed_runs, done.running_run_ids) == (1, 0, [])
    assert len(await store.get_events(s.schedule_id, ["schedule.triggered"])) == 1


async def _finished_chain(store: StorageBackend, root: str) -> list[Any] | None:
    chain_runs = await store.get_workflow_chain(root)
    if chain_runs and chain_runs[-1].status is RunStatus.COMPLETED:
        return chain_runs
    return None


async def test_backfill_daily_cron_over_30_days(store: StorageBackend) -> None:
    s = await create_schedule("sched_api_sum", ScheduleSpec(cron="0 3 * * *"), 1, 2, storage=store)
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC)
    run_ids = await backfill_schedule(s.schedule_id, start, end, storage=store)
    assert len(run_ids) == len(set(run_ids)) == 30
    for run_id in run_ids:
        assert await eventually(lambda rid=run_id: _result(store, rid), timeout=10) == [3]
    again = await backfill_schedule(s.schedule_id, start, end, storage=store)
    assert again == run_ids
    runs, _ = await store.list_runs(limit=1000)
    assert len(runs) == 30
    began = await store.get_events(s.schedule_id, ["schedule.backfill_started"])
    ended = await store.get_events(s.schedule_id, ["schedule.backfill_completed"])
    assert began[0].data["expected_runs"] == 30
    assert datetime.fromisoformat(began[0].data["start_time"]) == start
    assert ended[0].data["runs_created"] == 30 and ended[0].data["run_ids"] == run_ids
    # Backfilled runs leave the schedule's own counters alone.
    after = await state(store, s.schedule_id)
    assert (after.total_runs, after.running_run_ids) == (0, [])
    count = len(await store.get_events(s.schedule_id))
    assert await backfill_schedule(s.schedule_id, end, end, storage=store) == []
    assert await backfill_schedule(s.schedule_id, end, start, storage=store) == []
    assert len(await store.get_events(s.schedule_id)) == count
    with pytest.raises(ValueError, match="not found"):
        await backfill_schedule("missing", start, end, storage=store)
