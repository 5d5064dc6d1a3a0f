"""Wall-clock arithmetic in an IANA time zone, and calendar-slot matching.

Helpers for :mod:`pyworkflow.utils.schedule`. Schedules are written in local wall-clock
time ("09:00 in Europe/Berlin") but fire at absolute instants, and the two do not map
one-to-one around daylight-saving transitions:

* in a **gap** (spring forward) a wall time such as 02:30 does not exist; it resolves to the
  first instant after the gap (03:00 local), see :func:`wall_to_instants`;
* in an **overlap** (fall back) a wall time such as 02:30 happens twice; fixed-time rules
  take the first occurrence only, "every hour" rules take both.

All instants returned here are aware datetimes in UTC: comparing or subtracting aware
datetimes that share a ``ZoneInfo`` ignores ``fold`` and the offset, so every comparison
is done in UTC.

Example:
    >>> from datetime import datetime
    >>> berlin = load_zone("Europe/Berlin")
    >>> [t.isoformat() for t in wall_to_instants(datetime(2026, 3, 29, 2, 30), berlin)]
    ['2026-03-29T01:00:00+00:00']
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyworkflow.storage.schemas import CalendarSpec

__all__ = [
    "CALENDAR_SEARCH_DAYS",
    "calendar_next",
    "check_calendar_entry",
    "fold_shift",
    "load_zone",
    "to_utc",
    "wall_to_instants",
]

# How far ahead a calendar search looks before concluding that nothing ever matches.
CALENDAR_SEARCH_DAYS = 366

_RANGES: dict[str, tuple[int, int]] = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day_of_month": (1, 31),
    "month": (1, 12),
    "day_of_week": (0, 6),
}


def load_zone(name: str) -> ZoneInfo:
    """Return the ``ZoneInfo`` for an IANA name, or raise ``ValueError`` saying how to fix it.

    Example:
        >>> load_zone("America/New_York").key
        'America/New_York'
        >>> load_zone("Mars/Olympus")
        Traceback (most recent call last):
        ...
        ValueError: Unknown timezone 'Mars/Olympus'. ...
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"Unknown timezone {name!r}. Use an IANA time zone name such as 'UTC', "
            "'Europe/Berlin' or 'America/New_York' (install the 'tzdata' package if "
            "this system has no time zone database)."
        ) from None


def fold_shift(wall: datetime, tz: ZoneInfo) -> timedelta:
    """Offset of ``fold=0`` minus offset of ``fold=1`` for a naive wall time.

    Positive in an overlap (the wall time happens twice; the value is the overlap
    length), negative in a gap (the wall time does not exist), zero otherwise.

    Example:
        >>> berlin = load_zone("Europe/Berlin")
        >>> fold_shift(datetime(2026, 10, 25, 2, 30), berlin).total_seconds()
        3600.0
        >>> fold_shift(datetime(2026, 3, 29, 2, 30), berlin).total_seconds()
        -3600.0
    """
    first = wall.replace(tzinfo=tz, fold=0).utcoffset()
    second = wall.replace(tzinfo=tz, fold=1).utcoffset()
    assert first is not None and second is not None  # a ZoneInfo always has an offset
    return first - second


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    # Within a gap, fold=1 reads the wall time with the offset after the transition and
    # fold=0 with the one before; the transition instant lies between the two readings.
    # Transitions happen on whole seconds, so a binary search on seconds finds it.
    a = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    b = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    low, high = min(a, b), max(a, b)
    after = high.astimezone(tz).utcoffset()
    lo, hi = int(low.timestamp()), int(high.timestamp()) + 1
    while hi - lo > 1:  # invariant: offset at lo differs from `after`, offset at hi equals it
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def wall_to_instants(wall: datetime, tz: ZoneInfo, *, every_hour: bool = False) -> list[datetime]:
    """The UTC instants at which a naive wall time happens in ``tz``, earliest first.

    Fixed-time rules (``every_hour=False``): a wall time in a gap gives the first instant
    after the gap; a wall time in an overlap gives only its first occurrence. Rules that
    fire every hour follow absolute time instead: a wall time in a gap gives nothing
    (the hours around it still fire) and one in an overlap gives both occurrences.

    Example:
        >>> ny = load_zone("America/New_York")
        >>> [t.hour for t in wall_to_instants(datetime(2026, 11, 1, 1, 30), ny)]
        [5]
        >>> [t.hour for t in wall_to_instants(datetime(2026, 11, 1, 1, 30), ny, every_hour=True)]
        [5, 6]
        >>> wall_to_instants(datetime(2026, 3, 8, 2, 30), ny, every_hour=True)
        []
    """
    wall = wall.replace(tzinfo=None, fold=0)
    shift = fold_shift(wall, tz)
    if shift < timedelta(0):
        return [] if every_hour else [_gap_end(wall, tz)]
    first = wall.replace(tzinfo=tz).astimezone(UTC)
    if shift > timedelta(0) and every_hour:
        return [first, wall.replace(tzinfo=tz, fold=1).astimezone(UTC)]
    return [first]


