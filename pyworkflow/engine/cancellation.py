"""Cancellation requests: recorded in the log, seen by the run at its next durable call.

``cancel_workflow`` appends ``cancellation.requested`` and sets the storage flag. A
run that is executing sees the event at its next commit (the optimistic append
folds it in) and its next durable call without a recorded outcome raises
:class:`CancellationError`, which the workflow may catch to compensate (``shield()``
keeps its cleanup steps running) before re-raising. A run that waits (sleep, hook,
retry delay, child, dispatched step) is woken at once to do the same: a ``wake``
timer in the same commit guarantees it even if the direct resume is lost. A step
body can poll cooperatively with ``get_context().check_cancellation()``.

Example:
    >>> import asyncio
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> asyncio.run(request_cancellation(InMemoryStorageBackend(), "run_missing"))
    Traceback (most recent call last):
    ...
    pyworkflow.core.exceptions.WorkflowNotFoundError: Workflow run not found: run_missing
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from loguru import logger

from pyworkflow.core.exceptions import WorkflowNotFoundError
from pyworkflow.engine import events as ev
from pyworkflow.storage.base import (
    CommitBatch,
    HookUpdate,
    RunEndedError,
    RunUpdate,
    StorageBackend,
)
from pyworkflow.storage.schemas import (
    TERMINAL_STATUSES,
    HookStatus,
    RunStatus,
    Timer,
    WorkflowRun,
)

# How often a running step body looks for a cancellation request (only steps that
# run longer than this ever query the storage for it).
POLL_SECONDS = float(os.environ.get("PYWORKFLOW_CANCEL_POLL_SECONDS", "1.0"))

_WAITING = (RunStatus.SUSPENDED, RunStatus.INTERRUPTED, RunStatus.PENDING)


def _wake_now(run_id: str) -> Timer:
    return Timer(run_id, "wake", "cancel", datetime.now(UTC))


async def request_cancellation(
    storage: StorageBackend, run_id: str, reason: str | None = None
) -> WorkflowRun | None:
    """Record a cancellation request; returns the run as it is after the request
    (a waiting run is then to be woken), or None when it had already ended (nothing is
    recorded then)."""
    run = await storage.get_run(run_id)
    if run is None:
        raise WorkflowNotFoundError(run_id)
    if run.status in TERMINAL_STATUSES:
        return None
    event = ev.create_cancellation_requested_event(run_id, reason, "cancel_workflow")
    wake = [_wake_now(run_id)] if run.status in _WAITING else []
    try:
        await storage.commit(
            CommitBatch(run_id=run_id, events=[event], timers_upsert=wake, require_open=True)
        )
    except RunEndedError:
        return None  # it ended between our read and our write
    await storage.set_cancellation_flag(run_id)
    if run.status in _WAITING:
        return run
    # It was executing when we read it. If it has suspended since, its activation may
    # have finished before our event was appended and will not look again: it waits
    # now, so it must be woken like any waiting run.
    fresh = await storage.get_run(run_id)
    if fresh is not None and fresh.status in _WAITING:
        await storage.commit(CommitBatch(run_id=run_id, timers_upsert=[_wake_now(run_id)]))
    return fresh


async def cancel_without_code(
    storage: StorageBackend, run: WorkflowRun, reason: str | None
) -> None:
    """End a waiting run as CANCELLED without running its code (the workflow is not
    registered in this process): no compensation can run, as upstream did."""
    hooks = await storage.list_hooks(run_id=run.run_id, status=HookStatus.PENDING, limit=10_000)
    await storage.commit(
        CommitBatch(
            run_id=run.run_id,
            events=[ev.create_workflow_cancelled_event(run.run_id, reason, False)],
            run_update=RunUpdate(RunStatus.CANCELLED, completed_at=datetime.now(UTC)),
            clear_timers=True,
            hook_updates=[HookUpdate(h.hook_id, HookStatus.DISPOSED) for h in hooks],
        )
    )
    await storage.clear_cancellation_flag(run.run_id)


async def wait_until_ended(storage: StorageBackend, run_id: str, timeout: float) -> WorkflowRun:
    """Poll until the run has a terminal status; ``TimeoutError`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.02
    while True:
        run = await storage.get_run(run_id)
        if run is not None and run.status in TERMINAL_STATUSES:
            return run
        if loop.time() >= deadline:
            status = run.status.value if run is not None else "missing"
            raise TimeoutError(
                f"Run {run_id} did not end within {timeout:g}s of the cancellation request "
                f"(status: {status}). Is a worker running it?"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


@contextlib.asynccontextmanager
async def watch_cancellation(
    storage: StorageBackend,
    run_id: str,
    on_request: Callable[[str | None], None],
    interval: float | None = None,
) -> AsyncIterator[None]:
    """While the block runs (a step body), call ``on_request(reason)`` once a
    cancellation request for ``run_id`` appears. Polling starts only after
    ``interval`` seconds, so short steps cost nothing."""
    every = POLL_SECONDS if interval is None else interval
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []

    def begin() -> None:
        tasks.append(loop.create_task(_poll(storage, run_id, on_request, every)))

    handle = loop.call_later(every, begin)
    try:
        yield
    finally:
        handle.cancel()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def _poll(
    storage: StorageBackend, run_id: str, on_request: Callable[[str | None], None], every: float
) -> None:
    while True:
        try:
            event = await storage.get_latest_event(
                run_id, ev.EventType.CANCELLATION_REQUESTED.value
            )
        except Exception as error:  # a storage hiccup must not disturb the step
            logger.debug("Cancellation poll for {} failed: {}", run_id, error)
            event = None
        if event is not None:
            on_request(event.data.get("reason"))
            return
        await asyncio.sleep(every)
