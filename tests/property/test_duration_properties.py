"""Properties of duration parsing and formatting (pyworkflow.utils.duration).

* a compound string (units w, d, h, m, s, largest first, each at most once, any case,
  surrounding whitespace) parses to the sum of its parts, by every entry point;
* any other text is refused with ``ValueError`` naming the value and the format; the
  grammar is checked against an independent oracle written here;
* ``format_duration`` then ``parse_duration`` gives the value floored to its largest
  unit, and formatting is idempotent through parsing;
* non-negative finite ints, floats and timedeltas are accepted as seconds (fractions
  kept by ``parse_duration_seconds``, dropped by ``parse_duration``); negative or
  non-finite numbers raise ``ValueError``, bools and other types ``TypeError``.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pyworkflow.utils.duration import (
    UNIT_SECONDS,
    duration_to_timedelta,
    format_duration,
    parse_duration,
    parse_duration_seconds,
    parse_duration_string,
)
from tests.property.strategies import prop_settings

_UNITS = "wdhms"  # largest first, as the grammar requires


def oracle(text: str) -> int | None:
    """Seconds for a valid duration string, None when invalid: a hand-written scanner
    over the grammar (ASCII digits, units in strictly descending order)."""
    body = text.strip()
    total, allowed, i = 0, 0, 0
    if not body:
        return None
    while i < len(body):
        start = i
        while i < len(body) and body[i] in "0123456789":
            i += 1
        if i == start or i == len(body):
            return None
        unit = body[i].lower() if body[i] in "WDHMSwdhms" else ""
        if not unit or _UNITS.index(unit) < allowed:
            return None
        allowed = _UNITS.index(unit) + 1
        total += int(body[start:i]) * UNIT_SECONDS[unit]
        i += 1
    return total


@st.composite
def compound(draw: st.DrawFn) -> tuple[str, int]:
    """A valid compound duration string and its value in seconds."""
    units = draw(st.lists(st.sampled_from(_UNITS), min_size=1, max_size=5, unique=True))
    units.sort(key=_UNITS.index)
    parts, total = [], 0
    for unit in units:
        amount = draw(st.integers(min_value=0, max_value=10**7))
        zeros = "0" * draw(st.integers(min_value=0, max_value=2))
        letter = unit.upper() if draw(st.booleans()) else unit
        parts.append(f"{zeros}{amount}{letter}")
        total += amount * UNIT_SECONDS[unit]
    space = st.sampled_from(["", " ", "\t", "\n", "  "])
    return draw(space) + "".join(parts) + draw(space), total


@prop_settings(200)
@given(compound())
def test_compound_strings_parse_to_the_sum_of_their_parts(case: tuple[str, int]) -> None:
    text, total = case
    assert parse_duration_string(text) == total
    assert parse_duration(text) == total
    assert parse_duration_seconds(text) == float(total)
    assert duration_to_timedelta(text) == timedelta(seconds=total)
    assert oracle(text) == total


# Characters around the grammar: digits and units, decimal points and signs,
# non-ASCII digits and letters that case-fold onto a unit (long s folds onto "S",
# the Kelvin sign onto "k"), micro sign, Arabic-Indic and fullwidth digits, roman 1000.
_LONG_S = "\u017f"
_TRICKY = "0123456789wdhmsWDHMS .,+-_:hms\t\n" + _LONG_S + "\u212a\u00b5\u0661\uff12\u217f"


@prop_settings(300)
@given(st.one_of(st.text(alphabet=_TRICKY, max_size=10), st.text(max_size=8)))
@example("1.5h")
@example("1h 30m")
@example("30m1h")
@example("5" + _LONG_S)
def test_text_is_accepted_exactly_when_the_grammar_allows(text: str) -> None:
    expected = oracle(text)
    if expected is not None:
        assert parse_duration_string(text) == expected
        return
    with pytest.raises(ValueError, match="Invalid duration format") as raised:
        parse_duration_string(text)
    assert repr(text) in str(raised.value)
    assert "Expected format" in str(raised.value)


@prop_settings(150)
@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_floors_to_the_largest_unit(seconds: int) -> None:
    text = format_duration(seconds)
    back = parse_duration(text)
    unit = next((size for size in UNIT_SECONDS.values() if seconds >= size), 1)
    assert back <= seconds < back + unit
    assert back % unit == 0
    assert format_duration(back) == text


# Amounts below the next unit up, so that the unit is the largest that fits.
_BELOW_NEXT = {"s": 59, "m": 59, "h": 23, "d": 6, "w": 10**6}


@prop_settings(100)
@given(
    st.sampled_from(_UNITS).flatmap(lambda u: st.tuples(st.just(u), st.integers(1, _BELOW_NEXT[u])))
)
def test_single_unit_values_roundtrip_through_format(case: tuple[str, int]) -> None:
    unit, amount = case
    seconds = amount * UNIT_SECONDS[unit]
    assert format_duration(seconds) == f"{amount}{unit}"
    assert parse_duration(format_duration(seconds)) == seconds


finite = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)


@prop_settings(150)
@given(st.one_of(st.integers(min_value=0, max_value=10**12), finite))
def test_numbers_are_seconds(value: float) -> None:
    assert parse_duration_seconds(value) == float(value)
    assert parse_duration(value) == int(value)
    assert duration_to_timedelta(value) == timedelta(seconds=value)


@prop_settings(100)
@given(st.timedeltas(min_value=timedelta(0)))
def test_timedeltas_are_their_total_seconds(value: timedelta) -> None:
    assert parse_duration_seconds(value) == value.total_seconds()
    assert parse_duration(value) == int(value.total_seconds())


@prop_settings(100)
@given(
    st.one_of(
        st.integers(max_value=-1),
        st.floats(max_value=-1e-9, allow_infinity=True, allow_nan=False),
        st.just(math.inf),
        st.just(math.nan),
        st.timedeltas(max_value=-timedelta(microseconds=1)),
    )
)
def test_negative_or_non_finite_values_are_refused(value: float | timedelta) -> None:
    with pytest.raises(ValueError, match="Invalid duration"):
        parse_duration_seconds(value)
    with pytest.raises(ValueError):
        parse_duration(value)


@prop_settings(60)
@given(st.one_of(st.booleans(), st.none(), st.lists(st.integers(), max_size=2), st.binary()))
def test_other_types_are_refused_with_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        parse_duration_seconds(value)  # type: ignore[arg-type]


def test_regression_long_s_is_not_a_seconds_unit() -> None:
    """``"5\\u017f"`` (LATIN SMALL LETTER LONG S) parsed as 5 seconds: the pattern is
    matched with re.IGNORECASE in Unicode mode, where the long s folds onto "s" (digits
    are already restricted to ASCII for the same reason)."""
    with pytest.raises(ValueError, match="Invalid duration format"):
        parse_duration_string("5" + _LONG_S)
