"""The ``retry_delay`` option of ``@step``: validation, per-attempt delays, descriptions.

Accepted forms:

* ``"exponential"`` (the default): 1, 2, 4, 8, ... seconds, capped at 300;
* ``"fixed"``: :data:`FIXED_RETRY_DELAY_SECONDS` before every retry;
* a duration string such as ``"5s"`` or ``"1m30s"``;
* a number of seconds ``>= 0``;
* a non-empty list of numbers / duration strings: retry *i* waits item *i*, and the
  last item once the list runs out.

Example:
    >>> [compute_retry_delay("exponential", i) for i in range(4)]
    [1.0, 2.0, 4.0, 8.0]
    >>> compute_retry_delay([1, "5s", 30], 7)
    30.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pyworkflow.utils.duration import parse_duration_string

__all__ = [
    "EXPONENTIAL_MAX_DELAY_SECONDS",
    "FIXED_RETRY_DELAY_SECONDS",
    "compute_retry_delay",
    "describe_retry_delay",
    "validate_retry_delay",
]

FIXED_RETRY_DELAY_SECONDS = 5.0
"""Delay before each retry for ``retry_delay="fixed"``."""

EXPONENTIAL_MAX_DELAY_SECONDS = 300.0
"""Cap of the ``"exponential"`` schedule (reached at the 10th retry)."""

_ACCEPTED = (
    'Expected "exponential", "fixed" (5s each time), a duration string such as "5s" '
    'or "1m30s", a number of seconds >= 0, or a non-empty list of numbers or duration '
    'strings such as [1, 5, "1m"].'
)


def _invalid(value: object, why: str = "") -> ValueError:
    detail = f" ({why})" if why else ""
    return ValueError(f"Invalid retry_delay: {value!r}{detail}. {_ACCEPTED}")


def _item_seconds(item: object, whole: object) -> float:
    """Seconds for one number or duration string, or raise the ValueError for ``whole``."""
    if isinstance(item, bool):
        raise _invalid(whole, "a bool is not a delay")
    if isinstance(item, int | float):
        seconds = float(item)
        if not math.isfinite(seconds) or seconds < 0:
            raise _invalid(whole, f"{item!r} is not a number of seconds >= 0")
        return seconds
    if isinstance(item, str):
        try:
            return float(parse_duration_string(item))
        except ValueError:
            raise _invalid(whole, "" if item is whole else f"{item!r} is not a duration") from None
    raise _invalid(whole, f"{type(item).__name__} is not a delay")


def _keyword(value: object) -> str | None:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("exponential", "fixed"):
            return word
    return None


def validate_retry_delay(value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is an accepted ``retry_delay``.

    Called at decoration time so that a typo fails at import, not at the first retry.

    Example:
        >>> validate_retry_delay("1m30s")
        >>> validate_retry_delay("soon")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Invalid retry_delay: 'soon'. Expected "exponential", "fixed" ...
    """
    if _keyword(value) is not None:
        return
    if isinstance(value, list | tuple):
        if not value:
            raise _invalid(value, "the list is empty")
        for item in value:
            if isinstance(item, list | tuple):
                raise _invalid(value, "lists cannot be nested")
            if _keyword(item) is not None:
                raise _invalid(value, f"{item!r} cannot be used inside a list")
            _item_seconds(item, value)
        return
    _item_seconds(value, value)


def compute_retry_delay(value: Any, attempt_index: int) -> float:
    """Seconds to wait after failed attempt ``attempt_index`` (0-based).

    The first retry waits ``compute_retry_delay(value, 0)``. Raises ``ValueError`` for
    an invalid ``value`` or a negative index.

    Example:
        >>> compute_retry_delay("exponential", 20)
        300.0
        >>> compute_retry_delay("fixed", 3), compute_retry_delay("1m30s", 0)
        (5.0, 90.0)
    """
    if isinstance(attempt_index, bool) or not isinstance(attempt_index, int):
        raise TypeError(f"attempt_index must be an int, got {attempt_index!r}")
    if attempt_index < 0:
        raise ValueError(f"attempt_index must be >= 0, got {attempt_index}")
    validate_retry_delay(value)
    keyword = _keyword(value)
    if keyword == "exponential":
        # 2**9 already exceeds the cap; avoid building huge ints for late attempts.
        if attempt_index >= 9:
            return EXPONENTIAL_MAX_DELAY_SECONDS
        return min(float(2**attempt_index), EXPONENTIAL_MAX_DELAY_SECONDS)
    if keyword == "fixed":
        return FIXED_RETRY_DELAY_SECONDS
    if isinstance(value, list | tuple):
        items: Sequence[object] = value
        return _item_seconds(items[min(attempt_index, len(items) - 1)], value)
    return _item_seconds(value, value)


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g}"


def _describe_item(item: object) -> str:
    if isinstance(item, int | float):
        return _format_seconds(float(item))
    return str(item).strip()


def describe_retry_delay(value: Any) -> str:
    """A short description of a ``retry_delay`` for logs and events.

    Example:
        >>> describe_retry_delay("exponential"), describe_retry_delay("fixed")
        ('exponential', 'fixed(5s)')
        >>> describe_retry_delay(5), describe_retry_delay([1, 5, 30])
        ('5s', '[1, 5, 30]')
    """
    validate_retry_delay(value)
    keyword = _keyword(value)
    if keyword == "fixed":
        return f"fixed({_format_seconds(FIXED_RETRY_DELAY_SECONDS)}s)"
    if keyword is not None:
        return keyword
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_describe_item(item) for item in value) + "]"
    if isinstance(value, str):
        return value.strip()
    return f"{_format_seconds(float(value))}s"
