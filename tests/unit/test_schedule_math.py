"""Schedule time arithmetic (API.md §7.3, §8.11), including time zones and DST.

The clock is always injected (``now=``), so the DST cases are exact: Europe/Berlin
switches on 2026-03-29 (02:00 CET -> 03:00 CEST) and 2026-10-25 (03:00 CEST -> 02:00 CET);
America/New_York on 2026-03-08 (02:00 EST -> 03:00 EDT) and 2026-11-01 (02:00 EDT -> 01:00
EST). CET = UTC+1, CEST = UTC+2, EST = UTC-5, EDT = UTC-4.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from pyworkflow.storage.schemas import CalendarSpec, ScheduleSpec
from pyworkflow.utils.schedule import (
    MAX_BACKFILL_RUNS,
    calculate_backfill_times,
    calculate_next_run_time,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def next_run(spec: ScheduleSpec, **kwargs: object) -> datetime:
    result = calculate_next_run_time(spec, **kwargs)  # type: ignore[arg-type]
    assert result is not None
    return result


def chain(spec: ScheduleSpec, now: datetime, until: datetime, lag: timedelta) -> list[datetime]:
    """Fire like a scheduler: each run asks for the next time ``lag`` after the last one."""
    times: list[datetime] = []
    while True:
        result = calculate_next_run_time(spec, last_run=times[-1] if times else None, now=now)
        assert result is not None
        if result.astimezone(UTC) >= until:
            return times
        times.append(result)
        now = result + lag


def walls(times: list[datetime]) -> list[str]:
    return [t.strftime("%d %H:%M%z") for t in times]


def instants(times: list[datetime]) -> list[datetime]:
    return [t.astimezone(UTC) for t in times]


def assert_hourly(times: list[datetime]) -> None:
    points = instants(times)
    assert len(set(points)) == len(points)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(points))


# --- API.md §8.11 next-run and backfill checklist -----------------------------------------


def test_cron_from_0800_gives_0900() -> None:
    spec = ScheduleSpec(cron="0 9 * * *")
    assert next_run(spec, now=utc(2026, 1, 5, 8, 0)) == utc(2026, 1, 5, 9, 0)
    assert next_run(spec, now=utc(2026, 1, 5, 9, 0)) == utc(2026, 1, 6, 9, 0)  # strictly after


def test_first_interval_run_is_now() -> None:
    now = utc(2026, 1, 5, 8, 17, 3)
    assert next_run(ScheduleSpec(interval="5m"), now=now) == now


@pytest.mark.parametrize(
    ("interval", "step"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
    ],
)
def test_later_interval_runs_are_last_plus_interval(interval: str, step: timedelta) -> None:
    last = utc(2026, 1, 5, 8, 0)
    spec = ScheduleSpec(interval=interval)
    assert next_run(spec, last_run=last, now=last) == last + step
    assert next_run(spec, last_run=last, now=last + step / 2) == last + step


def test_lagging_interval_catches_up_to_the_grid() -> None:
    last = utc(2026, 1, 5, 8, 0)
    spec = ScheduleSpec(interval="15m")
    assert next_run(spec, last_run=last, now=utc(2026, 1, 5, 9, 7)) == utc(2026, 1, 5, 9, 15)
    assert next_run(spec, last_run=last, now=utc(2026, 1, 5, 9, 15)) == utc(2026, 1, 5, 9, 15)


def test_calendar_day_1_gives_the_first_at_midnight() -> None:
    spec = ScheduleSpec(calendar=[CalendarSpec(day_of_month=1)])
    assert next_run(spec, now=utc(2026, 5, 17, 12)) == utc(2026, 6, 1)
    assert next_run(spec, now=utc(2026, 12, 1, 0, 0, 1)) == utc(2027, 1, 1)


def test_start_at_is_respected() -> None:
    now, start = utc(2026, 1, 1), utc(2026, 2, 1, 9, 30)
    cron = ScheduleSpec(cron="0 9 * * *", start_at=start)
    assert next_run(cron, now=now) == utc(2026, 2, 2, 9, 0)
    assert next_run(ScheduleSpec(interval="1h", start_at=start), now=now) == start
    on_slot = ScheduleSpec(cron="0 9 * * *", start_at=utc(2026, 2, 1, 9, 0))
    assert next_run(on_slot, now=now) == utc(2026, 2, 1, 9, 0)  # a slot at start_at counts
    assert next_run(cron, now=utc(2026, 3, 1, 10)) == utc(2026, 3, 2, 9, 0)  # start passed


def test_end_at_is_respected() -> None:
    end = utc(2026, 1, 5, 12)
    spec = ScheduleSpec(cron="0 9 * * *", end_at=end)
    assert next_run(spec, now=utc(2026, 1, 5, 8)) == utc(2026, 1, 5, 9)
    assert calculate_next_run_time(spec, now=utc(2026, 1, 5, 10)) is None  # next would be past
    assert calculate_next_run_time(spec, now=end) is None
    at_end = ScheduleSpec(cron="0 9 * * *", end_at=utc(2026, 1, 5, 9))
    assert calculate_next_run_time(at_end, now=utc(2026, 1, 5, 8)) is None  # end is exclusive
    interval = ScheduleSpec(interval="1h", end_at=end)
    assert calculate_next_run_time(interval, last_run=utc(2026, 1, 5, 11), now=end) is None


@pytest.mark.parametrize("spec", [ScheduleSpec(), ScheduleSpec(calendar=[]), ScheduleSpec(cron="")])
def test_empty_spec_gives_none(spec: ScheduleSpec) -> None:
    assert calculate_next_run_time(spec, now=utc(2026, 1, 1)) is None
    assert calculate_backfill_times(spec, utc(2026, 1, 1), utc(2026, 2, 1)) == []


@pytest.mark.parametrize(("days", "expected"), [(4, 4), (30, 30)])
def test_backfill_daily_cron(days: int, expected: int) -> None:
    start = utc(2026, 1, 1)
    times = calculate_backfill_times(ScheduleSpec(cron="0 0 * * *"), start, start + timedelta(days))
    assert len(times) == expected
    assert times[0] == start  # [start, end): a slot at start counts, one at end does not
    assert times[-1] == start + timedelta(days=days - 1)


def test_backfill_hourly_interval() -> None:
    start = utc(2026, 1, 1, 10)
    times = calculate_backfill_times(ScheduleSpec(interval="1h"), start, utc(2026, 1, 1, 14))
    assert len(times) >= 4
    assert times == [start + timedelta(hours=n) for n in range(4)]


def test_backfill_empty_or_inverted_range() -> None:
    spec, moment = ScheduleSpec(cron="* * * * *"), utc(2026, 1, 1)
    assert calculate_backfill_times(spec, moment, moment) == []
    assert calculate_backfill_times(spec, moment, moment - timedelta(days=1)) == []


def test_backfill_is_capped_at_10000() -> None:
    start, end = utc(2026, 1, 1), utc(2026, 2, 1)  # 44,640 minutes
    times = calculate_backfill_times(ScheduleSpec(cron="* * * * *"), start, end)
    assert len(times) == MAX_BACKFILL_RUNS == 10_000
    assert times[-1] == start + timedelta(minutes=9_999)
    assert len(calculate_backfill_times(ScheduleSpec(interval="1s"), start, end)) == 10_000


def test_backfill_is_clipped_to_start_and_end_at() -> None:
    spec = ScheduleSpec(cron="0 9 * * *", start_at=utc(2026, 1, 3), end_at=utc(2026, 1, 5, 9))
    times = calculate_backfill_times(spec, utc(2026, 1, 1), utc(2026, 1, 10))
    assert times == [utc(2026, 1, 3, 9), utc(2026, 1, 4, 9)]


def test_backfill_has_no_jitter() -> None:
    spec = ScheduleSpec(cron="0 9 * * *", jitter="30m")
    times = calculate_backfill_times(spec, utc(2026, 1, 1), utc(2026, 1, 4))
    assert times == [utc(2026, 1, d, 9) for d in (1, 2, 3)]


def test_cron_that_never_matches_gives_none() -> None:
    assert calculate_next_run_time(ScheduleSpec(cron="0 0 31 2 *"), now=utc(2026, 1, 1)) is None


def test_default_now_is_the_current_time() -> None:
    before = datetime.now(UTC)
    result = next_run(ScheduleSpec(interval="1h"))
    assert before <= result <= datetime.now(UTC)
    assert next_run(ScheduleSpec(cron="* * * * *")) > before


# --- Daylight saving: Europe/Berlin ---------------------------------------------------------


def test_berlin_0230_in_the_spring_gap_runs_at_0300_once() -> None:
    spec = ScheduleSpec(cron="30 2 * * *", timezone="Europe/Berlin")
    times = chain(spec, utc(2026, 3, 27, 12), utc(2026, 3, 31), timedelta(minutes=1))
    assert walls(times) == ["28 02:30+0100", "29 03:00+0200", "30 02:30+0200"]
    assert instants(times) == [
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 30, 0, 30),
    ]
    backfill = calculate_backfill_times(spec, datetime(2026, 3, 28), datetime(2026, 3, 31))
    assert backfill == times


def test_berlin_0230_in_the_autumn_overlap_runs_once_first_occurrence() -> None:
    spec = ScheduleSpec(cron="30 2 * * *", timezone="Europe/Berlin")
    times = chain(spec, utc(2026, 10, 23, 12), utc(2026, 10, 27), timedelta(minutes=1))
    assert walls(times) == ["24 02:30+0200", "25 02:30+0200", "26 02:30+0100"]
    assert instants(times) == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]
    # Asked during the repeated hour (after the first 02:30), it does not fire again that day.
    assert next_run(spec, now=utc(2026, 10, 25, 1, 0)) == utc(2026, 10, 26, 1, 30)
    backfill = calculate_backfill_times(spec, datetime(2026, 10, 24), datetime(2026, 10, 27))
    assert backfill == times


@pytest.mark.parametrize(
    ("day", "expected_utc"),
    [
        (datetime(2026, 3, 28), utc(2026, 3, 28, 8)),  # CET
        (datetime(2026, 3, 29), utc(2026, 3, 29, 7)),  # CEST from today
        (datetime(2026, 10, 24), utc(2026, 10, 24, 7)),  # CEST
        (datetime(2026, 10, 25), utc(2026, 10, 25, 8)),  # CET from today
    ],
)
def test_berlin_0900_is_0900_local_on_both_sides(day: datetime, expected_utc: datetime) -> None:
    spec = ScheduleSpec(cron="0 9 * * *", timezone="Europe/Berlin")
    result = next_run(spec, now=day)  # naive: midnight in Berlin
    assert (result.hour, result.minute) == (9, 0)
    assert result == expected_utc


def test_berlin_hourly_across_spring_forward() -> None:
    spec = ScheduleSpec(cron="0 * * * *", timezone="Europe/Berlin")
    for lag in (timedelta(0), timedelta(minutes=3)):
        times = chain(spec, utc(2026, 3, 28, 22, 30), utc(2026, 3, 29, 4, 30), lag)
        assert [t.hour for t in times] == [0, 1, 3, 4, 5, 6]  # 02:00 does not exist
        assert_hourly(times)
        assert instants(times)[0] == utc(2026, 3, 28, 23)


def test_berlin_hourly_across_fall_back_fires_every_real_hour() -> None:
    spec = ScheduleSpec(cron="0 * * * *", timezone="Europe/Berlin")
    for lag in (timedelta(0), timedelta(minutes=3)):
        times = chain(spec, utc(2026, 10, 24, 21, 30), utc(2026, 10, 25, 4, 30), lag)
        assert walls(times) == [
            "25 00:00+0200",
            "25 01:00+0200",
            "25 02:00+0200",
            "25 02:00+0100",  # the repeated hour is a real hour and runs
            "25 03:00+0100",
            "25 04:00+0100",
            "25 05:00+0100",
        ]
        assert_hourly(times)


def test_berlin_sub_hourly_inside_the_repeated_hour() -> None:
    spec = ScheduleSpec(cron="15 * * * *", timezone="Europe/Berlin")
    # 02:50 CEST, first pass of the repeated hour: 02:15 CET (second pass) is next.
    assert next_run(spec, now=utc(2026, 10, 25, 0, 50)) == utc(2026, 10, 25, 1, 15)
    quarter = ScheduleSpec(cron="*/15 * * * *", timezone="Europe/Berlin")
    times = calculate_backfill_times(quarter, utc(2026, 10, 24, 23, 50), utc(2026, 10, 25, 2, 5))
    points = instants(times)
    assert points[0] == utc(2026, 10, 25, 0, 0) and points[-1] == utc(2026, 10, 25, 2, 0)
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(points))


def test_berlin_hourly_at_half_past_keeps_hourly_spacing_over_the_gap() -> None:
    spec = ScheduleSpec(cron="30 * * * *", timezone="Europe/Berlin")
    times = calculate_backfill_times(spec, datetime(2026, 3, 29, 0, 0), datetime(2026, 3, 29, 5, 0))
    assert [t.strftime("%H:%M") for t in times] == ["00:30", "01:30", "03:30", "04:30"]
    assert_hourly(times)


# --- Daylight saving: America/New_York ------------------------------------------------------


def test_new_york_0230_in_the_spring_gap_runs_at_0300() -> None:
    spec = ScheduleSpec(cron="30 2 * * *", timezone="America/New_York")
    times = chain(spec, datetime(2026, 3, 7, 12, 0), utc(2026, 3, 10), timedelta(seconds=1))
    assert walls(times) == ["08 03:00-0400", "09 02:30-0400"]
    assert instants(times) == [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]


def test_new_york_0130_in_the_autumn_overlap_runs_once() -> None:
    spec = ScheduleSpec(cron="30 1 * * *", timezone="America/New_York")
    times = chain(spec, datetime(2026, 10, 31, 12, 0), utc(2026, 11, 3), timedelta(seconds=1))
    assert walls(times) == ["01 01:30-0400", "02 01:30-0500"]
    assert instants(times) == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


@pytest.mark.parametrize(
    ("now", "expected_utc"),
    [
        (datetime(2026, 3, 7, 8), utc(2026, 3, 7, 14)),  # EST
        (datetime(2026, 3, 8, 8), utc(2026, 3, 8, 13)),  # EDT
        (datetime(2026, 10, 31, 8), utc(2026, 10, 31, 13)),  # EDT
        (datetime(2026, 11, 1, 8), utc(2026, 11, 1, 14)),  # EST
    ],
)
def test_new_york_0900(now: datetime, expected_utc: datetime) -> None:
    spec = ScheduleSpec(cron="0 9 * * *", timezone="America/New_York")
    result = next_run(spec, now=now)
    assert (result.hour, result.minute) == (9, 0)
    assert result == expected_utc


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        (utc(2026, 3, 8, 5), utc(2026, 3, 8, 10), [0, 1, 3, 4, 5]),
        (utc(2026, 11, 1, 4), utc(2026, 11, 1, 10), [0, 1, 1, 2, 3, 4]),
    ],
)
def test_new_york_hourly(start: datetime, end: datetime, hours: list[int]) -> None:
    spec = ScheduleSpec(cron="0 * * * *", timezone="America/New_York")
    times = chain(spec, start - timedelta(minutes=1), end, timedelta(seconds=30))
    assert [t.hour for t in times] == hours
    assert_hourly(times)
    assert calculate_backfill_times(spec, start, end) == times


# --- Intervals keep absolute spacing; calendars use the zone -------------------------------


@pytest.mark.parametrize(
    ("zone", "first"),
    [
        ("Europe/Berlin", utc(2026, 3, 28, 22)),
        ("Europe/Berlin", utc(2026, 10, 24, 22)),
        ("America/New_York", utc(2026, 3, 8, 4)),
        ("America/New_York", utc(2026, 11, 1, 3)),
    ],
)
def test_interval_keeps_absolute_spacing_across_dst(zone: str, first: datetime) -> None:
    spec = ScheduleSpec(interval="1h", timezone=zone)
    times = chain(spec, first, first + timedelta(hours=6), timedelta(seconds=5))
    assert instants(times) == [first + timedelta(hours=n) for n in range(6)]
    assert len({t.hour for t in times}) in (5, 6, 7)  # wall clock jumps, spacing does not
    daily = ScheduleSpec(interval="1d", timezone=zone)
    assert next_run(daily, last_run=first, now=first) - first == timedelta(hours=24)


def test_interval_across_the_gap_in_wall_clock() -> None:
    spec = ScheduleSpec(interval="1h", timezone="Europe/Berlin")
    result = next_run(spec, last_run=datetime(2026, 3, 29, 1, 30), now=datetime(2026, 3, 29, 1, 31))
    assert result.strftime("%H:%M%z") == "03:30+0200"


def test_calendar_in_a_zone() -> None:
    spec = ScheduleSpec(calendar=[CalendarSpec(hour=9, day_of_week=0)], timezone="Europe/Berlin")
    result = next_run(spec, now=utc(2026, 7, 1, 12))  # a Wednesday
    assert result.strftime("%a %Y-%m-%d %H:%M%z") == "Mon 2026-07-06 09:00+0200"
    assert result == utc(2026, 7, 6, 7)
    winter = next_run(spec, now=utc(2026, 12, 1, 12))
    assert winter == utc(2026, 12, 7, 8)


def test_calendar_follows_the_same_dst_policy() -> None:
    spec = ScheduleSpec(calendar=[CalendarSpec(hour=2, minute=30)], timezone="Europe/Berlin")
    spring = calculate_backfill_times(spec, datetime(2026, 3, 28), datetime(2026, 3, 31))
    assert walls(spring) == ["28 02:30+0100", "29 03:00+0200", "30 02:30+0200"]
    autumn = calculate_backfill_times(spec, datetime(2026, 10, 24), datetime(2026, 10, 27))
    assert walls(autumn) == ["24 02:30+0200", "25 02:30+0200", "26 02:30+0100"]
    assert next_run(spec, now=utc(2026, 10, 25, 1, 0)) == utc(2026, 10, 26, 1, 30)


def test_calendar_earliest_of_several_entries_and_filters() -> None:
    spec = ScheduleSpec(
        calendar=[
            CalendarSpec(hour=17, minute=30, second=15, day_of_week=4),
            CalendarSpec(hour=6, month=12, day_of_month=25),
        ]
    )
    assert next_run(spec, now=utc(2026, 12, 24, 18)) == utc(2026, 12, 25, 6)  # Fri 25th
    assert next_run(spec, now=utc(2026, 12, 25, 7)) == utc(2026, 12, 25, 17, 30, 15)


def test_calendar_search_window_is_366_days() -> None:
    leap_day = ScheduleSpec(calendar=[CalendarSpec(month=2, day_of_month=29)])
    assert next_run(leap_day, now=utc(2027, 3, 1)) == utc(2028, 2, 29)
    assert calculate_next_run_time(leap_day, now=utc(2026, 3, 1)) is None  # 2028 is too far


# --- Naive inputs, jitter ---------------------------------------------------------------------


def test_naive_inputs_are_wall_times_in_the_zone() -> None:
    spec = ScheduleSpec(interval="1h", timezone="Europe/Berlin")
    assert next_run(spec, now=datetime(2026, 7, 1, 8, 0)) == utc(2026, 7, 1, 6, 0)
    later = next_run(spec, last_run=datetime(2026, 7, 1, 8, 0), now=utc(2026, 7, 1, 6, 10))
    assert later == utc(2026, 7, 1, 7, 0)
    bounded = ScheduleSpec(
        cron="0 * * * *",
        timezone="Europe/Berlin",
        start_at=datetime(2026, 7, 1, 10, 0),
        end_at=datetime(2026, 7, 1, 12, 0),
    )
    assert next_run(bounded, now=utc(2026, 7, 1, 0)) == utc(2026, 7, 1, 8, 0)
    assert calculate_next_run_time(bounded, now=datetime(2026, 7, 1, 12, 0)) is None
    # A naive time in the gap means the first instant after it; fold picks the pass.
    assert next_run(spec, now=datetime(2026, 3, 29, 2, 30)) == utc(2026, 3, 29, 1, 0)
    second_pass = datetime(2026, 10, 25, 2, 30, fold=1)
    assert next_run(spec, now=second_pass) == utc(2026, 10, 25, 1, 30)


def test_results_show_local_time_with_a_fixed_offset() -> None:
    spec = ScheduleSpec(cron="0 9 * * *", timezone="Asia/Tokyo")
    result = next_run(spec, now=utc(2025, 12, 31, 23))
    assert result.isoformat() == "2026-01-01T09:00:00+09:00" and result == utc(2026, 1, 1, 0)
    # In a repeated hour the result still equals its UTC instant and survives arithmetic
    # (a ZoneInfo datetime with fold=1 would do neither).
    hourly = ScheduleSpec(cron="0 * * * *", timezone="Europe/Berlin")
    second_pass = next_run(hourly, now=utc(2026, 10, 25, 0, 0))
    assert second_pass.isoformat() == "2026-10-25T02:00:00+01:00"
    assert second_pass == utc(2026, 10, 25, 1) and second_pass.astimezone(BERLIN).fold == 1
    assert second_pass + timedelta(0) == utc(2026, 10, 25, 1)
    assert {second_pass, utc(2026, 10, 25, 1)} == {utc(2026, 10, 25, 1)}


def test_jitter_is_bounded_and_reproducible() -> None:
    spec = ScheduleSpec(cron="0 9 * * *", jitter="10m")
    base = utc(2026, 1, 1, 9)
    offsets = {
        (next_run(spec, now=utc(2026, 1, 1, 8), rng=random.Random(seed)) - base).total_seconds()
        for seed in range(300)
    }
    assert all(0 <= offset <= 600 and offset == int(offset) for offset in offsets)
    assert len(offsets) > 100  # really random, not a constant offset
    first = next_run(spec, now=utc(2026, 1, 1, 8), rng=random.Random(7))
    assert next_run(spec, now=utc(2026, 1, 1, 8), rng=random.Random(7)) == first
    unseeded = next_run(ScheduleSpec(interval="1h", jitter="5s"), now=base)
    assert base <= unseeded <= base + timedelta(seconds=5)
