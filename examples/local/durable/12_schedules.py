"""Schedules: start a workflow on an interval, a cron expression or a calendar.

Run from the repository root:

    python examples/local/durable/12_schedules.py

A schedule is a row in storage plus a durable timer due at its next slot. On the
local runtime the in-process timer service fires it (``LocalScheduler(storage).run()``
keeps that service going); each slot starts a run whose id is ``sched_<id[:8]>_<hex>``.
What this script shows, in about 10 seconds:

1. ``@scheduled_workflow`` declares a schedule on the function itself;
   ``activate_scheduled_workflows(storage)`` creates it (once), and
   ``trigger_schedule`` starts a run now without touching the next slot.
2. ``describe_schedule`` and the next fire times of a cron in Europe/Berlin across
   both daylight-saving changes, computed with ``calculate_next_run_time`` (no waiting).
3. ``backfill_schedule``: one run per daily slot of the past 30 days; doing it twice
   starts nothing new.
4. ``pause_schedule``, ``resume_schedule`` and ``delete_schedule``.
5. A schedule every 2 seconds firing 5 times (``end_at`` stops it), with its counters.
6. A slow workflow (2.5 s) on a 1-second schedule with the SKIP overlap policy: slots
   that come while a run is going are skipped and recorded as ``schedule.skipped``.

Schedules 5 and 6 are created first and fire in the background while 1-4 run; their
runs are listed at the end.
"""

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

from pyworkflow import (
    CalendarSpec,
    LocalScheduler,
    OverlapPolicy,
    ScheduleSpec,
    ScheduleStatus,
    SQLiteStorageBackend,
    activate_scheduled_workflows,
    backfill_schedule,
    create_schedule,
    delete_schedule,
    get_context,
    get_schedule,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    list_schedules,
    pause_schedule,
    resume_schedule,
    scheduled_workflow,
    step,
    trigger_schedule,
    workflow,
)
from pyworkflow.utils.schedule import (
    calculate_backfill_times,
    calculate_next_run_time,
    describe_schedule,
)

STARTED = time.monotonic()
T0 = STARTED  # set in main() to the first slot of schedules 5 and 6
beats: list[tuple[float, str]] = []  # (offset, run id) of each heartbeat run
rebuilds: list[tuple[float, float]] = []  # (start, end) offsets of each rebuild run


def offset() -> float:
    return time.monotonic() - T0


# ---------------------------------------------------------------- the workflows


@step
async def beat(service: str) -> str:
    beats.append((offset(), get_context().run_id))
    return f"{service} is up"


@workflow
async def heartbeat(service: str) -> str:
    return await beat(service)


@step
async def rebuild(seconds: float) -> str:
    began = offset()
    await asyncio.sleep(seconds)  # longer than the schedule's interval
    rebuilds.append((began, offset()))
    return "index rebuilt"


@workflow
async def rebuild_index(seconds: float) -> str:
    return await rebuild(seconds)


@step
async def summarize(table: str) -> int:
    return len(table)


@workflow
async def daily_rollup(table: str) -> int:
    return await summarize(table)


@workflow
async def ping() -> str:
    return "pong"


# Declared with its schedule; activate_scheduled_workflows() creates "auto_morning_report".
@scheduled_workflow(cron="0 7 * * MON-FRI", timezone="Europe/Berlin")
async def morning_report() -> str:
    return await summarize("orders")


# ---------------------------------------------------------------- helpers


