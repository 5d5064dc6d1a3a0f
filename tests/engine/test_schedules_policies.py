"""Overlap policies and counters, driven slot by slot with an injected clock on every
backend: ``process_schedule(storage, id, launch, now=...)`` with a launcher that only
records run ids (the runs stay PENDING, i.e. going, until the test resumes them).

Slots are in 2030 so that no real timer ever comes due for them.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from pyworkflow import (
    OverlapPolicy,
    RunStatus,
    ScheduleSpec,
    create_schedule,
    get_context,
    resume,
    sleep,
    step,
    workflow,
)
from pyworkflow.core.exceptions import FatalError
from pyworkflow.runtime.local import links_for
from pyworkflow.scheduler.schedules import arm, process_schedule
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import Schedule
from tests.support import eventually

T0 = datetime(2030, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
FAIL: set[str] = set()


@step(name="sched_pol_work")
async def work(run_id: str) -> str:
    if run_id in FAIL:
        raise FatalError("asked to fail")
    return "ok"


@workflow(name="sched_pol_job")
async def job() -> str:
    return await work(get_context().run_id)


@workflow(name="sched_pol_sleeper")
async def sleeper() -> str:
    await sleep("1h")
    return "woke"


class Recorder:
    """A launcher that starts nothing: the test decides when each run goes."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, run_id: str) -> None:
        self.ids.append(run_id)


async def make(
    store: StorageBackend, policy: OverlapPolicy, name: str = "sched_pol_job"
) -> Schedule:
    schedule = await create_schedule(
        name, ScheduleSpec(interval="1m"), overlap_policy=policy, storage=store
    )
    schedule.next_run_time = T0
    await store.update_schedule(schedule)
    await arm(store, schedule, T0)  # its timer too: never due in real time
    return schedule


async def tick(store: StorageBackend, sid: str, launch: Any, at: datetime) -> list[str]:
    return await process_schedule(store, sid, launch, now=at)


async def finish(store: StorageBackend, run_id: str, fail: bool = False) -> RunStatus:
    if fail:
        FAIL.add(run_id)
    with contextlib.suppress(Exception):
        await resume(run_id, storage=store)
    run = await store.get_run(run_id)
    assert run is not None
    return run.status


async def state(store: StorageBackend, sid: str) -> Schedule:
    schedule = await store.get_schedule(sid)
    assert schedule is not None
    return schedule


async def events(store: StorageBackend, sid: str, kind: str) -> list[Any]:
    return await store.get_events(sid, [kind])


def instants(evts: list[Any], key: str = "scheduled_time") -> list[datetime]:
    return [datetime.fromisoformat(e.data[key]).astimezone(UTC) for e in evts]


async def test_first_slot_starts_a_run_and_counts_it(store: StorageBackend) -> None:
    s = await make(store, OverlapPolicy.SKIP)
    launch = Recorder()
    (run_id,) = await tick(store, s.schedule_id, launch, T0 + timedelta(seconds=3))
    assert launch.ids == [run_id] and run_id.startswith(f"sched_{s.schedule_id[:8]}_")
    run = await store.get_run(run_id)
    assert run is not None and run.idempotency_key == f"schedule:{s.schedule_id}:{run.run_id}"
    after = await state(store, s.schedule_id)
    assert (after.total_runs, after.running_run_ids, after.last_run_id) == (1, [run_id], run_id)
    assert after.last_run_at == T0 + timedelta(seconds=3)
    assert after.next_run_time == T0 + MIN
    (trig,) = await events(store, s.schedule_id, "schedule.triggered")
    assert trig.data["workflow_run_id"] == run_id
    assert instants([trig]) == [T0]
    assert instants([trig], "actual_time") == [T0 + timedelta(seconds=3)]
    # Not due yet: nothing happens.
    assert await tick(store, s.schedule_id, launch, T0 + timedelta(seconds=30)) == []
    assert await finish(store, run_id) is RunStatus.COMPLETED
    await tick(store, s.schedule_id, launch, T0 + timedelta(seconds=40))
    after = await state(store, s.schedule_id)
    assert (after.successful_runs, after.failed_runs, after.running_run_ids) == (1, 0, [])


async def test_skip_skips_overlaps_and_fires_again_once_the_run_ended(
    store: StorageBackend,
) -> None:
    s = await make(store, OverlapPolicy.SKIP)
    launch = Recorder()
    (first,) = await tick(store, s.schedule_id, launch, T0)
    assert await tick(store, s.schedule_id, launch, T0 + MIN) == []
    assert await tick(store, s.schedule_id, launch, T0 + 2 * MIN) == []
    mid = await state(store, s.schedule_id)
    assert (mid.skipped_runs, mid.total_runs, mid.running_run_ids) == (2, 1, [first])
    skipped = await events(store, s.schedule_id, "schedule.skipped")
    assert instants(skipped) == [T0 + MIN, T0 + 2 * MIN]
    assert {e.data["overlap_policy"] for e in skipped} == {"skip"}
    assert all(e.data["schedule_id"] == s.schedule_id and e.data["reason"] for e in skipped)
    assert await finish(store, first, fail=True) is RunStatus.FAILED
    (second,) = await tick(store, s.schedule_id, launch, T0 + 3 * MIN)
    after = await state(store, s.schedule_id)
    assert (after.failed_runs, after.successful_runs, after.skipped_runs) == (1, 0, 2)
    assert after.running_run_ids == [second] and after.total_runs == 2
    assert len(set(launch.ids)) == 2


