"""Properties of schedule arithmetic (pyworkflow.utils.schedule, utils.calendar_match).

Cron expressions are built from field strategies, so the set of values of every field
is known here; an oracle written in this file then lists the instants a rule fires at,
day by day on the zone's wall clock, under the documented DST policy
(docs/concepts/schedules.md): a wall time skipped by the clock fires at the first
instant after the gap, a repeated one fires once (its first pass) — except rules whose
hour field covers every hour, which follow absolute time (both passes, nothing in a gap).

* cron and calendar: ``calculate_next_run_time`` is the oracle's first instant strictly
  after ``now``; following it repeatedly is strictly increasing and matches the oracle
  each time; non-gap results also satisfy ``croniter.match`` on the local wall time;
* interval: the result is ``last_run`` plus a whole number of intervals, the first one
  not before ``now``, in absolute time whatever the zone does;
* DST, spelled out on generated transition days in Europe/Berlin, America/New_York and
  Australia/Lord_Howe: a skipped slot fires at the gap's end that same day, a repeated
  one fires once, an hourly rule stays exactly one hour apart (1-hour shifts).

Times are drawn in 1980-2036 (whole-minute UTC offsets; tzdata's explicit range).
"""

from __future__ import annotations

import functools
import itertools
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from hypothesis import event, example, given
from hypothesis import strategies as st

from pyworkflow.storage.schemas import CalendarSpec, ScheduleSpec
from pyworkflow.utils.schedule import calculate_next_run_time
from tests.property.strategies import prop_settings

DST_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe")
# Zones with unusual transitions: 30 min (Lord Howe), 2 h (Troll), at midnight
# (Santiago, Havana), a skipped calendar day (Apia 2011), Ramadan toggles (Casablanca).
ODD_ZONES = (
    "Antarctica/Troll",
    "America/Santiago",
    "America/Havana",
    "Pacific/Apia",
    "Africa/Casablanca",
    "Asia/Tehran",
    "Europe/London",
    "UTC",
)
ALL_ZONES = sorted(zoneinfo.available_timezones() - {"Factory", "localtime"})
LOW, HIGH = datetime(1980, 1, 1, tzinfo=UTC), datetime(2036, 12, 1, tzinfo=UTC)

# ---------------------------------------------------------------------- oracle


def resolve(wall: datetime, tz: ZoneInfo, every_hour: bool) -> list[datetime]:
    """The UTC instants a wall-clock slot fires at, per the documented policy."""
    passes = sorted(
        {
            instant
            for fold in (0, 1)
            for instant in [wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)]
            if instant.astimezone(tz).replace(tzinfo=None) == wall
        }
    )
    if not passes:  # skipped by the clock
        return [] if every_hour else [gap_end(wall, tz)]
    return passes if every_hour else passes[:1]


def gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first instant whose local time is past ``wall`` (a time inside a gap)."""
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    moment = min(low, high) - timedelta(minutes=1)
    while moment.astimezone(tz).replace(tzinfo=None) <= wall:
        moment += timedelta(minutes=1)
    # the transition may sit inside that minute: walk back second by second
    while (moment - timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None) > wall:
        moment -= timedelta(seconds=1)
    return moment


def first_after(day_slots, tz: ZoneInfo, after: datetime, every_hour: bool, days: int):
    """Earliest fire instant > ``after``; ``day_slots(day)`` lists a day's wall times."""
    start = after.astimezone(tz).date() - timedelta(days=1)
    found: list[datetime] = []
    for offset in range(days + 2):
        day = start + timedelta(days=offset)
        for wall in day_slots(day):
            found += [i for i in resolve(wall, tz, every_hour) if i > after]
        if found and day > after.astimezone(tz).date() + timedelta(days=1):
            break  # one more day seen than needed: a midnight overlap cannot hide one
    return min(found) if found else None


