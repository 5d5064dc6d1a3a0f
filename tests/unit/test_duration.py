"""Tests for pyworkflow.utils.duration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from pyworkflow.utils.duration import (
    duration_to_timedelta,
    format_duration,
    parse_duration,
    parse_duration_seconds,
    parse_duration_string,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0),
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("90M", 5400),
        ("  45s\n", 45),
        ("1H30M", 5400),
        ("1h30m", 5400),
        ("2d12h", 216000),
        ("1m30s", 90),
        ("1w2d3h4m5s", 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        ("1w5s", 604805),
        ("007s", 7),
    ],
)
def test_duration_strings(text: str, seconds: int) -> None:
    assert parse_duration_string(text) == seconds
    assert parse_duration(text) == seconds
    assert parse_duration_seconds(text) == float(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "1.5h",
        "5x",
        "",
        "   ",
        "h",
        "1h 30m",
        "30m1h",
        "1h1h",
        "-5s",
        "5",
        "s5",
        "+5s",
        "1h30",
        "٣s",
    ],
)
def test_invalid_duration_strings(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert message.startswith(f"Invalid duration format: {text!r}.")
    assert "<number><unit>" in message and "s, m, h, d, w" in message and "'1h30m'" in message


def test_numbers() -> None:
    assert parse_duration(0) == 0
    assert parse_duration(45) == 45
    assert parse_duration(2.9) == 2
    assert parse_duration_seconds(2.5) == 2.5
    assert parse_duration_seconds(3) == 3.0


def test_timedeltas_keep_fractions() -> None:
    assert parse_duration(timedelta(hours=1)) == 3600
    assert parse_duration(timedelta(seconds=1.75)) == 1
    assert parse_duration_seconds(timedelta(milliseconds=1500)) == 1.5


@pytest.mark.parametrize("value", [-1, -0.5, timedelta(seconds=-1), float("nan"), float("inf")])
def test_negative_or_non_finite_values_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError, match="Invalid duration"):
        parse_duration_seconds(value)


@pytest.mark.parametrize("value", [True, False, None, [1], {"s": 1}, b"5s"])
def test_wrong_types_raise_type_error(value: Any) -> None:
    with pytest.raises(TypeError):
        parse_duration(value)


def test_parse_duration_string_requires_a_string() -> None:
    with pytest.raises(TypeError):
        parse_duration_string(5)  # type: ignore[arg-type]


def test_aware_datetime_gives_seconds_until_it() -> None:
    target = datetime.now(UTC) + timedelta(seconds=100)
    assert 98 <= parse_duration_seconds(target) <= 100
    assert 98 <= parse_duration(target) <= 100


def test_datetime_in_other_timezone() -> None:
    plus_two = timezone(timedelta(hours=2))
    target = datetime.now(plus_two) + timedelta(minutes=10)
    assert 598 <= parse_duration_seconds(target) <= 600


def test_naive_datetime_is_utc() -> None:
    target = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=60)
    assert 58 <= parse_duration_seconds(target) <= 60


def test_past_datetime_floors_at_zero() -> None:
    assert parse_duration_seconds(datetime.now(UTC) - timedelta(hours=1)) == 0.0
    assert parse_duration(datetime(2000, 1, 1)) == 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (59.9, "59s"),
        (60, "1m"),
        (90, "1m"),
        (3599, "59m"),
        (7200, "2h"),
        (86400 + 3600, "1d"),
        (604800, "1w"),
        (1209600, "2w"),
        (0.4, "0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        format_duration(-5)
    with pytest.raises(TypeError):
        format_duration(True)
    with pytest.raises(TypeError):
        format_duration("5s")  # type: ignore[arg-type]


def test_duration_to_timedelta() -> None:
    assert duration_to_timedelta("1h30m") == timedelta(minutes=90)
    assert duration_to_timedelta(90) == timedelta(seconds=90)
    assert duration_to_timedelta(0.25) == timedelta(milliseconds=250)
    assert duration_to_timedelta(timedelta(days=1)) == timedelta(days=1)
    with pytest.raises(ValueError, match="Invalid duration format"):
        duration_to_timedelta("soon")