async def wait_until(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("the schedule did not get there in time")
        await asyncio.sleep(0.05)


async def finished(storage, schedule_id: str) -> bool:
    """No slot left (end_at passed) and every run it started has been counted."""
    schedule = await get_schedule(schedule_id, storage=storage)
    return schedule.next_run_time is None and not schedule.running_run_ids


def counters(schedule) -> str:
    return (
        f"total_runs={schedule.total_runs} successful_runs={schedule.successful_runs} "
        f"failed_runs={schedule.failed_runs} skipped_runs={schedule.skipped_runs}"
    )


# ---------------------------------------------------------------- 1-4


async def declared_schedule(storage) -> None:
    created = await activate_scheduled_workflows(storage)
    again = await activate_scheduled_workflows(storage)
    print(f"[1] activate_scheduled_workflows -> {created}; a second time -> {again}")
    schedule = await get_schedule("auto_morning_report", storage=storage)
    berlin = schedule.next_run_time.astimezone(ZoneInfo("Europe/Berlin"))
    print(f"[1] {describe_schedule(schedule.spec)}, next run {berlin:%a %Y-%m-%d %H:%M %Z}")

    run_id = await trigger_schedule("auto_morning_report", storage=storage)
    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=10)
    after = await get_schedule("auto_morning_report", storage=storage)
    print(f"[1] trigger_schedule -> {run_id} returned {result}")
    print(
        f"[1] total_runs={after.total_runs}, last_run_id is that run: "
        f"{after.last_run_id == run_id}, next slot unchanged: "
        f"{after.next_run_time == schedule.next_run_time}"
    )


def show_fire_times(spec: ScheduleSpec, after: datetime, count: int) -> None:
    moment = after
    for _ in range(count):
        moment = calculate_next_run_time(spec, now=moment)
        utc = moment.astimezone(UTC)
        print(f"[2]   {moment:%a %Y-%m-%d %H:%M %z}  = {utc:%H:%M} UTC")


def time_math() -> None:
    nightly = ScheduleSpec(cron="30 2 * * *", timezone="Europe/Berlin")
    print(f"[2] {describe_schedule(nightly)}")
    print("[2] spring forward (02:30 does not exist on 29 March: it runs at 03:00):")
    show_fire_times(nightly, datetime(2026, 3, 27), 4)
    print("[2] fall back (02:30 happens twice on 25 October: it runs once):")
    show_fire_times(nightly, datetime(2026, 10, 23), 4)
    office = ScheduleSpec(
        calendar=[
            CalendarSpec(hour=9, minute=30, day_of_week=0),  # Mondays 09:30
            CalendarSpec(hour=17, day_of_week=4),  # Fridays 17:00
        ],
        timezone="Europe/Berlin",
    )
    print(f"[2] {describe_schedule(office)}")
    show_fire_times(office, datetime(2026, 1, 1), 3)


async def backfill(storage) -> None:
    spec = ScheduleSpec(cron="0 6 * * *", timezone="Europe/Berlin")
    await create_schedule("daily_rollup", spec, "sales", schedule_id="rollup", storage=storage)
    start, end = datetime(2026, 1, 1), datetime(2026, 1, 31)  # wall times in Berlin
    run_ids = await backfill_schedule("rollup", start, end, storage=storage)
    for run_id in run_ids:  # the runs go on in the background; wait for them
        await get_workflow_result(run_id, storage=storage, wait=True, timeout=10)
    runs = [await get_workflow_run(run_id, storage=storage) for run_id in run_ids]
    completed = sum(run.status.value == "completed" for run in runs)
    slots = calculate_backfill_times(spec, start, end)
    print(f"[3] January 1-30, daily at 06:00: {len(run_ids)} runs, {completed} completed")
    print(f"[3] first slot {slots[0]} -> {run_ids[0]}")
    print(f"[3] last slot  {slots[-1]} -> {run_ids[-1]}")
    again = await backfill_schedule("rollup", start, end, storage=storage)
    print(f"[3] backfilled again: the same {len(again)} run ids, nothing new: {again == run_ids}")
    kinds = [event.type.value for event in await get_workflow_events("rollup", storage=storage)]
    print(f"[3] in the schedule's own log: {kinds}")


