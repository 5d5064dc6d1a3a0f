"""Workflows for the ``pyworkflow workflows`` subprocess tests (imported with ``--module``)."""

from __future__ import annotations

from typing import Any

from pyworkflow import hook, sleep, step, workflow


@step(name="app_double")
async def double(x: int) -> int:
    return 2 * x


@workflow(name="app_compute", tags=["demo", "math"], max_duration="1h")
async def compute(x: int, label: str = "total") -> dict[str, int]:
    """Double x in a step and label the result.

    Second line of the docstring.
    """
    return {label: await double(x)}


@workflow(name="app_nap")
async def nap(x: int = 1) -> str:
    """Sleep one second, then answer."""
    await sleep("1s")
    return f"rested {x}"


@workflow(name="app_boom")
async def boom(reason: str = "kaboom") -> None:
    """Always fails."""
    raise ValueError(f"boom: {reason}")


@workflow(name="app_approval")
async def approval() -> Any:
    """Waits for a hook named approval."""
    return await hook("approval")
