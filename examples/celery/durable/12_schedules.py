"""Schedules on Celery: Beat fires them, the workers run what they start.

The twin of ``examples/local/durable/12_schedules.py`` (which also shows cron and
calendar times across daylight-saving changes). With Redis, the workers and Beat of
../README.md running, run from the repository root:

    python examples/celery/durable/12_schedules.py

A schedule is a row in the shared storage plus a durable timer due at its next slot.
This script only creates schedules and reads the storage; nothing fires in it. Every
second Beat sends ``pyworkflow.tick``: the tick that sees a schedule's timer coming
due claims it (atomically: with two Beat processes a slot still fires once) and
sends ``pyworkflow.execute_scheduled_workflow`` to the ``pyworkflow.schedules``
queue, timed for the slot. That task applies the overlap policy, creates the run
and sends it to the workflow workers; its steps run on the step workers. When a run
ends, its schedule is looked at again at once (to count it, or to stop skipping).
If no Beat runs for a while, the slots overdue by more than
``PYWORKFLOW_SCHEDULE_GRACE_SECONDS`` (5 s) when it is back are skipped as missed
(only the latest fires, when no slot is within that grace); the others fire late.

What it shows, in about 12 seconds:

1. ``@scheduled_workflow`` declares a schedule on the function. The workers
   import it, and their first tick creates it in the shared storage
   (``auto_weekday_digest``, once); ``activate_scheduled_workflows(storage)`` does
   the same from an application. ``trigger_schedule`` starts a run now (sent to the
   workers: this script calls ``configure(default_runtime="celery")``) without
   moving the next slot.
2. ``backfill_schedule``: one run per daily slot of 30 days, run by the workers;
   backfilling the same days again starts nothing new.
3. ``pause_schedule``, ``resume_schedule`` and ``delete_schedule`` on a schedule
   firing every second.
4. A schedule every 2 seconds firing 5 times (``start_at``/``end_at``): how long
   after its slot each run started, from the event logs.
5. A 2.5 s step on a step worker, scheduled every second with ``OverlapPolicy.SKIP``:
   slots that come while a run is going are skipped (``schedule.skipped``).

Schedules 4 and 5 are created first and fire while 1-3 run. Schedule ids end in a
random suffix, so the script can run again against the same storage.
"""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from pyworkflow import (
    OverlapPolicy,
    ScheduleSpec,
    activate_scheduled_workflows,
    backfill_schedule,
    configure,
    create_schedule,
    delete_schedule,
    get_schedule,
    get_storage,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    pause_schedule,
    resume_schedule,
    scheduled_workflow,
    step,
    trigger_schedule,
    workflow,
)
from pyworkflow.storage.config import config_to_storage
from pyworkflow.utils.schedule import describe_schedule

SUFFIX = uuid.uuid4().hex[:6]


# ---------------------------------------------------------------- the workflows


@step
async def check_service(service: str) -> str:
    return f"{service} is up"


@workflow
async def uptime_check(service: str) -> str:
    return await check_service(service)


@step
async def reindex(seconds: float) -> str:
    await asyncio.sleep(seconds)  # longer than the schedule's interval
    return "index rebuilt"


@workflow
async def reindex_search(seconds: float) -> str:
    return await reindex(seconds)


@step
async def roll_up_sales(table: str) -> int:
    return len(table)


@workflow
async def sales_rollup(table: str) -> int:
    return await roll_up_sales(table)


@workflow
async def warm_cache() -> str:
    return "warm"


# Declared with its schedule: the workers' tick (or activate_scheduled_workflows())
# creates "auto_weekday_digest".
@scheduled_workflow(cron="0 7 * * MON-FRI", timezone="Europe/Berlin")
async def weekday_digest() -> int:
    return await roll_up_sales("orders")


# ---------------------------------------------------------------- helpers


async def wait_until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("the schedule did not get there: are workers and Beat running?")
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


