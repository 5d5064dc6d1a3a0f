"""Schedule spec validation and descriptions (API.md §7.3): which cron expressions are
valid, the errors ``validate_spec`` gives, and ``describe_schedule``'s wording.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pyworkflow.storage.schemas import CalendarSpec, ScheduleSpec
from pyworkflow.utils.schedule import (
    calculate_next_run_time,
    describe_schedule,
    validate_cron_expression,
    validate_spec,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- validate_cron_expression, validate_spec, describe_schedule ----------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "* * *",
        "60 * * * *",
        "* 25 * * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * * 8",
        "invalid",
        "0 9 * * * 30",
        "0 0 9 * * * 2026",
        "@reboot",
        "0 9 * * FUNDAY",
    ],
)
def test_invalid_cron_expressions(expr: str) -> None:
    assert validate_cron_expression(expr) is False


@pytest.mark.parametrize(
    "expr",
    [
        "* * * * *",
        "0 9 * * *",
        "*/15 * * * *",
        "0 9 * * MON-FRI",
        "0 0 1 1 *",
        "59 23 31 12 7",
        "0 0 L * *",
        "@daily",
        "@hourly",
        "  0 9 * * 1-5  ",
    ],
)
def test_valid_cron_expressions(expr: str) -> None:
    assert validate_cron_expression(expr) is True


def test_validate_cron_rejects_non_strings() -> None:
    assert validate_cron_expression(None) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ScheduleSpec(), "needs one of cron, interval or calendar"),
        (ScheduleSpec(cron="0 9 * *"), "Invalid cron expression: 0 9 \\* \\*"),
        (ScheduleSpec(interval="soon"), "Invalid interval 'soon'"),
        (ScheduleSpec(interval="0s"), "longer than 0s"),
        (
            ScheduleSpec(cron="0 9 * * *", timezone="Mars/Olympus"),
            "Unknown timezone 'Mars/Olympus'.*IANA",
        ),
        (ScheduleSpec(calendar=[CalendarSpec(hour=9), CalendarSpec(minute=60)]), "#1: minute=60"),
        (ScheduleSpec(calendar=[CalendarSpec(day_of_week=7)]), "day_of_week=7 is out of range 0-6"),
        (ScheduleSpec(calendar=[CalendarSpec(month=0)]), "month=0"),
        (ScheduleSpec(calendar=[CalendarSpec(day_of_month=32)]), "day_of_month=32"),
        (
            ScheduleSpec(interval="1h", start_at=utc(2026, 2, 1), end_at=utc(2026, 1, 1)),
            "start_at .* before end_at",
        ),
        (
            ScheduleSpec(interval="1h", start_at=utc(2026, 1, 1), end_at=utc(2026, 1, 1)),
            "before end_at",
        ),
        (ScheduleSpec(interval="1h", jitter="a bit"), "Invalid jitter 'a bit'"),
    ],
)
def test_validate_spec_errors(spec: ScheduleSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_spec(spec)


def test_validate_spec_accepts_good_specs() -> None:
    validate_spec(ScheduleSpec(cron="0 9 * * *", timezone="Europe/Berlin", jitter="30s"))
    validate_spec(ScheduleSpec(interval="1h30m", start_at=utc(2026, 1, 1), end_at=utc(2026, 2, 1)))
    validate_spec(
        ScheduleSpec(calendar=[CalendarSpec(second=59, minute=59, hour=23, day_of_week=6)])
    )


def test_next_run_raises_on_invalid_fields() -> None:
    with pytest.raises(ValueError, match="Unknown timezone 'Nowhere'"):
        calculate_next_run_time(ScheduleSpec(cron="0 9 * * *", timezone="Nowhere"))
    with pytest.raises(ValueError, match="Invalid cron expression: 61 \\* \\* \\* \\*"):
        calculate_next_run_time(ScheduleSpec(cron="61 * * * *"))


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (ScheduleSpec(cron="0 9 * * *"), "Cron: 0 9 * * * (UTC)"),
        (
            ScheduleSpec(cron="*/5 * * * *", timezone="Europe/Berlin"),
            "Cron: */5 * * * * (Europe/Berlin)",
        ),
        (ScheduleSpec(interval="15m"), "Every 15m (UTC)"),
        (
            ScheduleSpec(interval="1h30m", timezone="America/New_York"),
            "Every 1h30m (America/New_York)",
        ),
        (ScheduleSpec(calendar=[CalendarSpec(hour=9)]), "Calendar: 09:00:00 (UTC)"),
        (
            ScheduleSpec(
                calendar=[
                    CalendarSpec(hour=9, minute=5, second=7),
                    CalendarSpec(hour=9, day_of_week=0),
                    CalendarSpec(day_of_month=1),
                    CalendarSpec(hour=12, day_of_month=25, month=12),
                    CalendarSpec(hour=8, month=7),
                    CalendarSpec(hour=8, day_of_week=4, day_of_month=13),
                ],
                timezone="Asia/Tokyo",
            ),
            "Calendar: 09:05:07, Mon at 09:00:00, Day 1 at 00:00:00, Day 25 of Dec at 12:00:00, "
            "Daily in Jul at 08:00:00, Fri Day 13 at 08:00:00 (Asia/Tokyo)",
        ),
        (ScheduleSpec(), "No schedule defined"),
    ],
)
def test_describe_schedule(spec: ScheduleSpec, text: str) -> None:
    assert describe_schedule(spec) == text
