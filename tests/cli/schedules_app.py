"""Workflows for the ``pyworkflow schedules`` / ``scheduler run`` subprocess tests.

Imported by the CLI through ``--module schedules_app`` (its folder is on PYTHONPATH).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pyworkflow import step, workflow


@step(name="sched_app_stamp")
async def stamp(label: str) -> str:
    return f"tick:{label}"


@workflow(name="sched_app_tick")
async def tick() -> str:
    """Finishes at once: one step."""
    return await stamp("scheduled")


@workflow(name="sched_app_other")
async def other() -> str:
    """A second workflow, so listings and filters have something to tell apart."""
    return await stamp("other")


@step(name="sched_app_nap")
async def nap() -> str:
    # The test learns the run is under way from the marker file, then stops the
    # scheduler while this step is still sleeping.
    marker = os.environ.get("SCHED_APP_MARKER")
    if marker:
        Path(marker).write_text("started")
    await asyncio.sleep(float(os.environ.get("SCHED_APP_NAP", "1")))
    return "rested"


@workflow(name="sched_app_slow")
async def slow() -> str:
    """One step that sleeps ``SCHED_APP_NAP`` seconds (default 1)."""
    return await nap()
