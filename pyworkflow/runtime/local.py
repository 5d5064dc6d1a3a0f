"""The local runtime: runs execute in this process, on the embedded storage.

Steps run inline in the caller's event loop and are recorded as they complete.
Sleeps and retry delays become durable timers; an in-process
:class:`~pyworkflow.scheduler.timers.TimerService` resumes the runs when they are
due, and ``resume(run_id)`` or a restarted process finishes whatever was due
meanwhile.

Example:
    >>> import asyncio
    >>> from pyworkflow import workflow, step, start, get_workflow_result
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> @step
    ... async def double(x: int) -> int:
    ...     return 2 * x
    >>> @workflow(name="doctest_local")
    ... async def wf(x: int) -> int:
    ...     return await double(x)
    >>> async def main():
    ...     store = InMemoryStorageBackend()
    ...     run_id = await start(wf, 21, durable=True, storage=store)
    ...     return await get_workflow_result(run_id, storage=store)
    >>> asyncio.run(main())
    42
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from pyworkflow.context.local import LocalContext
from pyworkflow.context.runner import run_workflow_function
from pyworkflow.engine.outcome import Completed, Failed, Suspended
from pyworkflow.runtime.activator import (
    deadline_of,
    max_duration_text,
    registered_workflow,
)
from pyworkflow.runtime.base import Runtime
from pyworkflow.runtime.driver import (
    RunLinks,
    create_run,
    drive,
    new_run_record,
    resume_run,
)
from pyworkflow.runtime.factory import register_runtime
from pyworkflow.runtime.lease import new_owner
from pyworkflow.scheduler.timers import TimerService
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs
from pyworkflow.storage.base import CommitBatch, StorageBackend
from pyworkflow.storage.schemas import RunStatus, Timer, WorkflowRun

_services: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, TimerService]] = (
    weakref.WeakKeyDictionary()
)


def timer_service(storage: StorageBackend) -> TimerService:
    """The running timer service for ``storage`` in this event loop (started if needed).

    Call it at process start to finish sleeps, retries and interrupted runs that
    became due while no process was running.
    """
    loop = asyncio.get_running_loop()
    per_loop = _services.setdefault(loop, {})
    service = per_loop.get(id(storage))
    if service is None or service.storage is not storage:
        service = TimerService(
            storage,
            lambda run_id: _resume_quietly(run_id, storage),
            schedule=schedule_processor(storage),
        )
        per_loop[id(storage)] = service
    service.start()
    return service


def notify_timer_service(storage: StorageBackend) -> None:
    """If this loop runs a timer service for ``storage``, have it look again now."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    service = _services.get(loop, {}).get(id(storage))
    if service is not None and service.storage is storage:
        service.notify()


def _notify(storage: StorageBackend) -> Callable[[Suspended], None]:
    """After a suspension on a timer, make the timer service look again."""

    def hook(outcome: Suspended) -> None:
        if outcome.resume_at is not None:
            timer_service(storage).notify()

    return hook


async def _resume_quietly(run_id: str, storage: StorageBackend) -> None:
    try:
        await LocalRuntime().resume_workflow(run_id, storage)
    except Exception as error:
        # The failure is recorded on the run; a timer has nobody to raise it to.
        logger.trace("Background resume of {} ended with {}", run_id, error)


def schedule_processor(storage: StorageBackend) -> Callable[[str], Awaitable[None]]:
    """What a timer service of this runtime does with a schedule's due timer."""

    async def process(schedule_id: str) -> None:
        await _process_schedule(schedule_id, storage)

    return process


async def _process_schedule(schedule_id: str, storage: StorageBackend) -> None:
    # Imported here: the schedule processor builds on this runtime's activator.
    from pyworkflow.scheduler.schedules import process_schedule

    links = links_for(storage)
    await process_schedule(storage, schedule_id, lambda run_id: links.launch(run_id, False))


# Fire-and-forget children run as tasks of their own; keep them referenced.
_background: set[asyncio.Task[None]] = set()


