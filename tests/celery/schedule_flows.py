"""Workflows the Celery schedule tests run on real workers
(``PYWORKFLOW_DISCOVER`` includes ``tests.celery.schedule_flows``).

Every name starts with ``celery_sched_``: the test process imports this module too (a
schedule can only be created for a workflow registered in the client), and its
registrations stay for the whole session.

A schedule passes the same arguments to every run it starts, so the step bodies tell
runs apart by the run id: each body run appends ``sched <tag>/<run_id> <pid> <start>
<end>`` to ``$PYWORKFLOW_TEST_DIR/events.log`` (:func:`tests.celery.flows.note`), and
:func:`bodies` reads them back, across processes.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pyworkflow import get_context, scheduled_workflow, sleep, step, workflow
from tests.celery.flows import note


def _dir() -> Path:
    return Path(os.environ.get("PYWORKFLOW_TEST_DIR", "."))


def bodies(tag: str) -> list[tuple[str, int, float, float]]:
    """``(run_id, pid, start, end)`` of every step body run for schedule tag ``tag``."""
    path = _dir() / "events.log"
    found = []
    for line in path.read_text().splitlines() if path.exists() else []:
        kind, key, pid, start, end = line.split()
        owner, _, run_id = key.partition("/")
        if kind == "sched" and owner == tag:
            found.append((run_id, int(pid), float(start), float(end)))
    return found


@step(name="celery_sched_work")
async def work(tag: str, run_id: str, seconds: float) -> int:
    """A step body of ``seconds`` (on a step worker); logs one line per body run."""
    start = time.time()
    if seconds:
        await asyncio.sleep(seconds)
    note("sched", f"{tag}/{run_id}", start, time.time())
    return os.getpid()


@workflow(name="celery_sched_quick")
async def quick(tag: str) -> int:
    """One short step."""
    return await work(tag, get_context().run_id, 0)


@workflow(name="celery_sched_slow")
async def slow(tag: str, seconds: float) -> int:
    """One step that takes ``seconds``: the run holds a step process that long."""
    return await work(tag, get_context().run_id, seconds)


@workflow(name="celery_sched_nap")
async def nap(tag: str, duration: float) -> int:
    """A durable sleep (no process held), then a short step."""
    await sleep(duration)
    return await work(tag, get_context().run_id, 0)


@scheduled_workflow(cron="0 0 1 1 *", name="celery_sched_new_year")
async def new_year() -> str:
    """Declares its own schedule (once a year): Beat activates it (API.md §5.4)."""
    return "happy new year"
