"""``LocalScheduler``: fire schedules from this process (the local runtime).

Schedules fire from the same in-process timer service that wakes sleeping runs
(:func:`pyworkflow.runtime.local.timer_service`): each schedule has a durable timer
due at its next slot, claimed atomically, so any number of processes may run a
scheduler and a slot still fires once. ``LocalScheduler`` is the explicit handle on
that for a program whose job is to run schedules.

Example:
    >>> import asyncio
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> async def main():
    ...     scheduler = LocalScheduler(storage=InMemoryStorageBackend(), poll_interval=0.1)
    ...     await scheduler.run(duration=0.2)   # nothing scheduled: returns after 0.2 s
    ...     return scheduler.is_running
    >>> asyncio.run(main())
    False
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from pyworkflow.engine.followups import SCHEDULE_KIND, schedule_timer
from pyworkflow.storage.base import CommitBatch, StorageBackend


class LocalScheduler:
    """Runs the schedules of ``storage`` (default: the configured one) in this process.

    Example:
        >>> LocalScheduler(poll_interval=5.0).is_running
        False
    """

    def __init__(self, storage: StorageBackend | None = None, poll_interval: float = 5.0):
        self.storage = storage
        self.poll_interval = poll_interval
        self._stop = asyncio.Event()
        self._running = False

    @property
    def is_running(self) -> bool:
        """Whether :meth:`run` is going."""
        return self._running

    def stop(self) -> None:
        """Make :meth:`run` return."""
        self._stop.set()

    async def _store(self) -> StorageBackend:
        from pyworkflow.engine.storage_choice import resolve_storage  # engine sits above

        return await resolve_storage(self.storage)

    async def run(self, duration: float | None = None) -> None:
        """Fire due schedules until :meth:`stop` (or ``duration`` seconds)."""
        from pyworkflow.runtime.local import schedule_processor, timer_service

        store = await self._store()
        self._stop.clear()
        self._running = True
        loop = asyncio.get_running_loop()
        deadline = None if duration is None else loop.time() + duration
        service = timer_service(store)
        service.schedule = schedule_processor(store)
        try:
            while not self._stop.is_set():
                await self._arm_missing(store)
                service.notify()
                wait = self.poll_interval
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._stop.wait()
        finally:
            # Stopped means stopped: this process fires no more slots (its timer
            # service goes on waking sleeping runs).
            service.schedule = None
            self._running = False

    async def tick_once(self) -> int:
        """Process every due schedule now; returns how many were due."""
        from pyworkflow.runtime.local import _process_schedule

        store = await self._store()
        due = await store.get_due_schedules(datetime.now(UTC))
        for schedule in due:
            await _process_schedule(schedule.schedule_id, store)
        return len(due)

    async def _arm_missing(self, store: StorageBackend) -> None:
        """Schedules written straight to storage (not through the schedule API) have
        no timer yet: give the due ones one."""
        for schedule in await store.get_due_schedules(datetime.now(UTC)):
            timers = await store.list_timers(schedule.schedule_id)
            if not any(t.kind == SCHEDULE_KIND for t in timers):
                when = schedule.next_run_time or datetime.now(UTC)
                timer = schedule_timer(schedule.schedule_id, when)
                await store.commit(CommitBatch(run_id=schedule.schedule_id, timers_upsert=[timer]))