def links_for(storage: StorageBackend) -> RunLinks:
    """Other runs are advanced inline: an awaited child before its parent goes on,
    a woken parent right away; a fire-and-forget child in a background task."""

    async def launch(run_id: str, wait: bool) -> None:
        if wait:
            await _resume_quietly(run_id, storage)
            return
        task = asyncio.get_running_loop().create_task(_resume_quietly(run_id, storage))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def wake(run_id: str) -> None:
        await _resume_quietly(run_id, storage)

    return RunLinks(launch, wake, follow_continuations=True)


class LocalRuntime(Runtime):
    """In-process runtime (the embedded default).

    Example:
        >>> rt = LocalRuntime()
        >>> rt.name, rt.supports_durable
        ('local', True)
    """

    @property
    def name(self) -> str:
        return "local"

    async def start_workflow(
        self,
        workflow_func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run_id: str,
        workflow_name: str,
        storage: StorageBackend | None,
        durable: bool,
        idempotency_key: str | None = None,
        max_duration: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Create the run and execute it until it completes, suspends or fails.

        Re-raises the workflow's exception when the run fails.
        """
        if not durable or storage is None:
            await self._run_transient(workflow_func, args, kwargs, run_id, workflow_name)
            return run_id
        meta = registered_workflow(workflow_name)
        run = new_run_record(
            run_id,
            workflow_name,
            serialize_args(*args),
            serialize_kwargs(**kwargs),
            idempotency_key=idempotency_key,
            max_duration=max_duration or max_duration_text(meta),
        )
        owner = new_owner()
        state = await create_run(storage, run, owner, metadata)
        outcome = await drive(
            storage, run, state, owner, on_suspend=_notify(storage), links=links_for(storage)
        )
        if isinstance(outcome, Failed):
            raise outcome.error
        return run_id

    async def resume_workflow(self, run_id: str, storage: StorageBackend) -> Any:
        """Advance the run now. Returns its result when it completes, else None.

        A run already being advanced elsewhere is left to that activation (None).
        """
        outcome = await resume_run(
            storage, run_id, on_suspend=_notify(storage), links=links_for(storage)
        )
        if isinstance(outcome, WorkflowRun):
            if outcome.status is RunStatus.COMPLETED and outcome.result is not None:
                return deserialize(outcome.result)
            return None
        if outcome is None:
            logger.trace("Run {} is being advanced by another activation", run_id)
        if isinstance(outcome, Failed):
            raise outcome.error
        return outcome.result if isinstance(outcome, Completed) else None

    async def schedule_wake(
        self, run_id: str, wake_time: datetime, storage: StorageBackend
    ) -> None:
        """Resume the run at ``wake_time`` (a durable ``wake`` timer)."""
        await storage.commit(
            CommitBatch(run_id=run_id, timers_upsert=[Timer(run_id, "wake", "wake", wake_time)])
        )
        timer_service(storage).notify()

    async def schedule_resume(self, run_id: str, storage: StorageBackend) -> None:
        """Resume the run now, inline."""
        await self.resume_workflow(run_id, storage)

    async def _run_transient(
        self,
        workflow_func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run_id: str,
        workflow_name: str,
    ) -> None:
        meta = registered_workflow(workflow_name)
        ctx = LocalContext(run_id, workflow_name, None, durable=False)
        ctx._runtime = self.name
        deadline = None
        if max_duration_text(meta):
            run = WorkflowRun(
                run_id,
                workflow_name,
                RunStatus.RUNNING,
                started_at=datetime.now(UTC),
                max_duration=max_duration_text(meta),
            )
            deadline = deadline_of(run)
        outcome = await run_workflow_function(
            ctx,
            meta.original_func,
            args,
            kwargs,
            deadline=deadline,
            max_duration=max_duration_text(meta),
        )
        if isinstance(outcome, Failed):
            raise outcome.error


register_runtime("local", LocalRuntime)