def cron_oracle(fields: dict[str, set[int] | None], tz: ZoneInfo, after: datetime):
    minutes, hours = fields["minute"], fields["hour"]
    assert minutes is not None and hours is not None

    def day_matches(day: date) -> bool:
        dom, month, dow = fields["dom"], fields["month"], fields["dow"]
        if month is not None and day.month not in month:
            return False
        dom_ok = dom is None or day.day in dom
        dow_ok = dow is None or (day.weekday() + 1) % 7 in dow
        if dom is not None and dow is not None:
            return dom_ok or dow_ok  # classic cron: either day field
        return dom_ok and dow_ok

    def slots(day: date) -> list[datetime]:
        if not day_matches(day):
            return []
        return [datetime.combine(day, time(h, m)) for h in sorted(hours) for m in sorted(minutes)]

    return first_after(slots, tz, after, len(hours) == 24, days=366 * 9)


def calendar_oracle(entries: list[CalendarSpec], tz: ZoneInfo, after: datetime):
    first_day = after.astimezone(tz).date()

    def slots(day: date) -> list[datetime]:
        if day > first_day + timedelta(days=366):  # the documented search window
            return []
        return [
            datetime.combine(day, time(e.hour, e.minute, e.second))
            for e in entries
            if (e.month is None or day.month == e.month)
            and (e.day_of_month is None or day.day == e.day_of_month)
            and (e.day_of_week is None or day.weekday() == e.day_of_week)
        ]

    return first_after(slots, tz, after, False, days=368)


# ---------------------------------------------------------------------- strategies


def field(low: int, high: int, favourites: tuple[int, ...], star: bool = True):
    """(cron text, set of values or None for "*") for one field."""
    value = st.one_of(st.sampled_from(favourites), st.integers(low, high))
    ranged = st.tuples(value, value).map(sorted).filter(lambda r: r[0] < r[1])
    options = [
        value.map(lambda v: (str(v), {v})),
        st.lists(value, min_size=2, max_size=3, unique=True).map(
            lambda vs: (",".join(map(str, vs)), set(vs))
        ),
        ranged.map(lambda r: (f"{r[0]}-{r[1]}", set(range(r[0], r[1] + 1)))),
        st.tuples(ranged, st.integers(2, 5)).map(
            lambda t: (f"{t[0][0]}-{t[0][1]}/{t[1]}", set(range(t[0][0], t[0][1] + 1, t[1])))
        ),
    ]
    if star:
        options.append(st.integers(2, 20).map(lambda s: (f"*/{s}", set(range(low, high + 1, s)))))
        options.append(st.just(("*", set(range(low, high + 1)))))
    return st.one_of(*options)


def day_field(low: int, high: int):
    # "*" or a proper subset: croniter reads a full explicit range as "*", which changes
    # how the two day fields combine; that corner is croniter's, not ours.
    sub = field(low, high, (low, high), star=False).filter(lambda f: len(f[1]) < high - low + 1)
    return st.one_of(st.just(("*", None)), sub)


_EVERY_DAY = {"dom": ("*", None), "month": ("*", None), "dow": ("*", None)}


@st.composite
def crons(
    draw: st.DrawFn, hours: tuple[int, ...] = (2, 1, 3, 0, 23)
) -> tuple[str, dict[str, set[int] | None]]:
    """A cron expression and its field sets. Half are daily rules at the first two
    ``hours`` (those a nearby offset change skips or repeats), so that DST cases come up
    often."""
    parts = {"minute": draw(field(0, 59, (0, 15, 30, 45, 59)))}
    if draw(st.booleans()):
        # hours[:2] are the ones a change skips or repeats
        chosen = draw(st.lists(st.sampled_from(hours[:2]), min_size=1, max_size=2, unique=True))
        hour = (",".join(map(str, chosen)), set(chosen))
        every = ("*", set(range(24)))  # an hourly rule: follows absolute time
        parts |= _EVERY_DAY | {"hour": draw(st.sampled_from([hour, hour, every]))}
    else:
        parts["hour"] = draw(field(0, 23, hours))
        parts["dom"] = draw(day_field(1, 31))
        parts["month"] = draw(st.one_of(st.just(("*", None)), field(1, 12, (3, 10), star=False)))
        parts["dow"] = draw(day_field(0, 6))
    text = " ".join(parts[k][0] for k in ("minute", "hour", "dom", "month", "dow"))
    return text, {k: v[1] for k, v in parts.items()}


