"""The workloads' view of pyworkflow-engine from PyPI (``--engine upstream``).

Runs in the separate venv the harness made for one upstream release. Upstream's local
runtime never wakes a sleep by itself ("call resume() manually") and its ``resume()``
alone re-suspends on a sleep that has no ``sleep.completed`` event. So a wake-up here
does what upstream's own Celery resume task does: record ``sleep.completed`` for the
pending sleeps (upstream's ``_complete_pending_sleeps``), then ``resume()``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from loguru import logger

import pyworkflow
from pyworkflow import configure, get_workflow_run, resume, sleep, start, step, workflow
from pyworkflow.celery.tasks import _complete_pending_sleeps
from pyworkflow.serialization.decoder import deserialize_args
from pyworkflow.storage.schemas import RunStatus

__all__ = ["sleep", "step", "workflow"]

NAME = f"upstream-{pyworkflow.__version__}"
#: Upstream truncates durations to whole seconds: sleep(0.001) is sleep(0), which
#: returns at once without suspending. One second is the shortest sleep that suspends;
#: the wake-up below completes it without waiting.
SHORTEST_SLEEP = 1
WAKE_MODE = "manual: sleep.completed recorded, then resume() (as upstream's Celery task)"

Done = Callable[[], Awaitable[bool]]
_TERMINAL = {
    RunStatus.COMPLETED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.CONTINUED_AS_NEW,
}


async def open_storage(url: str) -> Any:
    """Upstream's SQLite backend at a path, or its PostgreSQL backend at a DSN."""
    if url.startswith("postgresql://"):
        from pyworkflow.storage.postgres import PostgresStorageBackend

        storage: Any = PostgresStorageBackend(dsn=url)
    else:
        from pyworkflow.storage.sqlite import SQLiteStorageBackend

        storage = SQLiteStorageBackend(url)
    await storage.connect()
    configure(storage=storage, default_durable=True)
    # configure() installs upstream's INFO handler on stderr; silence it as for ours.
    logger.remove()
    return storage


async def close_storage(storage: Any) -> None:
    # Upstream's aiosqlite thread is not a daemon: without this the process never exits.
    await storage.disconnect()


async def start_run(func: Callable[..., Any], *args: Any, storage: Any) -> str:
    return await start(func, *args, durable=True, storage=storage)


async def result(run_id: str, storage: Any) -> Any:
    run_record = await get_workflow_run(run_id, storage=storage)
    if run_record is None or run_record.status is not RunStatus.COMPLETED:
        raise RuntimeError(f"run {run_id} did not complete: {run_record}")
    # Upstream stores results as serialize_args(result): a one-element list.
    return deserialize_args(run_record.result)[0]


async def run(func: Callable[..., Any], *args: Any, storage: Any) -> Any:
    run_id = await start_run(func, *args, storage=storage)
    return await result(run_id, storage)


async def finished(run_id: str, storage: Any) -> bool:
    run_record = await get_workflow_run(run_id, storage=storage)
    return run_record is not None and run_record.status in _TERMINAL


async def hold_timers(storage: Any) -> None:
    """Nothing to hold: upstream's local runtime has no timer service."""


class Waker:
    """Wakes runs one by one, each wake-up timed (upstream has no local timer service)."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.durations: list[float] = []

    async def wake(self, run_id: str) -> None:
        began = time.perf_counter()
        events = await self.storage.get_events(run_id)
        await _complete_pending_sleeps(run_id, events, self.storage)
        await resume(run_id, storage=self.storage)
        self.durations.append(time.perf_counter() - began)

    async def finish(self, run_ids: Iterable[str], done: Done) -> None:
        for run_id in run_ids:
            while not await finished(run_id, self.storage):
                await self.wake(run_id)
        if not await done():
            raise RuntimeError("every run ended, yet the workload is not done")
