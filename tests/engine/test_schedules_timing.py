"""Schedules firing in real time from the local runtime's timer service: an interval
schedule's cadence and counters, SKIP and BUFFER_ONE around a slow run, and two
timer services on one storage never firing a slot twice.

Timing-heavy, so on memory and SQLite (plus PostgreSQL for the two-scheduler test);
the policies themselves are covered slot by slot in test_schedules_policies.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from pyworkflow import (
    OverlapPolicy,
    ScheduleSpec,
    create_schedule,
    delete_schedule,
    step,
    workflow,
)
from pyworkflow.runtime.local import _services, timer_service
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.schemas import RunStatus, Schedule
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.support import eventually

GATE: dict[str, asyncio.Event] = {}
ENTERED: list[float] = []


@step(name="sched_time_hold")
async def hold() -> str:
    """The first run waits for the test's gate; later runs return at once."""
    ENTERED.append(time.monotonic())
    if len(ENTERED) == 1 and "first" in GATE:
        await GATE["first"].wait()
    return "done"


@workflow(name="sched_time_job")
async def job() -> str:
    return await hold()


@pytest.fixture(params=["memory", "sqlite"])
async def fast_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    backend: StorageBackend
    if request.param == "memory":
        backend = InMemoryStorageBackend()
    else:
        backend = SQLiteStorageBackend(str(tmp_path / "timing.db"))
    await backend.connect()
    ENTERED.clear()
    GATE.clear()
    yield backend
    for service in _services.get(asyncio.get_running_loop(), {}).values():
        await service.stop()
    await backend.disconnect()


async def state(store: StorageBackend, sid: str) -> Schedule:
    schedule = await store.get_schedule(sid)
    assert schedule is not None
    return schedule


async def triggers(store: StorageBackend, sid: str) -> list[Any]:
    return await store.get_events(sid, ["schedule.triggered"])


def instant(event: Any, key: str = "scheduled_time") -> datetime:
    return datetime.fromisoformat(event.data[key]).astimezone(UTC)


async def test_every_two_seconds_fires_five_times_in_ten_seconds(fast_store: Any) -> None:
    store = fast_store
    s = await create_schedule("sched_time_job", ScheduleSpec(interval="2s"), storage=store)
    began = time.monotonic()
    timer_service(store)

    async def fired(n: int) -> bool:
        return (await state(store, s.schedule_id)).total_runs >= n

    await eventually(lambda: fired(5), timeout=15, interval=0.05)
    elapsed = time.monotonic() - began
    assert 7.0 <= elapsed <= 12.0, elapsed  # slots at 0, 2, 4, 6 and 8 s

    async def five_counted() -> bool:
        return (await state(store, s.schedule_id)).successful_runs >= 5

    await eventually(five_counted, timeout=2.5, message="ended runs never counted")
    await delete_schedule(s.schedule_id, storage=store)  # a snapshot that stays put
    done = await state(store, s.schedule_id)
    events = await triggers(store, s.schedule_id)
    run_ids = [e.data["workflow_run_id"] for e in events]
    assert len(run_ids) == len(set(run_ids)) == done.total_runs in (5, 6)
    assert done.successful_runs + len(done.running_run_ids) == done.total_runs
    assert (done.failed_runs, done.skipped_runs, done.buffered_count) == (0, 0, 0)
    slots = [instant(e) for e in events]
    assert {b - a for a, b in pairwise(slots)} == {timedelta(seconds=2)}
    assert done.last_run_id == run_ids[-1]
    assert done.last_run_at is not None
    assert abs(done.last_run_at - instant(events[-1], "actual_time")) < timedelta(seconds=1)
    for e in events:  # fired on time, never early
        lateness = (instant(e, "actual_time") - instant(e)).total_seconds()
        assert 0 <= lateness < 1.5, lateness
    for run_id in run_ids:
        run = await eventually(lambda rid=run_id: _completed(store, rid), timeout=5)
        assert run.idempotency_key.startswith(f"schedule:{s.schedule_id}:")


async def _completed(store: StorageBackend, run_id: str) -> Any:
    run = await store.get_run(run_id)
    return run if run is not None and run.status is RunStatus.COMPLETED else None


