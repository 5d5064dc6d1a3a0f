"""``cancel_workflow``: ask a run to stop (see :mod:`pyworkflow.engine.cancellation`).

Example:
    >>> import asyncio
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> asyncio.run(cancel_workflow("run_missing", storage=InMemoryStorageBackend()))
    Traceback (most recent call last):
    ...
    pyworkflow.core.exceptions.WorkflowNotFoundError: Workflow run not found: run_missing
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from loguru import logger

from pyworkflow.core.registry import get_workflow
from pyworkflow.engine.cancellation import (
    cancel_without_code,
    request_cancellation,
    wait_until_ended,
)
from pyworkflow.engine.storage_choice import resolve_storage
from pyworkflow.runtime.factory import get_runtime, runtime_name_here
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, WorkflowRun

__all__ = ["cancel_workflow"]


async def cancel_workflow(
    run_id: str,
    reason: str | None = None,
    wait: bool = False,
    timeout: float | None = None,
    storage: StorageBackend | None = None,
) -> bool:
    """Ask a run to stop. False if it had already ended (nothing is recorded).

    The run sees the request at its next durable call (step, sleep, hook, child):
    ``CancellationError`` is raised there, the workflow may catch it to compensate
    (inside ``shield()``) and re-raise, and the run ends CANCELLED. A waiting run
    (sleep, hook, retry delay) is woken at once; on the local runtime that happens
    before this call returns. ``wait=True`` waits for a terminal status
    (``timeout`` defaults to 60 s; ``TimeoutError`` after it).

    Example:
        >>> from pyworkflow import get_workflow_run, sleep, start, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_cancel")
        ... async def nap() -> None:
        ...     await sleep("1h")
        >>> async def main():
        ...     store = InMemoryStorageBackend()
        ...     run_id = await start(nap, durable=True, storage=store)
        ...     ok = await cancel_workflow(run_id, reason="not needed", storage=store)
        ...     return ok, (await get_workflow_run(run_id, storage=store)).status.value
        >>> asyncio.run(main())
        (True, 'cancelled')
    """
    store = await resolve_storage(storage)
    run = await request_cancellation(store, run_id, reason)
    if run is None:
        return False
    if run.status in (RunStatus.SUSPENDED, RunStatus.INTERRUPTED):
        await _wake_for_cancel(store, run, reason)
    if wait:
        await wait_until_ended(store, run_id, 60.0 if timeout is None else timeout)
    return True


async def _wake_for_cancel(store: StorageBackend, run: WorkflowRun, reason: str | None) -> None:
    """Let the waiting run handle the request now (its code runs its compensation)."""
    name = runtime_name_here()
    if name == "local" and get_workflow(run.workflow_name) is None:
        # Nobody here can run its code: end it the way upstream did.
        await cancel_without_code(store, run, reason)
        return
    try:
        await get_runtime(name).schedule_resume(run.run_id, store)
        if name == "local":
            await _settle_locally(store, run.run_id)
    except Exception as error:
        # The request is recorded and a wake timer is armed; the run still ends.
        logger.info("Run {} will handle its cancellation later: {}", run.run_id, error)


async def _settle_locally(store: StorageBackend, run_id: str, patience: float = 10.0) -> None:
    """Local runtime: the inline resume may have found the run held by another
    activation of this process (e.g. its timer service); that one sees the request.
    Wait for it (up to ``patience`` seconds), then resume once more if the run is free
    and still waiting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = 0.005
    while loop.time() < deadline:
        run = await store.get_run(run_id)
        if run is None or run.status in TERMINAL_STATUSES:
            return
        lease = await store.get_run_lease(run_id)
        if lease is None or lease.expires_at <= datetime.now(UTC):
            await get_runtime("local").schedule_resume(run_id, store)
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
