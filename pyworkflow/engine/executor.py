"""The execution API: start runs, resume them, read them back.

Example:
    >>> import asyncio
    >>> from pyworkflow import workflow, start, get_workflow_run
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> @workflow(name="doctest_exec")
    ... async def hello(name: str) -> str:
    ...     return f"hello {name}"
    >>> async def main():
    ...     store = InMemoryStorageBackend()
    ...     run_id = await start(hello, "ada", durable=True, storage=store)
    ...     return (await get_workflow_run(run_id, storage=store)).status.value
    >>> asyncio.run(main())
    'completed'
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from pyworkflow.config import get_config
from pyworkflow.core.exceptions import (
    CancellationError,
    WorkflowAlreadyRunningError,
    WorkflowError,
    WorkflowNotFoundError,
)
from pyworkflow.core.registry import get_workflow_by_func
from pyworkflow.engine.cancel_api import cancel_workflow
from pyworkflow.engine.events import Event
from pyworkflow.engine.followups import final_run
from pyworkflow.engine.ids import new_run_id
from pyworkflow.engine.storage_choice import (
    ConfigurationError,
    embedded_storage_in_use,
    ensure_connected,
    resolve_storage,
)
from pyworkflow.runtime.factory import get_runtime, validate_runtime_durable
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, WorkflowRun

__all__ = [
    "ConfigurationError",
    "cancel_workflow",
    "embedded_storage_in_use",
    "ensure_connected",
    "get_workflow_chain",
    "get_workflow_events",
    "get_workflow_result",
    "get_workflow_run",
    "resolve_storage",
    "resume",
    "start",
]


async def _existing_for_key(storage: StorageBackend, key: str) -> str | None:
    existing = await storage.get_run_by_idempotency_key(key)
    if existing is None:
        return None
    if existing.status is RunStatus.RUNNING:
        raise WorkflowAlreadyRunningError(existing.run_id)
    return existing.run_id


async def start(
    workflow_func: Callable[..., Any],
    *args: Any,
    runtime: str | None = None,
    durable: bool | None = None,
    storage: StorageBackend | None = None,
    idempotency_key: str | None = None,
    **kwargs: Any,
) -> str:
    """Start a run of ``workflow_func`` and return its run id (never the result).

    On the local runtime the run executes right away, until it completes, suspends
    (sleep, retry delay) or fails; a failure is re-raised, carrying the run id as its
    ``run_id`` attribute (unless it has one already). With an
    ``idempotency_key``, a finished run with that key returns its id again and a
    running one raises ``WorkflowAlreadyRunningError``.

    Example:
        >>> from pyworkflow import workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_start")
        ... async def ping() -> str:
        ...     return "pong"
        >>> store = InMemoryStorageBackend()
        >>> run_id = asyncio.run(start(ping, durable=True, storage=store, idempotency_key="k1"))
        >>> again = asyncio.run(start(ping, durable=True, storage=store, idempotency_key="k1"))
        >>> run_id.startswith("run_"), again == run_id  # same key: the finished run's id
        (True, True)
    """
    meta = get_workflow_by_func(workflow_func)
    if meta is None:
        name = getattr(workflow_func, "__name__", repr(workflow_func))
        raise ValueError(
            f"Function {name} is not registered as a workflow. Decorate it with @workflow "
            "and make sure its module is imported before calling start()."
        )
    config = get_config()
    rt = get_runtime(runtime or config.default_runtime)
    if durable is None:
        durable = meta.durable if meta.durable is not None else config.default_durable
        # A runtime that only runs durable workflows (Celery) needs no durable=True.
        durable = durable or not rt.supports_transient
    validate_runtime_durable(rt, durable)
    store = storage if storage is not None else config.storage
    if durable and store is None:
        raise ConfigurationError(
            "Durable workflows need a storage backend: pass storage=..., call "
            "pyworkflow.configure(storage=SQLiteStorageBackend()), or set "
            "PYWORKFLOW_STORAGE_TYPE=sqlite."
        )
    # Encode now: an argument that cannot be stored fails before anything is written.
    serialize_args(*args)
    serialize_kwargs(**kwargs)
    if durable and store is not None:
        await ensure_connected(store)
        if idempotency_key is not None:
            existing = await _existing_for_key(store, idempotency_key)
            if existing is not None:
                return existing
    run_id = new_run_id()
    try:
        return await rt.start_workflow(
            meta.func,
            tuple(args),
            dict(kwargs),
            run_id,
            meta.name,
            store if durable else None,
            durable,
            idempotency_key=idempotency_key,
        )
    except Exception as error:
        if durable and store is not None and idempotency_key is not None:
            # Another start with the same key may have won the race to create the run.
            existing = await _existing_for_key(store, idempotency_key)
            if existing is not None and existing != run_id:
                return existing
        if durable and not hasattr(error, "run_id"):
            # The caller gets no return value, so the error says which run failed.
            with contextlib.suppress(AttributeError, TypeError):
                error.run_id = run_id  # type: ignore[attr-defined]
        raise


async def resume(
    run_id: str, runtime: str | None = None, storage: StorageBackend | None = None
) -> Any:
    """Advance a suspended run now; on the local runtime returns its result, or None
    if it suspended again. A sleep whose time has passed is completed.

    Example:
        >>> import time
        >>> from pyworkflow import sleep, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_resume")
        ... async def nap() -> str:
        ...     await sleep(0.01)
        ...     return "rested"
        >>> store = InMemoryStorageBackend()
        >>> run_id = asyncio.run(start(nap, durable=True, storage=store))
        >>> time.sleep(0.05)  # the sleep is now due
        >>> asyncio.run(resume(run_id, storage=store))
        'rested'
    """
    store = storage if storage is not None else get_config().storage
    if store is None:
        raise ConfigurationError(
            "resume() needs the storage the run lives in: pass storage=... or configure one"
        )
    await ensure_connected(store)
    rt = get_runtime(runtime or get_config().default_runtime)
    return await rt.resume_workflow(run_id, store)


async def get_workflow_run(
    run_id: str, storage: StorageBackend | None = None
) -> WorkflowRun | None:
    """The run record, or None.

    Example:
        >>> from pyworkflow import workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_get_run")
        ... async def ping() -> str:
        ...     return "pong"
        >>> async def main():
        ...     store = InMemoryStorageBackend()
        ...     run_id = await start(ping, durable=True, storage=store)
        ...     run = await get_workflow_run(run_id, storage=store)
        ...     return run.workflow_name, run.status.value
        >>> asyncio.run(main())
        ('doctest_get_run', 'completed')
    """
    return await (await resolve_storage(storage)).get_run(run_id)


async def get_workflow_events(run_id: str, storage: StorageBackend | None = None) -> list[Event]:
    """The run's event log, in order.

    Example:
        >>> from pyworkflow import step, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @step(name="doctest_events_step")
        ... async def one() -> int:
        ...     return 1
        >>> @workflow(name="doctest_events")
        ... async def wf() -> int:
        ...     return await one()
        >>> async def main():
        ...     store = InMemoryStorageBackend()
        ...     run_id = await start(wf, durable=True, storage=store)
        ...     return [e.type.value for e in await get_workflow_events(run_id, storage=store)]
        >>> asyncio.run(main())
        ['workflow.started', 'step.started', 'step.completed', 'workflow.completed']
    """
    return await (await resolve_storage(storage)).get_events(run_id)


async def get_workflow_chain(
    run_id: str, storage: StorageBackend | None = None
) -> list[WorkflowRun]:
    """The continue-as-new chain containing the run, oldest first.

    Example:
        >>> from pyworkflow import workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_chain")
        ... async def ping() -> str:
        ...     return "pong"
        >>> async def main():
        ...     store = InMemoryStorageBackend()
        ...     run_id = await start(ping, durable=True, storage=store)
        ...     return [r.run_id == run_id for r in await get_workflow_chain(run_id, storage=store)]
        >>> asyncio.run(main())  # a run that never continued-as-new is a chain of one
        [True]
    """
    return await (await resolve_storage(storage)).get_workflow_chain(run_id)


def _result_of(run: WorkflowRun) -> Any:
    if run.status is RunStatus.COMPLETED:
        return deserialize(run.result) if run.result is not None else None
    if run.status is RunStatus.CANCELLED:
        raise CancellationError(f"Workflow run {run.run_id} was cancelled")
    if run.status is RunStatus.FAILED:
        raise WorkflowError(f"Workflow run {run.run_id} failed: {run.error}")
    raise WorkflowError(
        f"Workflow run {run.run_id} ended as {run.status.value}; follow its chain with "
        "get_workflow_chain() for the final result"
    )


async def get_workflow_result(
    run_id: str,
    storage: StorageBackend | None = None,
    *,
    wait: bool = False,
    timeout: float | None = None,
    poll_interval: float = 0.05,
) -> Any:
    """The decoded result of a completed run (of a continue-as-new chain: of its last
    run).

    A failed run raises ``WorkflowError`` with its error, a cancelled one
    ``CancellationError``. A run still going raises ``WorkflowError`` unless
    ``wait=True``, which polls until it ends (``TimeoutError`` after ``timeout`` s).

    Example:
        >>> from pyworkflow import workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_result")
        ... async def add(a: int, b: int) -> int:
        ...     return a + b
        >>> async def main():
        ...     store = InMemoryStorageBackend()
        ...     run_id = await start(add, 2, 3, durable=True, storage=store)
        ...     return await get_workflow_result(run_id, storage=store)
        >>> asyncio.run(main())
        5
    """
    store = await resolve_storage(storage)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        run = await store.get_run(run_id)
        if run is None and not wait:
            raise WorkflowNotFoundError(run_id)
        # With wait, a run not there yet is awaited too: a distributed start returns
        # its id before a worker has created the run.
        if run is not None and run.status is RunStatus.CONTINUED_AS_NEW:
            # The chain's result is that of its last run (which may still be going).
            run = await final_run(store, run)
        ended = run is not None and run.status in TERMINAL_STATUSES
        if ended and run is not None and run.status is not RunStatus.CONTINUED_AS_NEW:
            return _result_of(run)
        if not wait:
            assert run is not None
            raise WorkflowError(
                f"Workflow run {run_id} is still {run.status.value}; pass wait=True to wait"
            )
        if deadline is not None and time.monotonic() >= deadline:
            if run is None:
                raise WorkflowNotFoundError(run_id)
            raise TimeoutError(f"Workflow run {run_id} did not finish within {timeout}s")
        await asyncio.sleep(poll_interval)