async def stop_services() -> None:
    """Stop firing (in-flight processing finishes first), with no API call that could
    race a processor (see test_schedules_races.py for that race)."""
    for service in _services.get(asyncio.get_running_loop(), {}).values():
        await service.stop()


@pytest.mark.parametrize("fast_store", ["sqlite"], indirect=True)
async def test_skip_fires_again_at_the_first_slot_after_the_run_ends(fast_store: Any) -> None:
    store = fast_store
    GATE["first"] = asyncio.Event()
    s = await create_schedule("sched_time_job", ScheduleSpec(interval="2s"), storage=store)
    timer_service(store)

    async def skipped() -> bool:
        return (await state(store, s.schedule_id)).skipped_runs >= 1

    await eventually(skipped, timeout=6)
    released = time.monotonic()
    GATE["first"].set()

    await eventually(lambda: len(ENTERED) >= 2, timeout=4, message="SKIP never fired again")
    assert ENTERED[1] - released < 3.5  # the next slot, at most one interval later
    await stop_services()
    after = await state(store, s.schedule_id)
    assert after.total_runs == 2 and after.skipped_runs >= 1
    assert after.successful_runs == 1  # counted by then
    skipped_events = await store.get_events(s.schedule_id, ["schedule.skipped"])
    assert len(skipped_events) == after.skipped_runs
    assert {e.data["overlap_policy"] for e in skipped_events} == {"skip"}


@pytest.mark.parametrize("fast_store", ["sqlite"], indirect=True)
async def test_buffer_one_starts_the_buffered_run_as_soon_as_the_first_ends(
    fast_store: Any,
) -> None:
    store = fast_store
    GATE["first"] = asyncio.Event()
    s = await create_schedule(
        "sched_time_job",
        ScheduleSpec(interval="1s"),
        overlap_policy=OverlapPolicy.BUFFER_ONE,
        storage=store,
    )
    timer_service(store)

    async def overflowed() -> bool:
        current = await state(store, s.schedule_id)
        return current.buffered_count == 1 and current.skipped_runs >= 1

    await eventually(overflowed, timeout=6)
    released = time.monotonic()
    GATE["first"].set()
    await eventually(lambda: len(ENTERED) >= 2, timeout=4, message="buffered run never started")
    assert ENTERED[1] - released < 2.0  # at once, not at a later slot

    async def both_counted() -> bool:
        return (await state(store, s.schedule_id)).successful_runs >= 2

    await eventually(both_counted, timeout=3)
    trig = await triggers(store, s.schedule_id)
    assert len({e.data["workflow_run_id"] for e in trig}) == len(trig) >= 2


async def _second_store(store: StorageBackend, kind: str) -> StorageBackend:
    if kind == "sqlite":
        assert isinstance(store, SQLiteStorageBackend)
        return SQLiteStorageBackend(str(store.db_path))
    from pyworkflow.storage.postgres import PostgresStorageBackend

    assert isinstance(store, PostgresStorageBackend)
    return PostgresStorageBackend(dsn=store.dsn)


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
async def test_two_timer_services_fire_each_slot_once(
    store: StorageBackend, request: pytest.FixtureRequest
) -> None:
    kind = request.node.callspec.params["store"]
    other = await _second_store(store, kind)
    await other.connect()
    try:
        s = await create_schedule("sched_time_job", ScheduleSpec(interval="1s"), storage=store)
        services = [timer_service(store), timer_service(other)]
        await asyncio.sleep(3)
        for service in services:
            await service.stop()
        events = await triggers(store, s.schedule_id)
        run_ids = [e.data["workflow_run_id"] for e in events]
        slots = [instant(e) for e in events]
        assert len(run_ids) >= 2
        assert len(set(run_ids)) == len(run_ids), run_ids
        assert len(set(slots)) == len(slots), slots
        runs, _ = await store.list_runs(limit=1000)
        ours = [r for r in runs if (r.idempotency_key or "").startswith("schedule:")]
        after = await state(store, s.schedule_id)
        assert len(ours) == after.total_runs == len(run_ids)
        assert after.skipped_runs == len(
            await store.get_events(s.schedule_id, ["schedule.skipped"])
        )
    finally:
        await other.disconnect()
