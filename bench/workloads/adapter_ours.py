"""The workloads' view of this repository's pyworkflow (``--engine ours``).

Runs are durable, on the local runtime. Sleeps are woken the way this engine does it
in production: the local runtime's in-process timer service fires each due timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pyworkflow import (
    configure,
    get_workflow_result,
    get_workflow_run,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.runtime import timer_service
from pyworkflow.storage.schemas import TERMINAL_STATUSES

__all__ = ["sleep", "step", "workflow"]

NAME = "ours"
#: Fractions of a second are kept, so this sleep suspends the run.
SHORTEST_SLEEP = 0.001
WAKE_MODE = "in-process timer service (production path of the local runtime)"

Done = Callable[[], Awaitable[bool]]


async def open_storage(url: str) -> Any:
    """SQLite at a path, PostgreSQL at a ``postgresql://`` DSN, or ``memory:``.

    ``PATH?synchronous=NORMAL`` opens SQLite with that setting (the profile's
    breakdown of where a step's time goes); the default is our durable ``FULL``.
    """
    if url.startswith("postgresql://"):
        from pyworkflow.storage.postgres import PostgresStorageBackend

        storage: Any = PostgresStorageBackend(dsn=url)
    elif url == "memory:":
        from pyworkflow.storage.memory import InMemoryStorageBackend

        storage = InMemoryStorageBackend()
    else:
        from pyworkflow.storage.sqlite import SQLiteStorageBackend

        path, _, option = url.partition("?synchronous=")
        storage = SQLiteStorageBackend(path, synchronous=option or "FULL")
    await storage.connect()
    configure(storage=storage)
    return storage


async def close_storage(storage: Any) -> None:
    await timer_service(storage).stop()
    await storage.disconnect()


async def start_run(func: Callable[..., Any], *args: Any, storage: Any) -> str:
    """Start a durable run; on the local runtime it runs until it ends or suspends."""
    return await start(func, *args, durable=True, storage=storage)


async def run(func: Callable[..., Any], *args: Any, storage: Any) -> Any:
    """Start a durable run and read back its result."""
    run_id = await start_run(func, *args, storage=storage)
    return await get_workflow_result(run_id, storage=storage)


async def result(run_id: str, storage: Any) -> Any:
    return await get_workflow_result(run_id, storage=storage)


async def finished(run_id: str, storage: Any) -> bool:
    run_record = await get_workflow_run(run_id, storage=storage)
    return run_record is not None and run_record.status in TERMINAL_STATUSES


async def hold_timers(storage: Any) -> None:
    """Keep this process's timer service from firing while runs are prepared.

    Bench-only: W5 prepares runs whose sleeps fall due while it is still creating
    others; they must be left for the "restarted worker" process that measures
    resumes. ``start()`` restarts the service after each suspension, so its ``start``
    is made a no-op on this one instance.
    """
    service = timer_service(storage)
    await service.stop()
    service.start = lambda: None  # type: ignore[method-assign]


class Waker:
    """Lets the timer service resume runs, timing each resume it fires."""

    def __init__(self, storage: Any) -> None:
        self.durations: list[float] = []
        self._fired = asyncio.Event()
        service = timer_service(storage)
        fire = service.resume

        async def timed(run_id: str) -> None:
            began = time.perf_counter()
            try:
                await fire(run_id)
            finally:
                self.durations.append(time.perf_counter() - began)
                self._fired.set()

        service.resume = timed

    async def finish(self, run_ids: Iterable[str], done: Done) -> None:
        """Wait until ``done()``; the timer service does the resuming."""
        del run_ids  # the service finds due runs by itself
        while True:
            self._fired.clear()
            if await done():
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._fired.wait()