async def pause_resume_delete(storage) -> None:
    await create_schedule("ping", ScheduleSpec(interval="1s"), schedule_id="ping", storage=storage)

    async def runs() -> int:
        return (await get_schedule("ping", storage=storage)).total_runs

    async def fired() -> bool:
        return await runs() > 0

    await wait_until(fired)
    paused = await pause_schedule("ping", storage=storage)
    before = await runs()
    await asyncio.sleep(2)
    print(f"[4] paused ({paused.status.value}) for 2s: no run meanwhile: {await runs() == before}")

    resumed = await resume_schedule("ping", storage=storage)
    began = time.monotonic()

    async def fired_again() -> bool:
        return await runs() > before

    await wait_until(fired_again)
    waited = time.monotonic() - began
    print(f"[4] resumed ({resumed.status.value}): fired again within {waited:.1f}s")

    await delete_schedule("ping", storage=storage)
    deleted = await get_schedule("ping", storage=storage)
    count = await runs()
    await asyncio.sleep(1.5)
    print(f"[4] deleted: status {deleted.status.value}, no run since: {await runs() == count}")
    active = await list_schedules(status=ScheduleStatus.ACTIVE, storage=storage)
    print(f"[4] active schedules now: {sorted(s.schedule_id for s in active)}")


# ---------------------------------------------------------------- 5 and 6


async def report_heartbeat(storage) -> None:
    await wait_until(lambda: finished(storage, "heartbeat"))
    for number, (at, run_id) in enumerate(beats, 1):
        print(f"[5] run {number} at +{at:.1f}s  {run_id}")
    print(f"[5] counters: {counters(await get_schedule('heartbeat', storage=storage))}")


async def report_rebuilds(storage) -> None:
    await wait_until(lambda: finished(storage, "rebuild"))
    for began, ended in rebuilds:
        print(f"[6] run from +{began:.1f}s to +{ended:.1f}s")
    schedule = await get_schedule("rebuild", storage=storage)
    events = await get_workflow_events("rebuild", storage=storage)
    skipped = [e for e in events if e.type.value == "schedule.skipped"]
    for event in skipped:
        slot = datetime.fromisoformat(event.data["scheduled_time"])
        at = (slot - first_slot).total_seconds()
        print(f"[6] slot +{at:.1f}s skipped: {event.data['reason']}")
    print(f"[6] counters: {counters(schedule)}")
    print(f"[6] {schedule.total_runs + schedule.skipped_runs} slots: every one a run or a skip")
    same = len(skipped) == schedule.skipped_runs
    print(f"[6] one schedule.skipped event per skipped slot: {same}")
    overlap = any(later[0] < earlier[1] for earlier, later in pairwise(rebuilds))
    print(f"[6] runs never overlapped: {not overlap}")


async def main() -> None:
    global T0, first_slot
    storage = SQLiteStorageBackend(str(Path(tempfile.mkdtemp()) / "schedules.db"))
    scheduler = LocalScheduler(storage)
    scheduler_task = asyncio.create_task(scheduler.run())

    # 5 and 6 start in 1 s (start_at) and stop 9 s later (end_at): an interval
    # schedule's first slot is its start, then one every interval.
    first_slot = datetime.now(UTC) + timedelta(seconds=1)
    T0 = time.monotonic() + 1
    end = first_slot + timedelta(seconds=9)
    every_2s = ScheduleSpec(interval="2s", start_at=first_slot, end_at=end)
    await create_schedule("heartbeat", every_2s, "api", schedule_id="heartbeat", storage=storage)
    every_1s = ScheduleSpec(interval="1s", start_at=first_slot, end_at=end)
    await create_schedule(
        "rebuild_index",
        every_1s,
        2.5,
        overlap_policy=OverlapPolicy.SKIP,
        schedule_id="rebuild",
        storage=storage,
    )
    print("[5] 'heartbeat' every 2s and [6] 'rebuild' every 1s (SKIP) created; they run below")

    await declared_schedule(storage)
    time_math()
    await backfill(storage)
    await pause_resume_delete(storage)
    await report_heartbeat(storage)
    await report_rebuilds(storage)

    scheduler.stop()
    await scheduler_task
    print(f"done in {time.monotonic() - STARTED:.1f}s")


first_slot = datetime.now(UTC)  # set in main()

if __name__ == "__main__":
    asyncio.run(main())