async def test_buffer_one_keeps_one_start_and_skips_the_rest(store: StorageBackend) -> None:
    s = await make(store, OverlapPolicy.BUFFER_ONE)
    launch = Recorder()
    (first,) = await tick(store, s.schedule_id, launch, T0)
    assert await tick(store, s.schedule_id, launch, T0 + MIN) == []
    assert await tick(store, s.schedule_id, launch, T0 + 2 * MIN) == []
    mid = await state(store, s.schedule_id)
    assert (mid.buffered_count, mid.skipped_runs, mid.total_runs) == (1, 1, 1)
    assert instants(await events(store, s.schedule_id, "schedule.skipped")) == [T0 + 2 * MIN]
    await finish(store, first)
    ended = T0 + 2 * MIN + timedelta(seconds=10)
    (buffered,) = await tick(store, s.schedule_id, launch, ended)  # at once, not at a slot
    after = await state(store, s.schedule_id)
    assert (after.buffered_count, after.running_run_ids, after.successful_runs) == (
        0,
        [buffered],
        1,
    )
    trig = await events(store, s.schedule_id, "schedule.triggered")
    assert [e.data["workflow_run_id"] for e in trig] == [first, buffered]
    # The next overlap is buffered again.
    assert await tick(store, s.schedule_id, launch, T0 + 3 * MIN) == []
    assert (await state(store, s.schedule_id)).buffered_count == 1


async def test_buffer_all_runs_every_overlap_one_after_another(store: StorageBackend) -> None:
    s = await make(store, OverlapPolicy.BUFFER_ALL)
    launch = Recorder()
    (current,) = await tick(store, s.schedule_id, launch, T0)
    for n in (1, 2, 3):
        assert await tick(store, s.schedule_id, launch, T0 + n * MIN) == []
    mid = await state(store, s.schedule_id)
    assert (mid.buffered_count, mid.skipped_runs, mid.total_runs) == (3, 0, 1)
    order = [current]
    moment = T0 + 3 * MIN
    for left in (2, 1, 0):
        await finish(store, current)
        moment += timedelta(seconds=5)
        (current,) = await tick(store, s.schedule_id, launch, moment)
        now = await state(store, s.schedule_id)
        assert now.buffered_count == left and now.running_run_ids == [current]
        order.append(current)
    await finish(store, current)
    assert await tick(store, s.schedule_id, launch, moment + timedelta(seconds=5)) == []
    after = await state(store, s.schedule_id)
    assert (after.total_runs, after.successful_runs, after.running_run_ids) == (4, 4, [])
    assert len(set(order)) == 4
    assert await events(store, s.schedule_id, "schedule.skipped") == []


async def test_cancel_other_cancels_the_running_run(store: StorageBackend) -> None:
    s = await make(store, OverlapPolicy.CANCEL_OTHER, name="sched_pol_sleeper")
    links = links_for(store)

    async def launch(run_id: str) -> None:
        await links.launch(run_id, True)  # inline: the run suspends on its sleep

    (first,) = await tick(store, s.schedule_id, launch, T0)
    assert (await store.get_run(first)).status is RunStatus.SUSPENDED  # type: ignore[union-attr]
    (second,) = await tick(store, s.schedule_id, launch, T0 + MIN)
    assert second != first
    cancelled = await eventually(lambda: _status_is(store, first, RunStatus.CANCELLED))
    assert cancelled
    assert (await store.get_run(second)).status is RunStatus.SUSPENDED  # type: ignore[union-attr]
    await tick(store, s.schedule_id, launch, T0 + MIN + timedelta(seconds=1))
    after = await state(store, s.schedule_id)
    assert after.running_run_ids == [second] and after.total_runs == 2
    # A cancelled run is neither a success nor a failure.
    assert (after.successful_runs, after.failed_runs, after.skipped_runs) == (0, 0, 0)


async def _status_is(store: StorageBackend, run_id: str, status: RunStatus) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status is status