async def schedule_events(storage, schedule_id: str, kind: str) -> list[dict]:
    """A schedule's own log: ``schedule.triggered`` / ``schedule.skipped`` payloads."""
    events = await get_workflow_events(schedule_id, storage=storage)
    return [event.data for event in events if event.type.value == kind]


async def run_window(storage, run_id: str) -> tuple[datetime, datetime]:
    """When a run started on a workflow worker, and when it ended."""
    events = await get_workflow_events(run_id, storage=storage)
    started = next(e.timestamp for e in events if e.type.value == "workflow.started")
    return started, events[-1].timestamp


# ---------------------------------------------------------------- 1-3


async def declared_schedule(storage) -> None:
    created = await activate_scheduled_workflows(storage)
    schedule = await get_schedule("auto_weekday_digest", storage=storage)
    print(f"[1] activate_scheduled_workflows created {created or 'nothing new'}")
    print(f"[1] auto_weekday_digest: {schedule.status.value}, {describe_schedule(schedule.spec)}")

    before = schedule.total_runs
    run_id = await trigger_schedule("auto_weekday_digest", storage=storage)
    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=20)
    after = await get_schedule("auto_weekday_digest", storage=storage)
    print(f"[1] trigger_schedule -> {run_id}, run by the workers: {result}")
    print(
        f"[1] total_runs +{after.total_runs - before}, last_run_id is that run: "
        f"{after.last_run_id == run_id}, next slot unchanged: "
        f"{after.next_run_time == schedule.next_run_time}"
    )


async def backfill(storage) -> None:
    schedule_id = f"rollup-{SUFFIX}"
    spec = ScheduleSpec(cron="0 6 * * *", timezone="Europe/Berlin")
    await create_schedule("sales_rollup", spec, "sales", schedule_id=schedule_id, storage=storage)
    start, end = datetime(2026, 1, 1), datetime(2026, 1, 31)  # wall times in Berlin
    began = time.monotonic()
    run_ids = await backfill_schedule(schedule_id, start, end, storage=storage)
    for run_id in run_ids:
        await get_workflow_result(run_id, storage=storage, wait=True, timeout=30)
    took = time.monotonic() - began
    runs = [await get_workflow_run(run_id, storage=storage) for run_id in run_ids]
    completed = sum(run.status.value == "completed" for run in runs)
    print(f"[2] January 1-30, daily at 06:00: {len(run_ids)} runs, {completed} completed")
    print(f"[2] the workers ran them in {took:.1f}s")
    again = await backfill_schedule(schedule_id, start, end, storage=storage)
    print(f"[2] backfilled again: the same {len(again)} run ids, nothing new: {again == run_ids}")
    kinds = [e.type.value for e in await get_workflow_events(schedule_id, storage=storage)]
    print(f"[2] in the schedule's own log: {kinds}")


async def pause_resume_delete(storage) -> None:
    schedule_id = f"cache-{SUFFIX}"
    spec = ScheduleSpec(interval="1s")
    await create_schedule("warm_cache", spec, schedule_id=schedule_id, storage=storage)

    async def runs() -> int:
        return (await get_schedule(schedule_id, storage=storage)).total_runs

    async def fired() -> bool:
        return await runs() > 0

    await wait_until(fired)
    paused = await pause_schedule(schedule_id, storage=storage)
    before = await runs()
    await asyncio.sleep(2)
    print(f"[3] paused ({paused.status.value}) for 2s: no run meanwhile: {await runs() == before}")

    resumed = await resume_schedule(schedule_id, storage=storage)
    began = time.monotonic()

    async def fired_again() -> bool:
        return await runs() > before

    await wait_until(fired_again)
    waited = time.monotonic() - began
    print(f"[3] resumed ({resumed.status.value}): fired again within {waited:.1f}s")

    await delete_schedule(schedule_id, storage=storage)
    deleted = await get_schedule(schedule_id, storage=storage)
    count = await runs()
    await asyncio.sleep(1.5)
    print(f"[3] deleted: status {deleted.status.value}, no run since: {await runs() == count}")