@functools.lru_cache(maxsize=512)
def transitions(zone: str, year: int) -> tuple[datetime, ...]:
    """UTC instants (to the minute) where the zone's offset changes in ``year``."""
    tz, found = ZoneInfo(zone), []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    while moment.year == year:
        nxt = moment + timedelta(hours=6)
        if moment.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            low, high = moment, nxt
            while high - low > timedelta(minutes=1):
                mid = low + (high - low) / 2
                same = mid.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset()
                low, high = (mid, high) if same else (low, mid)
            found.append(high.replace(second=0, microsecond=0))
        moment = nxt
    return tuple(found)


@st.composite
def near_transition(draw: st.DrawFn, zones: tuple[str, ...], close: bool):
    """(zone, an instant near one of its offset changes, the local hours around it:
    first the two the change skips or repeats). ``close``: at most 90 minutes before
    the change, so that the next daily slot at those hours is in or after it."""
    zone = draw(st.sampled_from(zones))
    year = draw(st.integers(1990, 2035))
    changes = transitions(zone, year) or (datetime(year, 6, 1, tzinfo=UTC),)
    anchor = draw(st.sampled_from(changes))
    span = (-90 * 60, -1) if close else (-2 * 86400, 2 * 86400)
    seconds = draw(st.integers(*span))
    before = (anchor - timedelta(minutes=1)).astimezone(ZoneInfo(zone)).hour
    around = tuple(h % 24 for h in (before, before + 1, before - 1, before + 2))
    return zone, anchor + timedelta(seconds=seconds), around


instants = st.datetimes(min_value=LOW.replace(tzinfo=None), max_value=HIGH.replace(tzinfo=None))
anywhere = st.tuples(
    st.sampled_from(ALL_ZONES),
    instants.map(lambda d: d.replace(tzinfo=UTC)),
    st.just((2, 1, 0, 23)),
)
# (zone, now, hours worth favouring in rules)
zone_and_now = st.one_of(near_transition(DST_ZONES + ODD_ZONES, close=False), anywhere)
just_before_change = near_transition(DST_ZONES * 3 + ODD_ZONES, close=True)


@st.composite
def cron_cases(draw: st.DrawFn, where: st.SearchStrategy = zone_and_now):
    """(cron text, its field sets, zone, now), the hour field biased to ``where``'s."""
    zone, now, hours = draw(where)
    text, fields = draw(crons(hours))
    return text, fields, zone, now


def check_local_form(result: datetime, tz: ZoneInfo) -> None:
    """Results show the zone's local time with the fixed offset in force then; the
    DST situation is reported in hypothesis' statistics (--hypothesis-show-statistics)."""
    local = result.astimezone(tz)
    assert result.utcoffset() == local.utcoffset()
    assert result.replace(tzinfo=None) == local.replace(tzinfo=None)
    just_before = (result - timedelta(seconds=1)).astimezone(tz)
    if just_before.utcoffset() != local.utcoffset():
        event("result at an offset change")
    elif len(resolve(local.replace(tzinfo=None), tz, True)) == 2:
        event("result in a repeated hour")


# ---------------------------------------------------------------------- cron


@prop_settings(150)
@given(cron_cases())
def test_cron_next_run_is_the_first_matching_instant_after_now(case) -> None:
    text, fields, zone, now = case
    tz = ZoneInfo(zone)
    result = calculate_next_run_time(ScheduleSpec(cron=text, timezone=zone), now=now)
    expected = cron_oracle(fields, tz, now)
    assert result == expected, (text, zone, now, result, expected)
    if result is not None:
        assert result > now
        check_local_form(result, tz)