def to_utc(moment: datetime, tz: ZoneInfo) -> datetime:
    """Convert to an aware UTC datetime; a naive value is a wall time in ``tz``.

    A naive wall time in a gap means the first instant after the gap; in an overlap its
    ``fold`` picks the occurrence (0, the default, is the first).

    Example:
        >>> berlin = load_zone("Europe/Berlin")
        >>> to_utc(datetime(2026, 7, 1, 9, 0), berlin).isoformat()
        '2026-07-01T07:00:00+00:00'
        >>> to_utc(datetime(2026, 10, 25, 2, 30, fold=1), berlin).isoformat()
        '2026-10-25T01:30:00+00:00'
    """
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        return moment.astimezone(UTC)
    if fold_shift(moment, tz) < timedelta(0):
        return _gap_end(moment, tz)
    return moment.replace(tzinfo=tz).astimezone(UTC)


def check_calendar_entry(entry: CalendarSpec, index: int = 0) -> None:
    """Raise ``ValueError`` naming the field when a ``CalendarSpec`` value is out of range.

    Example:
        >>> check_calendar_entry(CalendarSpec(hour=24))
        Traceback (most recent call last):
        ...
        ValueError: Invalid calendar entry #0: hour=24 is out of range 0-23.
    """
    if not isinstance(entry, CalendarSpec):
        raise ValueError(
            f"Invalid calendar entry #{index}: expected a CalendarSpec, got {type(entry).__name__}."
        )
    for name, (low, high) in _RANGES.items():
        value = getattr(entry, name)
        if value is None and name in ("day_of_month", "month", "day_of_week"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(
                f"Invalid calendar entry #{index}: {name}={value!r} is out of range {low}-{high}."
            )


def _day_matches(entry: CalendarSpec, day: date) -> bool:
    return (
        (entry.month is None or day.month == entry.month)
        and (entry.day_of_month is None or day.day == entry.day_of_month)
        and (entry.day_of_week is None or day.weekday() == entry.day_of_week)
    )


def calendar_next(
    entries: Sequence[CalendarSpec], tz: ZoneInfo, after: datetime
) -> datetime | None:
    """The earliest calendar slot strictly after the instant ``after``, in UTC.

    Days are searched in the zone's wall-clock calendar from the day of ``after`` up to
    :data:`CALENDAR_SEARCH_DAYS` ahead; ``None`` when nothing matches in that window.
    Slots are fixed times of day, so the gap and overlap rules of
    :func:`wall_to_instants` for fixed-time rules apply.

    Example:
        >>> utc = load_zone("UTC")
        >>> calendar_next([CalendarSpec(day_of_month=1)], utc, datetime(2026, 5, 17, tzinfo=UTC))
        datetime.datetime(2026, 6, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    for index, entry in enumerate(entries):
        check_calendar_entry(entry, index)
    first_day = after.astimezone(tz).date()
    for offset in range(CALENDAR_SEARCH_DAYS + 1):
        day = first_day + timedelta(days=offset)
        found = [
            instant
            for entry in entries
            if _day_matches(entry, day)
            for instant in wall_to_instants(
                datetime.combine(day, time(entry.hour, entry.minute, entry.second)), tz
            )
            if instant > after
        ]
        # With fixed-time rules the instant grows with the wall time, so the first day
        # holding a later slot holds the earliest one.
        if found:
            return min(found)
    return None
