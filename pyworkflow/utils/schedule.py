"""Schedule time arithmetic: next run, backfill, validation and description. No I/O.

Times are computed in the spec's time zone (an IANA name, ``"UTC"`` by default). Naive
datetimes passed in (``now``, ``last_run``, ``start_at``, ``end_at``, backfill bounds) are
wall-clock times in that zone. Results are aware datetimes showing the zone's local time
with a fixed UTC offset (``2026-03-29T09:00:00+02:00`` for Europe/Berlin), not a
``ZoneInfo``: a ``ZoneInfo`` datetime in a repeated hour compares unequal to every other
zone's datetime (PEP 495) and loses its ``fold`` on arithmetic, which makes a scheduler
fire the same hour twice. Use ``.astimezone(ZoneInfo(spec.timezone))`` for the zone.

Daylight saving. Cron and calendar rules are matched against the zone's wall clock. A rule
that fires at a fixed time of day (its hour field does not cover every hour) fires once per
matching wall time: when that time does not exist (spring forward, 02:30 in Europe/Berlin
on 2026-03-29) it fires at the first instant after the gap (03:00 local), so the day's run
is never lost; when the time happens twice (fall back, 02:30 on 2026-10-25) it fires at the
first occurrence only. A rule whose hour field covers every hour (``0 * * * *``,
``*/15 * * * *``) follows absolute time, like classic cron: it fires in both occurrences of
a repeated hour and has nothing to fire in a skipped one, so runs stay an hour apart and
no instant fires twice. Interval schedules add absolute durations and ignore DST.

Example:
    >>> spec = ScheduleSpec(cron="0 9 * * *", timezone="Europe/Berlin")
    >>> calculate_next_run_time(spec, now=datetime(2026, 3, 28, 10, 0)).isoformat()
    '2026-03-29T09:00:00+02:00'
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from pyworkflow.storage.schemas import CalendarSpec, ScheduleSpec
from pyworkflow.utils.calendar_match import (
    calendar_next,
    check_calendar_entry,
    fold_shift,
    load_zone,
    to_utc,
    wall_to_instants,
)
from pyworkflow.utils.duration import parse_duration_seconds

__all__ = [
    "MAX_BACKFILL_RUNS",
    "calculate_backfill_times",
    "calculate_next_run_time",
    "describe_schedule",
    "validate_cron_expression",
    "validate_spec",
]

MAX_BACKFILL_RUNS = 10_000

_TICK = timedelta(microseconds=1)
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CRON_HINT = (
    "Use 5 fields: minute hour day-of-month month day-of-week (e.g. '0 9 * * *' or "
    "'*/15 * * * MON-FRI'), or an alias such as '@daily'."
)


def validate_cron_expression(expr: str) -> bool:
    """Whether ``expr`` is a valid 5-field cron expression (or an alias like ``@daily``).

    Parsing is croniter's. Six-field expressions are rejected: croniter reads a sixth field
    as seconds *after* the day-of-week while Quartz-style tools put seconds first, so
    ``0 0 9 * * *`` would silently mean something else. Use an interval or a calendar entry
    (which has seconds) for sub-minute schedules.

    Example:
        >>> validate_cron_expression("0 9 * * MON-FRI"), validate_cron_expression("@hourly")
        (True, True)
        >>> validate_cron_expression("60 * * * *"), validate_cron_expression("0 9 * * * 30")
        (False, False)
    """
    if not isinstance(expr, str):
        return False
    fields = expr.split()
    if not (len(fields) == 5 or (len(fields) == 1 and fields[0].startswith("@"))):
        return False
    try:
        return bool(croniter.is_valid(expr))
    except Exception:  # croniter raises assorted errors on odd input; all mean "invalid"
        return False


@dataclass(frozen=True)
class _Plan:
    """A validated spec: the rule in effect (cron > interval > calendar) and its bounds."""

    tz: ZoneInfo
    cron: croniter[float] | None
    every_hour: bool
    interval: timedelta | None
    calendar: list[CalendarSpec] | None
    start: datetime | None
    end: datetime | None
    jitter: int


def _duration(value: str, what: str) -> float:
    try:
        return parse_duration_seconds(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Invalid {what} {value!r}: {exc}") from None


def _plan(spec: ScheduleSpec) -> _Plan | None:
    """Validate every field that is set; ``None`` when no rule is set."""
    if not (spec.cron or spec.interval or spec.calendar):
        return None
    tz = load_zone(spec.timezone)
    cron = None
    if spec.cron:
        if not validate_cron_expression(spec.cron):
            raise ValueError(f"Invalid cron expression: {spec.cron}. {_CRON_HINT}")
        cron = croniter(spec.cron, datetime(2000, 1, 1, tzinfo=UTC))
    interval = None
    if spec.interval:
        seconds = _duration(spec.interval, "interval")
        if seconds <= 0:
            raise ValueError(f"Invalid interval {spec.interval!r}: it must be longer than 0s.")
        interval = timedelta(seconds=seconds)
    for index, entry in enumerate(spec.calendar or []):
        check_calendar_entry(entry, index)
    jitter = int(_duration(spec.jitter, "jitter")) if spec.jitter else 0
    hours = cron.expanded[1] if cron is not None else []
    return _Plan(
        tz=tz,
        cron=cron,
        every_hour=hours == ["*"] or len(set(hours)) == 24,
        interval=interval if cron is None else None,
        calendar=spec.calendar if cron is None and interval is None else None,
        start=to_utc(spec.start_at, tz) if spec.start_at is not None else None,
        end=to_utc(spec.end_at, tz) if spec.end_at is not None else None,
        jitter=jitter,
    )


def _cron_after(plan: _Plan, itr: croniter[float], after: datetime) -> datetime | None:
    """The first cron slot strictly after the UTC instant ``after``, in UTC."""
    tz, every_hour = plan.tz, plan.every_hour
    local = after.astimezone(tz)
    wall = local.replace(tzinfo=None, fold=0)
    shift = fold_shift(wall, tz)
    if every_hour and local.fold == 0 and shift > timedelta(0):
        # In the first pass of a repeated hour, second-pass slots at earlier wall times
        # are still in the future: start matching from the beginning of the repeat.
        wall -= shift
    # croniter matches the wall clock as if it were UTC, which has no DST; the resulting
    # wall times are resolved to instants here, where the DST policy lives.
    itr.set_current(wall.replace(tzinfo=UTC), force=True)
    best: datetime | None = None
    horizon: datetime | None = None
    try:
        while True:
            candidate = itr.get_next(datetime).replace(tzinfo=None)
            if horizon is not None and candidate > horizon:
                return best
            for instant in wall_to_instants(candidate, tz, every_hour=every_hour):
                if instant > after and (best is None or instant < best):
                    best = instant
            if best is not None and horizon is None:
                # Instants grow with wall times except inside a repeated hour, where a
                # later wall time's first pass can precede this one's second pass.
                extra = max(fold_shift(candidate, tz), timedelta(0)) if every_hour else None
                if not extra:
                    return best
                horizon = candidate + extra
    except CroniterBadDateError:  # the expression never matches again (e.g. 31 February)
        return best


def _local(instant: datetime, tz: ZoneInfo) -> datetime:
    """The local time of an instant in ``tz``, with the fixed offset in force then."""
    local = instant.astimezone(tz)
    offset = local.utcoffset()
    assert offset is not None  # a ZoneInfo always has an offset
    return local.replace(tzinfo=timezone(offset), fold=0)


def _slot_after(plan: _Plan, after: datetime) -> datetime | None:
    """The first cron or calendar slot strictly after the UTC instant ``after``."""
    if plan.cron is not None:
        return _cron_after(plan, plan.cron, after)
    return calendar_next(plan.calendar or [], plan.tz, after)


def _interval_next(step: timedelta, base: datetime, last_run: datetime | None) -> datetime:
    if last_run is None:
        return base
    result = last_run + step
    if result < base:  # fell behind: skip to the first slot at or after the base
        lag, size = (base - result) // _TICK, step // _TICK
        result += step * -(-lag // size)
    return result


def calculate_next_run_time(
    spec: ScheduleSpec,
    last_run: datetime | None = None,
    now: datetime | None = None,
    *,
    rng: random.Random | None = None,
) -> datetime | None:
    """When the schedule should fire next, or ``None`` when it never will.

    * base: ``now`` (default: the current time), or ``start_at`` while that is later;
    * cron / calendar: the first slot strictly after ``now`` and not before ``start_at``,
      matched on the zone's wall clock (see the module docstring for DST);
      ``last_run`` is not used;
    * interval: the base itself when ``last_run`` is None, else ``last_run + interval``,
      moved forward by whole intervals to the first slot at or after the base if it lags;
    * ``None`` once ``now >= end_at``, when the slot would be ``>= end_at``, when a calendar
      matches nothing within 366 days, or when no rule is set;
    * jitter adds a random whole number of seconds in ``[0, jitter]`` (pass ``rng`` to make
      it reproducible); ``end_at`` is checked before jitter is added.

    The result is aware: local time in the spec's zone with its fixed UTC offset (see
    the module docstring). Invalid fields raise ``ValueError``
    (see :func:`validate_spec`). When several rules are set, cron wins over interval and
    interval over calendar.

    Example:
        >>> spec = ScheduleSpec(cron="0 9 * * *")
        >>> calculate_next_run_time(spec, now=datetime(2026, 1, 5, 8, 0)).isoformat()
        '2026-01-05T09:00:00+00:00'
        >>> hourly = ScheduleSpec(interval="1h", timezone="America/New_York")
        >>> calculate_next_run_time(hourly, last_run=datetime(2026, 3, 8, 1, 30),
        ...                         now=datetime(2026, 3, 8, 1, 45)).isoformat()
        '2026-03-08T03:30:00-04:00'
        >>> calculate_next_run_time(ScheduleSpec()) is None
        True
    """
    plan = _plan(spec)
    if plan is None:
        return None
    current = datetime.now(UTC) if now is None else to_utc(now, plan.tz)
    if plan.end is not None and current >= plan.end:
        return None
    if plan.interval is not None:
        base = current if plan.start is None else max(current, plan.start)
        last = None if last_run is None else to_utc(last_run, plan.tz)
        result: datetime | None = _interval_next(plan.interval, base, last)
    elif plan.start is not None and current < plan.start:
        result = _slot_after(plan, plan.start - _TICK)  # a slot at start_at itself counts
    else:
        result = _slot_after(plan, current)
    if result is None or (plan.end is not None and result >= plan.end):
        return None
    if plan.jitter:
        draw = rng.randint if rng is not None else random.randint
        result += timedelta(seconds=draw(0, plan.jitter))
    return _local(result, plan.tz)


def calculate_backfill_times(spec: ScheduleSpec, start: datetime, end: datetime) -> list[datetime]:
    """Every scheduled time in ``[start, end)``, oldest first, without jitter.

    The range is also clipped to the spec's ``[start_at, end_at)``. Interval schedules
    count from ``start``. At most :data:`MAX_BACKFILL_RUNS` (10,000) times are returned;
    an empty or inverted range, or an empty spec, gives ``[]``. Naive bounds are wall
    times in the spec's zone; results are aware, as for :func:`calculate_next_run_time`.

    Example:
        >>> spec = ScheduleSpec(cron="0 9 * * *")
        >>> times = calculate_backfill_times(spec, datetime(2026, 1, 1), datetime(2026, 1, 5))
        >>> [t.strftime("%m-%d %H:%M") for t in times]
        ['01-01 09:00', '01-02 09:00', '01-03 09:00', '01-04 09:00']
        >>> calculate_backfill_times(spec, datetime(2026, 1, 5), datetime(2026, 1, 1))
        []
    """
    plan = _plan(spec)
    if plan is None:
        return []
    low, high = to_utc(start, plan.tz), to_utc(end, plan.tz)
    if plan.start is not None:
        low = max(low, plan.start)
    if plan.end is not None:
        high = min(high, plan.end)
    times: list[datetime] = []
    if plan.interval is not None:
        moment: datetime | None = low
    else:
        moment = _slot_after(plan, low - _TICK)
    while moment is not None and moment < high and len(times) < MAX_BACKFILL_RUNS:
        times.append(_local(moment, plan.tz))
        moment = moment + plan.interval if plan.interval is not None else _slot_after(plan, moment)
    return times


def validate_spec(spec: ScheduleSpec) -> None:
    """Raise ``ValueError`` with a clear message when ``spec`` cannot be scheduled.

    Checks: one of cron, interval or calendar is set; the cron expression parses; the
    interval and jitter are durations (interval > 0); the time zone exists; calendar
    values are in range; ``start_at`` is before ``end_at``.

    Example:
        >>> validate_spec(ScheduleSpec(interval="1h30m", timezone="Asia/Tokyo"))
        >>> validate_spec(ScheduleSpec(cron="0 9 * *"))
        Traceback (most recent call last):
        ...
        ValueError: Invalid cron expression: 0 9 * *. Use 5 fields: ...
    """
    plan = _plan(spec)
    if plan is None:
        raise ValueError(
            "A schedule needs one of cron, interval or calendar, e.g. "
            "ScheduleSpec(cron='0 9 * * *'), ScheduleSpec(interval='15m') or "
            "ScheduleSpec(calendar=[CalendarSpec(hour=9)])."
        )
    if plan.start is not None and plan.end is not None and plan.start >= plan.end:
        raise ValueError(
            f"start_at ({spec.start_at}) must be before end_at ({spec.end_at}); "
            "as given the schedule would never fire."
        )


def _name(names: tuple[str, ...], index: int) -> str:
    return names[index] if 0 <= index < len(names) else f"#{index}"  # unvalidated value


def _describe_entry(entry: CalendarSpec) -> str:
    clock = f"{entry.hour:02d}:{entry.minute:02d}:{entry.second:02d}"
    day = " ".join(
        part
        for part in (
            _name(_DAY_NAMES, entry.day_of_week) if entry.day_of_week is not None else "",
            f"Day {entry.day_of_month}" if entry.day_of_month is not None else "",
        )
        if part
    )
    if entry.month is not None:
        month = _name(_MONTH_NAMES, entry.month - 1)
        day = (
            f"{day} of {month}"
            if entry.day_of_month is not None
            else f"{day or 'Daily'} in {month}"
        )
    return f"{day} at {clock}" if day else clock


def describe_schedule(spec: ScheduleSpec) -> str:
    """A one-line human description of the rule in effect and its time zone.

    Example:
        >>> describe_schedule(ScheduleSpec(cron="0 9 * * *", timezone="Europe/Berlin"))
        'Cron: 0 9 * * * (Europe/Berlin)'
        >>> describe_schedule(ScheduleSpec(interval="15m"))
        'Every 15m (UTC)'
        >>> describe_schedule(ScheduleSpec(calendar=[
        ...     CalendarSpec(hour=9), CalendarSpec(hour=17, minute=30, day_of_week=4),
        ...     CalendarSpec(day_of_month=1, month=1)]))
        'Calendar: 09:00:00, Fri at 17:30:00, Day 1 of Jan at 00:00:00 (UTC)'
        >>> describe_schedule(ScheduleSpec())
        'No schedule defined'
    """
    if spec.cron:
        return f"Cron: {spec.cron} ({spec.timezone})"
    if spec.interval:
        return f"Every {spec.interval} ({spec.timezone})"
    if spec.calendar:
        entries = ", ".join(_describe_entry(entry) for entry in spec.calendar)
        return f"Calendar: {entries} ({spec.timezone})"
    return "No schedule defined"