@prop_settings(150)
@given(cron_cases(just_before_change))
@example(
    (
        "0 12 31 2 *",
        {"minute": {0}, "hour": {12}, "dom": {31}, "month": {2}, "dow": None},
        "Pacific/Apia",
        datetime(1990, 5, 31, 23, 59, 59, tzinfo=UTC),
    )
)
def test_cron_next_runs_across_offset_changes_match_the_oracle(case) -> None:
    """Daily rules at hours a change skips or repeats, from shortly before it."""
    text, fields, zone, now = case
    tz, spec, previous = ZoneInfo(zone), ScheduleSpec(cron=text, timezone=zone), now
    for _ in range(3):
        result = calculate_next_run_time(spec, now=previous)
        assert result == cron_oracle(fields, tz, previous), (text, zone, previous)
        if result is None:  # a date that never exists, e.g. "0 12 31 2 *" (February 31)
            break
        assert result > previous
        check_local_form(result, tz)
        previous = result


@prop_settings(60)
@given(cron_cases(), st.datetimes(min_value=datetime(1980, 1, 1)))
def test_cron_chain_is_strictly_increasing_and_matches(case, last_run) -> None:
    text, fields, zone, now = case
    tz, spec = ZoneInfo(zone), ScheduleSpec(cron=text, timezone=zone)
    # last_run is documented as unused for cron: any value gives the same answer
    assert calculate_next_run_time(spec, last_run, now) == calculate_next_run_time(spec, now=now)
    previous = now
    for _ in range(4):
        result = calculate_next_run_time(spec, now=previous)
        if result is None:
            return
        assert result > previous
        assert result == cron_oracle(fields, tz, previous)
        # a slot skipped by the clock fires at the gap's end, which need not match
        offset_before = (result - timedelta(seconds=1)).astimezone(tz).utcoffset()
        at_gap_end = offset_before is not None and offset_before < result.utcoffset()
        assert at_gap_end or croniter.match(text, result.replace(tzinfo=None)), (text, zone)
        previous = result


@prop_settings(60)
@given(cron_cases())
def test_naive_now_is_a_wall_time_in_the_zone(case) -> None:
    """A naive ``now`` is read on the zone's clock; its ``fold`` picks the pass of a
    repeated time, so the local reading of any instant means that instant."""
    text, _, zone, now = case
    spec = ScheduleSpec(cron=text, timezone=zone)
    wall = now.astimezone(ZoneInfo(zone)).replace(tzinfo=None)  # keeps fold
    assert calculate_next_run_time(spec, now=wall) == calculate_next_run_time(spec, now=now)


# ---------------------------------------------------------------------- calendar


def calendar_entries(hours: tuple[int, ...]) -> st.SearchStrategy[CalendarSpec]:
    return st.builds(
        CalendarSpec,
        second=st.sampled_from([0, 0, 30, 59]),
        minute=st.one_of(st.sampled_from([0, 15, 30, 45]), st.integers(0, 59)),
        hour=st.one_of(st.sampled_from(hours[:2]), st.integers(0, 23)),
        day_of_month=st.one_of(st.none(), st.integers(1, 31)),
        month=st.one_of(st.none(), st.integers(1, 12)),
        day_of_week=st.one_of(st.none(), st.integers(0, 6)),
    )


@st.composite
def calendar_cases(draw: st.DrawFn):
    zone, now, hours = draw(st.one_of(zone_and_now, just_before_change))
    return draw(st.lists(calendar_entries(hours), min_size=1, max_size=3)), zone, now


@prop_settings(100)
@given(calendar_cases())
def test_calendar_chain_matches_the_oracle(case) -> None:
    entries, zone, now = case
    tz, spec = ZoneInfo(zone), ScheduleSpec(calendar=entries, timezone=zone)
    previous = now
    for _ in range(3):
        result = calculate_next_run_time(spec, now=previous)
        assert result == calendar_oracle(entries, tz, previous), (entries, zone, previous)
        if result is None:
            return
        assert result > previous
        check_local_form(result, tz)
        previous = result


