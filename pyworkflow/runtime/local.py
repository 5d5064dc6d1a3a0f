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
import contextlib
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from pyworkflow.context.local import LocalContext
from pyworkflow.context.runner import run_workflow_function
from pyworkflow.core.exceptions import WorkflowNotFoundError
from pyworkflow.engine import events as ev
from pyworkflow.engine.outcome import Completed, Failed, Interrupted, Outcome, Suspended
from pyworkflow.engine.state import RunState
from pyworkflow.runtime.activator import (
    activate,
    deadline_of,
    max_duration_text,
    registered_workflow,
)
from pyworkflow.runtime.base import Runtime
from pyworkflow.runtime.factory import register_runtime
from pyworkflow.runtime.lease import LEASE_SECONDS, acquire, new_owner
from pyworkflow.scheduler.timers import TimerService
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs
from pyworkflow.storage.base import CommitBatch, RunUpdate, StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, Timer, WorkflowRun

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
        service = TimerService(storage, lambda run_id: _resume_quietly(run_id, storage))
        per_loop[id(storage)] = service
    service.start()
    return service


async def _resume_quietly(run_id: str, storage: StorageBackend) -> None:
    try:
        await LocalRuntime().resume_workflow(run_id, storage)
    except Exception as error:
        # The failure is recorded on the run; a timer has nobody to raise it to.
        logger.debug("Timer resume of {} ended with {}", run_id, error)


class LocalRuntime(Runtime):
    """In-process runtime (the embedded default)."""

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
        now = datetime.now(UTC)
        run = WorkflowRun(
            run_id=run_id,
            workflow_name=workflow_name,
            status=RunStatus.RUNNING,
            created_at=now,
            updated_at=now,
            started_at=now,
            input_args=serialize_args(*args),
            input_kwargs=serialize_kwargs(**kwargs),
            idempotency_key=idempotency_key,
            max_duration=max_duration or max_duration_text(meta),
        )
        started = ev.create_workflow_started_event(
            run_id, workflow_name, run.input_args, run.input_kwargs, metadata
        )
        deadline = deadline_of(run)
        owner = new_owner()
        await storage.commit(
            CommitBatch(
                run_id=run_id,
                events=[started],
                expected_sequence=-1,
                create_run=run,
                lease_owner=owner,
                lease_seconds=LEASE_SECONDS,
                timers_upsert=[Timer(run_id, "deadline", "max_duration", deadline)]
                if deadline
                else [],
            )
        )
        outcome = await self._drive(storage, run, RunState.from_events(run_id, [started]), owner)
        if isinstance(outcome, Failed):
            raise outcome.error
        return run_id

    async def resume_workflow(self, run_id: str, storage: StorageBackend) -> Any:
        """Advance the run now. Returns its result when it completes, else None.

        A run already being advanced elsewhere is left to that activation (None).
        """
        run = await storage.get_run(run_id)
        if run is None:
            raise WorkflowNotFoundError(run_id)
        if run.status in TERMINAL_STATUSES:
            if run.status is RunStatus.COMPLETED and run.result is not None:
                return deserialize(run.result)
            return None
        registered_workflow(run.workflow_name)
        owner = new_owner()
        if not await acquire(storage, run_id, owner):
            logger.debug("Run {} is being advanced by another activation", run_id)
            return None
        outcome = await self._drive(storage, run, None, owner, mark_running=True)
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

    async def _drive(
        self,
        storage: StorageBackend,
        run: WorkflowRun,
        state: RunState | None,
        owner: str,
        mark_running: bool = False,
    ) -> Outcome:
        """Activate while the run has events this process has not acted on yet."""
        while True:
            try:
                if mark_running:
                    await storage.commit(
                        CommitBatch(run_id=run.run_id, run_update=RunUpdate(RunStatus.RUNNING))
                    )
                outcome, act = await activate(storage, run, state, owner)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.shield(storage.release_run_lease(run.run_id, owner))
                raise
            if isinstance(outcome, Interrupted):
                raise outcome.error
            if not isinstance(outcome, Suspended):
                return outcome
            if outcome.resume_at is not None:
                timer_service(storage).notify()
            # An event appended while we held the lease (a hook, a cancellation) found
            # the lease taken and left the run to us: look for it after releasing.
            latest = await storage.get_latest_event(run.run_id)
            if latest is None or (latest.sequence or 0) <= act.state.last_sequence:
                return outcome
            owner = new_owner()
            if not await acquire(storage, run.run_id, owner):
                return outcome
            state, mark_running = None, True

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
