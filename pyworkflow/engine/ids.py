"""Identifiers: runs, steps, sleeps.

Step identity keeps upstream's id for the first call (``step_<name>_<sha256[:16]>``
of the name and JSON-encoded arguments); the k-th identical call in one run gets a
``_<k>`` suffix, so two identical calls no longer share one result.

Example:
    >>> step_base_id("add", "[1, 2]", "{}") == step_base_id("add", "[1, 2]", "{}")
    True
    >>> new_run_id().startswith("run_")
    True
"""

from __future__ import annotations

import hashlib
import uuid


def new_run_id() -> str:
    """A fresh ``run_<16 hex>`` id."""
    return f"run_{uuid.uuid4().hex[:16]}"


def step_base_id(step_name: str, args_json: str, kwargs_json: str) -> str:
    """The upstream-compatible step id from pre-serialized arguments."""
    digest = hashlib.sha256(f"{step_name}:{args_json}:{kwargs_json}".encode()).hexdigest()
    return f"step_{step_name}_{digest[:16]}"


def nth_call_id(base_id: str, n: int) -> str:
    """The id of the n-th (1-based) call sharing ``base_id``."""
    return base_id if n == 1 else f"{base_id}_{n}"


def format_seconds(seconds: float) -> str:
    """Compact text of a duration for ids: 5 -> '5', 0.25 -> '0.25'."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.6f}".rstrip("0").rstrip(".")


def sleep_id(counter: int, seconds: float) -> str:
    """``sleep_<counter>_<N>s`` as upstream, with fractions kept."""
    return f"sleep_{counter}_{format_seconds(seconds)}s"