async def test_cancel_other_with_a_pending_run(store: StorageBackend) -> None:
    s = await make(store, OverlapPolicy.CANCEL_OTHER)
    launch = Recorder()
    (first,) = await tick(store, s.schedule_id, launch, T0)
    (second,) = await tick(store, s.schedule_id, launch, T0 + MIN)
    assert launch.ids.count(first) == 2  # woken to see the cancellation
    assert await finish(store, first) is RunStatus.CANCELLED
    assert await finish(store, second) is RunStatus.COMPLETED
    await tick(store, s.schedule_id, launch, T0 + MIN + timedelta(seconds=1))
    after = await state(store, s.schedule_id)
    assert (after.successful_runs, after.failed_runs, after.running_run_ids) == (1, 0, [])


async def test_allow_all_overlaps_and_counts_each_outcome(store: StorageBackend) -> None:
    s = await make(store, OverlapPolicy.ALLOW_ALL)
    launch = Recorder()
    runs = [(await tick(store, s.schedule_id, launch, T0 + n * MIN))[0] for n in range(3)]
    mid = await state(store, s.schedule_id)
    assert mid.running_run_ids == runs and mid.total_runs == 3 and len(set(runs)) == 3
    assert await finish(store, runs[0]) is RunStatus.COMPLETED
    assert await finish(store, runs[1], fail=True) is RunStatus.FAILED
    await tick(store, s.schedule_id, launch, T0 + 2 * MIN + timedelta(seconds=1))
    mid = await state(store, s.schedule_id)
    assert (mid.successful_runs, mid.failed_runs, mid.running_run_ids) == (1, 1, [runs[2]])
    await finish(store, runs[2])
    await tick(store, s.schedule_id, launch, T0 + 2 * MIN + timedelta(seconds=2))
    after = await state(store, s.schedule_id)
    assert (after.successful_runs, after.failed_runs, after.running_run_ids) == (2, 1, [])


async def test_missed_slots_fire_once_for_the_latest(store: StorageBackend) -> None:
    s = await make(store, OverlapPolicy.SKIP)
    launch = Recorder()
    late = T0 + 5 * MIN + timedelta(seconds=30)
    (run_id,) = await tick(store, s.schedule_id, launch, late)
    after = await state(store, s.schedule_id)
    assert (after.total_runs, after.skipped_runs) == (1, 5)
    assert after.next_run_time == T0 + 6 * MIN
    (trig,) = await events(store, s.schedule_id, "schedule.triggered")
    assert instants([trig]) == [T0 + 5 * MIN] and trig.data["workflow_run_id"] == run_id
    skipped = await events(store, s.schedule_id, "schedule.skipped")
    assert instants(skipped) == [T0 + n * MIN for n in range(5)]
    assert all("missed" in e.data["reason"] for e in skipped)


async def test_missed_slots_while_a_run_goes_are_all_skipped(store: StorageBackend) -> None:
    s = await make(store, OverlapPolicy.SKIP)
    launch = Recorder()
    await tick(store, s.schedule_id, launch, T0)
    assert await tick(store, s.schedule_id, launch, T0 + 3 * MIN + timedelta(seconds=1)) == []
    after = await state(store, s.schedule_id)
    assert (after.total_runs, after.skipped_runs) == (1, 3)
    assert instants(await events(store, s.schedule_id, "schedule.skipped")) == [
        T0 + MIN,
        T0 + 2 * MIN,
        T0 + 3 * MIN,
    ]


async def test_paused_schedule_counts_ending_runs_but_starts_nothing(
    store: StorageBackend,
) -> None:
    from pyworkflow import pause_schedule

    s = await make(store, OverlapPolicy.BUFFER_ONE)
    launch = Recorder()
    (first,) = await tick(store, s.schedule_id, launch, T0)
    await tick(store, s.schedule_id, launch, T0 + MIN)  # buffered
    await pause_schedule(s.schedule_id, storage=store)
    await finish(store, first)
    assert await tick(store, s.schedule_id, launch, T0 + 5 * MIN) == []
    after = await state(store, s.schedule_id)
    assert (after.successful_runs, after.running_run_ids, after.total_runs) == (1, [], 1)
    assert launch.ids == [first]


async def test_end_at_stops_firing_and_drops_the_timer(store: StorageBackend) -> None:
    spec = ScheduleSpec(interval="1m", start_at=T0, end_at=T0 + 2 * MIN + timedelta(seconds=30))
    s = await create_schedule(
        "sched_pol_job", spec, overlap_policy=OverlapPolicy.ALLOW_ALL, storage=store
    )
    assert s.next_run_time == T0  # start_at in the future is the first slot
    launch = Recorder()
    for n in range(3):
        assert len(await tick(store, s.schedule_id, launch, T0 + n * MIN)) == 1
    after = await state(store, s.schedule_id)
    assert after.next_run_time is None and after.total_runs == 3
    for run_id in launch.ids:
        await finish(store, run_id)
    assert await tick(store, s.schedule_id, launch, T0 + 10 * MIN) == []
    after = await state(store, s.schedule_id)
    assert (after.successful_runs, after.running_run_ids) == (3, [])
    assert [t for t in await store.list_timers(s.schedule_id) if t.kind == "schedule"] == []