# ---------------------------------------------------------------- 4 and 5


async def report_uptime(storage, schedule_id: str) -> None:
    await wait_until(lambda: finished(storage, schedule_id))
    fired = await schedule_events(storage, schedule_id, "schedule.triggered")
    late = []
    for number, event in enumerate(fired, 1):
        slot = datetime.fromisoformat(event["scheduled_time"])
        started, _ = await run_window(storage, event["workflow_run_id"])
        late.append((started - slot).total_seconds() * 1000)
        at = slot.time().isoformat(timespec="milliseconds")
        print(f"[4] run {number}: slot {at} UTC, {event['workflow_run_id']}")
    print(f"[4] each run started {', '.join(f'{ms:.0f}' for ms in late)} ms after its slot")
    print(f"[4] counters: {counters(await get_schedule(schedule_id, storage=storage))}")


async def report_reindex(storage, schedule_id: str, first_slot: datetime) -> None:
    await wait_until(lambda: finished(storage, schedule_id))
    schedule = await get_schedule(schedule_id, storage=storage)
    fired = await schedule_events(storage, schedule_id, "schedule.triggered")
    windows = [await run_window(storage, event["workflow_run_id"]) for event in fired]
    for began, ended in windows:
        print(
            f"[5] run from +{(began - first_slot).total_seconds():.1f}s "
            f"to +{(ended - first_slot).total_seconds():.1f}s"
        )
    skipped = await schedule_events(storage, schedule_id, "schedule.skipped")
    for event in skipped:
        at = (datetime.fromisoformat(event["scheduled_time"]) - first_slot).total_seconds()
        print(f"[5] slot +{at:.1f}s skipped: {event['reason']}")
    print(f"[5] counters: {counters(schedule)}")
    print(f"[5] {schedule.total_runs + schedule.skipped_runs} slots: every one a run or a skip")
    print(
        f"[5] one schedule.skipped event per skipped slot: {len(skipped) == schedule.skipped_runs}"
    )
    overlap = any(later[0] < earlier[1] for earlier, later in pairwise(windows))
    print(f"[5] runs never overlapped: {not overlap}")


async def main() -> None:
    # The storage the workers use (PYWORKFLOW_STORAGE_* or pyworkflow.config.yaml);
    # trigger_schedule and backfill_schedule send their runs to the Celery workers.
    storage = get_storage() or config_to_storage({})
    configure(default_runtime="celery", storage=storage)
    started = time.monotonic()

    # 4 and 5 start in 1 s (start_at) and stop 9 s later (end_at): an interval
    # schedule's first slot is its start, then one every interval.
    first_slot = datetime.now(UTC) + timedelta(seconds=1)
    end = first_slot + timedelta(seconds=9)
    uptime_id, reindex_id = f"uptime-{SUFFIX}", f"reindex-{SUFFIX}"
    every_2s = ScheduleSpec(interval="2s", start_at=first_slot, end_at=end)
    await create_schedule("uptime_check", every_2s, "api", schedule_id=uptime_id, storage=storage)
    every_1s = ScheduleSpec(interval="1s", start_at=first_slot, end_at=end)
    await create_schedule(
        "reindex_search",
        every_1s,
        2.5,
        overlap_policy=OverlapPolicy.SKIP,
        schedule_id=reindex_id,
        storage=storage,
    )
    print(f"[4] '{uptime_id}' every 2s and [5] '{reindex_id}' every 1s (SKIP) created")

    await declared_schedule(storage)
    await backfill(storage)
    await pause_resume_delete(storage)
    await report_uptime(storage, uptime_id)
    await report_reindex(storage, reindex_id, first_slot)
    print(f"done in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    asyncio.run(main())
