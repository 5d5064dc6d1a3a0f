"""Medians, ranges and pair-by-pair ratios."""

from __future__ import annotations

import math
import statistics
from typing import Any


def summary(values: list[float]) -> dict[str, Any]:
    """``{"median", "min", "max", "n"}`` of the finite values (NaN when none)."""
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not finite:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {
        "median": statistics.median(finite),
        "min": min(finite),
        "max": max(finite),
        "n": len(finite),
    }


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """``a_i / b_i`` for samples taken in the same repetition (pair by pair)."""
    return [a / b for a, b in zip(numerators, denominators, strict=False) if b]


def pick(samples: list[dict[str, Any]], key: str) -> list[float]:
    """One metric from a list of result dicts."""
    return [float(s[key]) for s in samples if key in s]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value that ``fraction`` of the values do not exceed
    (NaN when there are none). ``percentile(v, 0.95)`` of 20 values is the 19th."""
    ordered = sorted(v for v in values if isinstance(v, int | float) and math.isfinite(v))
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]
