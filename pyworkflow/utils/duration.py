"""Duration parsing and formatting.

A duration is a string such as ``"30s"``, ``"5m"`` or the compound ``"1h30m"``
(units s, m, h, d, w, case-insensitive, in descending order, each at most once), a
number of seconds, a ``timedelta``, or a ``datetime`` meaning "until then".

Example:
    >>> parse_duration("1h30m")
    5400
    >>> format_duration(5400)
    '1h'
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

__all__ = [
    "UNIT_SECONDS",
    "duration_to_timedelta",
    "format_duration",
    "parse_duration",
    "parse_duration_seconds",
    "parse_duration_string",
]

UNIT_SECONDS: dict[str, int] = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}

# One optional group per unit, in descending order, so "1h30m" matches and "30m1h" or
# "1h1h" do not. [0-9] rather than \d: \d also matches non-ASCII digits.
_DURATION_RE = re.compile(
    r"(?:(?P<w>[0-9]+)w)?(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?"
    r"(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?",
    # ASCII: without it IGNORECASE folds e.g. U+017F (long s) onto "s".
    re.IGNORECASE | re.ASCII,
)

_EXPECTED = (
    "Expected format: <number><unit> with units s, m, h, d, w, optionally combined "
    "largest unit first (e.g. '30s', '5m', '1h30m')."
)


def parse_duration_string(s: str) -> int:
    """Parse a duration string to whole seconds.

    Raises ``ValueError`` naming the value for anything else (decimals, spaces inside,
    unknown units, units out of order); ``TypeError`` for a non-string.

    Example:
        >>> parse_duration_string("2d12h")
        216000
        >>> parse_duration_string(" 45S ")
        45
    """
    if not isinstance(s, str):
        raise TypeError(f"Duration string expected, got {type(s).__name__}: {s!r}")
    text = s.strip()
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None or not any(match.groupdict().values()):
        raise ValueError(f"Invalid duration format: {s!r}. {_EXPECTED}")
    return sum(
        int(amount) * UNIT_SECONDS[unit]
        for unit, amount in match.groupdict().items()
        if amount is not None
    )


def _seconds_until(moment: datetime) -> float:
    # Naive datetimes are taken as UTC, matching how the engine stores times.
    target = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return max(0.0, (target - datetime.now(UTC)).total_seconds())


def _check_number(value: float, original: object) -> float:
    if not math.isfinite(value):
        raise ValueError(f"Invalid duration: {original!r}. It must be a finite number.")
    if value < 0:
        raise ValueError(f"Invalid duration: {original!r}. It must not be negative.")
    return value


def parse_duration_seconds(value: str | int | float | timedelta | datetime) -> float:
    """Parse a duration to seconds, keeping fractions.

    Numbers and timedeltas keep their fractional part; a datetime gives the seconds
    until it (floored at 0; naive means UTC). Negative values raise ``ValueError``;
    bools and other types raise ``TypeError``.

    Example:
        >>> parse_duration_seconds(1.5)
        1.5
        >>> parse_duration_seconds(timedelta(milliseconds=250))
        0.25
        >>> parse_duration_seconds("1m30s")
        90.0
    """
    if isinstance(value, bool):
        raise TypeError(f"Invalid duration: {value!r}. A bool is not a duration.")
    if isinstance(value, str):
        return float(parse_duration_string(value))
    if isinstance(value, int | float):
        return _check_number(float(value), value)
    if isinstance(value, datetime):  # before timedelta checks; datetime is not one
        return _seconds_until(value)
    if isinstance(value, timedelta):
        return _check_number(value.total_seconds(), value)
    raise TypeError(
        f"Invalid duration type {type(value).__name__}: {value!r}. Expected a string "
        "such as '5m', a number of seconds, a timedelta or a datetime."
    )


def parse_duration(value: str | int | float | timedelta | datetime) -> int:
    """Parse a duration to whole seconds (fractions are dropped).

    Same rules as :func:`parse_duration_seconds`.

    Example:
        >>> parse_duration("5m")
        300
        >>> parse_duration(timedelta(hours=1))
        3600
        >>> parse_duration(2.9)
        2
    """
    return int(parse_duration_seconds(value))


def format_duration(seconds: int | float) -> str:
    """Format seconds with the largest unit that fits, floored.

    Example:
        >>> format_duration(7200), format_duration(90), format_duration(45), format_duration(0)
        ('2h', '1m', '45s', '0s')
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"Number of seconds expected, got {type(seconds).__name__}")
    whole = int(_check_number(float(seconds), seconds))
    for unit, size in UNIT_SECONDS.items():
        if whole >= size:
            return f"{whole // size}{unit}"
    return "0s"


def duration_to_timedelta(value: str | int | float | timedelta | datetime) -> timedelta:
    """Convert any accepted duration to a ``timedelta`` (fractions kept).

    Example:
        >>> duration_to_timedelta("1h30m")
        datetime.timedelta(seconds=5400)
    """
    return timedelta(seconds=parse_duration_seconds(value))
