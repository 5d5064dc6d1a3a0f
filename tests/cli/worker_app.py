"""Workflows for tests/cli/test_worker_cli.py, imported by worker subprocesses via --module."""

from __future__ import annotations

from pyworkflow import sleep, step, workflow


@step
async def wk_double_step(x: int) -> int:
    """Doubles ``x`` on a step worker."""
    return x * 2


@workflow
async def wk_double(x: int) -> int:
    """One step: returns ``2 * x``."""
    return await wk_double_step(x)


@workflow
async def wk_nap(x: int) -> int:
    """Sleeps one second (woken by Beat's tick), then returns ``x + 1``."""
    await sleep("1s")
    return x + 1
