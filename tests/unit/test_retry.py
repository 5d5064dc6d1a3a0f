"""Tests for pyworkflow.utils.retry (the ``retry_delay`` option)."""

from __future__ import annotations

from typing import Any

import pytest

from pyworkflow.utils.retry import (
    FIXED_RETRY_DELAY_SECONDS,
    compute_retry_delay,
    describe_retry_delay,
    validate_retry_delay,
)


def test_exponential_doubles_and_caps_at_300() -> None:
    delays = [compute_retry_delay("exponential", i) for i in range(12)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert compute_retry_delay("exponential", 10_000) == 300.0


def test_fixed_uses_the_documented_default() -> None:
    assert FIXED_RETRY_DELAY_SECONDS == 5.0
    assert [compute_retry_delay("fixed", i) for i in range(3)] == [5.0, 5.0, 5.0]


def test_keywords_are_case_insensitive() -> None:
    assert compute_retry_delay(" Exponential ", 2) == 4.0
    assert compute_retry_delay("FIXED", 0) == 5.0


@pytest.mark.parametrize(
    ("value", "seconds"), [("5s", 5.0), ("1m30s", 90.0), ("2H", 7200.0), ("0s", 0.0)]
)
def test_duration_strings(value: str, seconds: float) -> None:
    validate_retry_delay(value)
    assert compute_retry_delay(value, 0) == seconds
    assert compute_retry_delay(value, 5) == seconds


@pytest.mark.parametrize(("value", "seconds"), [(0, 0.0), (3, 3.0), (1.5, 1.5)])
def test_numbers(value: float, seconds: float) -> None:
    validate_retry_delay(value)
    assert compute_retry_delay(value, 0) == seconds
    assert compute_retry_delay(value, 9) == seconds


def test_list_uses_item_i_then_the_last_item() -> None:
    value = [1, "5s", 30.5]
    assert [compute_retry_delay(value, i) for i in range(5)] == [1.0, 5.0, 30.5, 30.5, 30.5]
    assert compute_retry_delay(["1m"], 3) == 60.0
    assert compute_retry_delay((2, 4), 1) == 4.0


@pytest.mark.parametrize(
    "value",
    [
        "soon",
        "1.5h",
        "",
        -1,
        -0.5,
        float("nan"),
        float("inf"),
        True,
        False,
        None,
        [],
        [1, [2]],
        [1, -2],
        [1, "soon"],
        [True],
        ["exponential"],
        [None],
        {"delay": 1},
        object(),
    ],
)
def test_invalid_values_raise_value_error(value: Any) -> None:
    with pytest.raises(ValueError) as info:
        validate_retry_delay(value)
    message = str(info.value)
    assert message.startswith(f"Invalid retry_delay: {value!r}")
    assert '"exponential"' in message and '"fixed"' in message and "list" in message
    with pytest.raises(ValueError):
        compute_retry_delay(value, 0)
    with pytest.raises(ValueError):
        describe_retry_delay(value)


def test_error_detail_names_the_bad_list_item() -> None:
    with pytest.raises(ValueError, match="'soon' is not a duration"):
        validate_retry_delay([1, "soon"])
    with pytest.raises(ValueError, match="empty"):
        validate_retry_delay([])
    with pytest.raises(ValueError, match="nested"):
        validate_retry_delay([[1]])


def test_attempt_index_must_be_a_non_negative_int() -> None:
    with pytest.raises(ValueError):
        compute_retry_delay("exponential", -1)
    with pytest.raises(TypeError):
        compute_retry_delay("exponential", 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        compute_retry_delay("exponential", True)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("exponential", "exponential"),
        ("fixed", "fixed(5s)"),
        ("5s", "5s"),
        (" 1m30s ", "1m30s"),
        (5, "5s"),
        (1.5, "1.5s"),
        ([1, 5, 30], "[1, 5, 30]"),
        ([1, "5s", 2.5], "[1, 5s, 2.5]"),
    ],
)
def test_describe(value: Any, text: str) -> None:
    assert describe_retry_delay(value) == text
