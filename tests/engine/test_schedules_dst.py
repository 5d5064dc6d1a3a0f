"""Cron schedules in Europe/Berlin across the 2026 daylight-saving changes
(29 March: 02:00 -> 03:00; 25 October: 03:00 -> 02:00), driven through the engine
with an injected clock: each slot is processed at its instant (or a little late), and
the ``schedule.triggered`` events and stored ``next_run_time`` are checked, on every
backend. The time math itself is unit-tested in tests/unit/test_schedule_math.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pyworkflow import OverlapPolicy, ScheduleSpec, create_schedule, workflow
from pyworkflow.scheduler.schedules import arm, process_schedule
from pyworkflow.storage.base import StorageBackend
from pyworkflow.utils.schedule import calculate_next_run_time

BERLIN = ZoneInfo("Europe/Berlin")


@workflow(name="sched_dst_job")
async def job() -> None:
    return None


async def _launch(run_id: str) -> None:
    """Runs stay PENDING; ALLOW_ALL lets every slot start one anyway."""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def wall(moment: datetime) -> str:
    return moment.astimezone(BERLIN).strftime("%d %H:%M%z")


async def make(store: StorageBackend, cron: str, since: datetime) -> str:
    spec = ScheduleSpec(cron=cron, timezone="Europe/Berlin")
    schedule = await create_schedule(
        "sched_dst_job", spec, overlap_policy=OverlapPolicy.ALLOW_ALL, storage=store
    )
    schedule.next_run_time = calculate_next_run_time(spec, now=since)
    await store.update_schedule(schedule)
    await arm(store, schedule, since)
    return schedule.schedule_id


async def drive(store: StorageBackend, sid: str, until: datetime, lag: timedelta) -> list[str]:
    """Process the schedule at each of its slots (plus ``lag``) until ``until``; the
    slots fired, as Berlin wall-clock strings from the ``schedule.triggered`` events."""
    while True:
        schedule = await store.get_schedule(sid)
        assert schedule is not None and schedule.next_run_time is not None
        slot = schedule.next_run_time.astimezone(UTC)
        if slot >= until:
            break
        started = await process_schedule(store, sid, _launch, now=slot + lag)
        assert len(started) == 1
        after = await store.get_schedule(sid)
        assert after is not None and after.next_run_time is not None
        assert after.next_run_time.astimezone(UTC) > slot + lag  # always moves forward
    events = await store.get_events(sid, ["schedule.triggered"])
    return [wall(_instant(e)) for e in events]


def _instant(event: Any, key: str = "scheduled_time") -> datetime:
    return datetime.fromisoformat(event.data[key]).astimezone(UTC)


@pytest.mark.parametrize("lag", [timedelta(0), timedelta(minutes=3)])
async def test_daily_0230_over_spring_forward(store: StorageBackend, lag: timedelta) -> None:
    sid = await make(store, "30 2 * * *", utc(2026, 3, 27, 12))
    fired = await drive(store, sid, utc(2026, 3, 31), lag)
    # 02:30 does not exist on the 29th: it runs at 03:00 CEST, once.
    assert fired == ["28 02:30+0100", "29 03:00+0200", "30 02:30+0200"]
    events = await store.get_events(sid, ["schedule.triggered"])
    actual = [_instant(e, "actual_time") - _instant(e) for e in events]
    assert actual == [lag] * 3


@pytest.mark.parametrize("lag", [timedelta(0), timedelta(minutes=3)])
async def test_daily_0230_over_fall_back(store: StorageBackend, lag: timedelta) -> None:
    sid = await make(store, "30 2 * * *", utc(2026, 10, 23, 12))
    fired = await drive(store, sid, utc(2026, 10, 27), lag)
    # 02:30 happens twice on the 25th: it runs at the first one only.
    assert fired == ["24 02:30+0200", "25 02:30+0200", "26 02:30+0100"]


async def test_hourly_over_spring_forward(store: StorageBackend) -> None:
    sid = await make(store, "0 * * * *", utc(2026, 3, 28, 22, 30))
    fired = await drive(store, sid, utc(2026, 3, 29, 3, 30), timedelta(seconds=1))
    assert fired == [
        "29 00:00+0100",
        "29 01:00+0100",
        "29 03:00+0200",  # 02:00 does not exist
        "29 04:00+0200",
        "29 05:00+0200",
    ]


async def test_hourly_over_fall_back_fires_each_real_hour(store: StorageBackend) -> None:
    sid = await make(store, "0 * * * *", utc(2026, 10, 24, 22, 30))
    fired = await drive(store, sid, utc(2026, 10, 25, 3, 30), timedelta(0))
    assert fired == [
        "25 01:00+0200",
        "25 02:00+0200",
        "25 02:00+0100",  # the repeated hour is a real hour
        "25 03:00+0100",
        "25 04:00+0100",
    ]
    events = await store.get_events(sid, ["schedule.triggered"])
    points = [_instant(e) for e in events]
    assert {b - a for a, b in pairwise(points)} == {timedelta(hours=1)}


async def test_missed_hours_over_fall_back_fire_once_and_skip_the_rest(
    store: StorageBackend,
) -> None:
    sid = await make(store, "0 * * * *", utc(2026, 10, 24, 22, 30))  # first slot 01:00 CEST
    started = await process_schedule(store, sid, _launch, now=utc(2026, 10, 25, 2, 10))
    assert len(started) == 1
    (trig,) = await store.get_events(sid, ["schedule.triggered"])
    assert wall(_instant(trig)) == "25 03:00+0100"
    skipped = await store.get_events(sid, ["schedule.skipped"])
    assert [wall(_instant(e)) for e in skipped] == [
        "25 01:00+0200",
        "25 02:00+0200",
        "25 02:00+0100",
    ]
    schedule = await store.get_schedule(sid)
    assert schedule is not None and schedule.skipped_runs == 3
    assert schedule.next_run_time is not None
    assert wall(schedule.next_run_time) == "25 04:00+0100"


async def test_next_run_time_survives_storage_in_its_zone(store: StorageBackend) -> None:
    sid = await make(store, "30 2 * * *", utc(2026, 3, 28, 12))
    schedule = await store.get_schedule(sid)
    assert schedule is not None and schedule.next_run_time is not None
    assert schedule.next_run_time.astimezone(UTC) == utc(2026, 3, 29, 1)
    assert schedule.spec.timezone == "Europe/Berlin"
    timers = [t for t in await store.list_timers(sid) if t.kind == "schedule"]
    assert [t.fire_at.astimezone(UTC) for t in timers] == [utc(2026, 3, 29, 1)]
