"""The in-process timer service of the local runtime.

One asyncio task per event loop and storage claims due timers (sleeps, retry
delays, deadlines) and resumes their runs, then waits until the next timer is due,
a new timer is announced, or ``poll_interval`` passes (to notice timers written by
other processes). Sleeping runs cost nothing here: no task or coroutine per run.
Claims are atomic in storage, so several processes can run this service at once
and still fire each timer once. Runs whose activation died (lease expired) are
picked up too.

Example:
    >>> import asyncio
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> async def main():
    ...     async def resume(run_id): ...
    ...     service = TimerService(InMemoryStorageBackend(), resume)
    ...     return await service.tick()
    >>> asyncio.run(main())
    0
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from pyworkflow.runtime.lease import new_owner
from pyworkflow.scheduler.tick import claim_wakeups
from pyworkflow.storage.base import StorageBackend

ResumeFn = Callable[[str], Awaitable[Any]]


class TimerService:
    """Fires due timers of one storage by resuming their runs."""

    def __init__(
        self,
        storage: StorageBackend,
        resume: ResumeFn,
        *,
        claim_seconds: float = 30.0,
        poll_interval: float = 1.0,
        stale_check_interval: float = 10.0,
        max_concurrency: int = 32,
        batch_size: int = 100,
        schedule: ResumeFn | None = None,
    ) -> None:
        self.storage = storage
        self.resume = resume
        # Processes a schedule whose timer came due (None: leave schedules alone).
        self.schedule = schedule
        self.owner = new_owner()
        self.claim_seconds = claim_seconds
        self.poll_interval = poll_interval
        self.stale_check_interval = stale_check_interval
        self.batch_size = batch_size
        self._sem = asyncio.Semaphore(max_concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._active: set[asyncio.Task[None]] = set()
        self._last_stale_check = 0.0
        self._stopping = False

    @property
    def running(self) -> bool:
        """Whether the service loop is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop in the running event loop (idempotent; a no-op while
        :meth:`stop` is waiting for in-flight resumes, which call it when they suspend)."""
        if not self.running and not self._stopping:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="pyworkflow-timers"
            )

    def notify(self) -> None:
        """A timer was added: look again now."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop and wait for in-flight resumes; it stays stopped until the
        next :meth:`start` after this returns."""
        self._stopping = True
        try:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                self._task = None
            if self._active:
                await asyncio.gather(*self._active, return_exceptions=True)
        finally:
            self._stopping = False

    async def idle(self) -> None:
        """Wait until no resume started by this service is running."""
        while self._active:
            await asyncio.gather(*list(self._active), return_exceptions=True)

    async def tick(self) -> int:
        """Claim due timers once and start resuming their runs; returns how many runs."""
        stale_due = time.monotonic() - self._last_stale_check >= self.stale_check_interval
        if stale_due:
            self._last_stale_check = time.monotonic()
        wakeups = await claim_wakeups(
            self.storage,
            self.owner,
            lookahead=0.0,
            claim_seconds=self.claim_seconds,
            limit=self.batch_size,
            include_stale=stale_due,
        )
        for wake in wakeups:
            if wake.is_schedule and self.schedule is not None:
                self._spawn(wake.run_id, self.schedule)
            elif not wake.is_schedule:
                self._spawn(wake.run_id, self.resume)
        return len(wakeups)

    def _spawn(self, ident: str, action: ResumeFn) -> None:
        task = asyncio.get_running_loop().create_task(self._fire(ident, action))
        self._active.add(task)
        task.add_done_callback(self._active.discard)

    async def _fire(self, ident: str, action: ResumeFn) -> None:
        async with self._sem:
            try:
                await action(ident)
            except Exception as error:
                logger.opt(exception=error).error("Timer action for {} failed: {}", ident, error)

    async def _next_delay(self) -> float:
        due = await self.storage.next_timer_due()
        if due is None:
            return self.poll_interval
        wait = (due - datetime.now(UTC)).total_seconds()
        return max(0.0, min(wait, self.poll_interval))

    async def _run(self) -> None:
        connected = False
        while True:
            self._wake.clear()
            try:
                if not connected:
                    # A service started right after the backend was built (before the
                    # application connected it) must not fail every tick.
                    await self.storage.connect()
                    connected = True
                claimed = await self.tick()
                delay = 0.0 if claimed >= self.batch_size else await self._next_delay()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.opt(exception=error).error("Timer service error: {}", error)
                delay = self.poll_interval
            if delay > 0:
                # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation
                # that races the wake-up, and the loop would never stop at shutdown.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