# ---------------------------------------------------------------------- interval

interval_text = st.one_of(
    st.integers(1, 10**6).map(lambda n: f"{n}s"),
    st.tuples(st.integers(0, 3), st.integers(1, 59)).map(lambda t: f"{t[0]}h{t[1]}m"),
    st.sampled_from(["1h", "1d", "15m", "90m", "1w"]),
)
_INTERVAL_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds_of(text: str) -> int:
    total, number = 0, ""
    for char in text:
        if char.isdigit():
            number += char
        else:
            total, number = total + int(number) * _INTERVAL_SECONDS[char], ""
    return total


@prop_settings(100)
@given(interval_text, zone_and_now, st.integers(-(10**7), 10**7))
def test_interval_advances_by_whole_intervals(text, where, lag) -> None:
    zone, now, _ = where
    step = timedelta(seconds=seconds_of(text))
    spec = ScheduleSpec(interval=text, timezone=zone)
    assert calculate_next_run_time(spec, now=now) == now  # no last run: now
    last_run = now + timedelta(seconds=lag)
    result = calculate_next_run_time(spec, last_run=last_run, now=now)
    assert result is not None
    check_local_form(result, ZoneInfo(zone))
    whole, rest = divmod(result - last_run, step)
    assert rest == timedelta(0) and whole >= 1
    assert result >= now and (whole == 1 or result - step < now)


@prop_settings(60)
@given(interval_text, zone_and_now)
def test_interval_chain_is_exactly_spaced_in_absolute_time(text, where) -> None:
    zone, now, _ = where
    spec, step = ScheduleSpec(interval=text, timezone=zone), timedelta(seconds=seconds_of(text))
    times = [now]
    for _ in range(4):
        times.append(calculate_next_run_time(spec, last_run=times[-1], now=times[-1]))
    assert all(b - a == step for a, b in itertools.pairwise(times))


# ---------------------------------------------------------------------- DST policy


def _runs_around(spec: ScheduleSpec, change: datetime, count: int) -> list[datetime]:
    moment, runs = change - timedelta(days=1, hours=1), []
    for _ in range(count):
        nxt = calculate_next_run_time(spec, now=moment)
        assert nxt is not None
        runs.append(nxt)
        moment = nxt
    return runs


@prop_settings(60)
@given(st.sampled_from(DST_ZONES), st.integers(1990, 2035), st.data())
def test_fixed_time_rules_fire_once_per_day_across_transitions(zone, year, data) -> None:
    """A daily slot at a skipped time fires after the gap that day; at a repeated time
    it fires once. Slot times are drawn around the transition's local hour."""
    tz = ZoneInfo(zone)
    change = data.draw(st.sampled_from(transitions(zone, year)))
    hour = (change.astimezone(tz) - timedelta(hours=1)).hour
    minute = data.draw(st.sampled_from([0, 15, 29, 30, 31, 45, 59]))
    hour = data.draw(st.sampled_from([hour, (hour + 1) % 24]))
    runs = _runs_around(ScheduleSpec(cron=f"{minute} {hour} * * *", timezone=zone), change, 3)
    days = [r.date() for r in runs]
    assert len(set(days)) == 3, runs  # one run per local day: none lost, none doubled
    assert all((b - a) < timedelta(hours=26) for a, b in itertools.pairwise(runs))
    for run in runs:
        expected_wall = datetime.combine(run.date(), time(hour, minute))
        assert resolve(expected_wall, tz, False) == [run.astimezone(UTC)]


@prop_settings(40)
@given(st.sampled_from(("Europe/Berlin", "America/New_York")), st.integers(1990, 2035))
def test_hourly_rules_stay_one_hour_apart_across_transitions(zone, year) -> None:
    for change in transitions(zone, year):
        runs = _runs_around(ScheduleSpec(cron="7 * * * *", timezone=zone), change, 50)
        assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(runs))
