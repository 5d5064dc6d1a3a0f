"""The Celery runtime: runs execute on Celery workers, started from your process.

``start(wf, ..., runtime="celery", storage=...)`` sends ``pyworkflow.start_workflow``
and returns the run id at once; a workflow worker creates and drives the run, step
workers run its steps, and Beat's tick wakes it from sleeps and retry delays. The
storage must be one every process reaches (SQLite on a shared disk, PostgreSQL):
it travels in each message as a ``storage_config`` dict.

This module imports nothing from Celery until a runtime method runs, so registering
the runtime costs nothing where Celery is not installed.

Example:
    >>> rt = CeleryRuntime(broker_url="redis://broker:6379/0")
    >>> rt.name, rt.supports_durable, rt.supports_transient
    ('celery', True, False)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from pyworkflow.runtime.activator import (
    max_duration_text,
    recovery_settings,
    registered_workflow,
)
from pyworkflow.runtime.base import Runtime
from pyworkflow.runtime.driver import create_run, new_run_record
from pyworkflow.runtime.factory import register_runtime
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs
from pyworkflow.storage.base import CommitBatch, StorageBackend
from pyworkflow.storage.config import storage_to_config
from pyworkflow.storage.schemas import RunStatus, Timer

_INSTALL_HINT = "The celery runtime needs Celery: pip install 'pyworkflow[celery]'."
_apps: dict[tuple[str, str], Any] = {}
_apps_lock = threading.Lock()


def _celery_app(broker_url: str | None, result_backend: str | None) -> Any:
    """The app that publishes for these settings: the module app when they match it,
    else one built (once) for them."""
    try:
        from pyworkflow.celery import app as app_module
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    broker = app_module.resolve_broker_url(broker_url)
    backend = app_module.resolve_result_backend(result_backend)
    default = app_module.celery_app
    if (default.conf.broker_url, default.conf.result_backend) == (broker, backend):
        return default
    with _apps_lock:
        key = (broker, backend)
        if key not in _apps:
            _apps[key] = app_module.create_celery_app(broker, backend)
        return _apps[key]


def shared_storage_config(storage: StorageBackend | None) -> dict[str, Any]:
    """``storage`` as the dict that travels to workers; refuses one they cannot share.

    Example:
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> shared_storage_config(InMemoryStorageBackend())
        Traceback (most recent call last):
        ...
        ValueError: The celery runtime cannot use InMemoryStorageBackend: ...
    """
    config = storage_to_config(storage)
    kind = (config or {}).get("type")
    if storage is None or config is None:
        raise ValueError(
            "The celery runtime runs durable workflows only and needs a storage backend "
            "that its workers share: pass durable=True, storage=SQLiteStorageBackend(path) "
            "or PostgresStorageBackend(dsn=...)."
        )
    if kind in ("memory", "unknown"):
        raise ValueError(
            f"The celery runtime cannot use {type(storage).__name__}: its workers run in "
            "other processes and cannot reach it. Use SQLiteStorageBackend(path) on a "
            "disk every worker mounts, or PostgresStorageBackend(dsn=...)."
        )
    return config


class CeleryRuntime(Runtime):
    """Distributed runtime: sends tasks to Celery workers (durable runs only).

    ``broker_url``/``result_backend`` default to ``PYWORKFLOW_CELERY_BROKER`` /
    ``PYWORKFLOW_CELERY_RESULT_BACKEND``, the YAML file, then local Redis db 0 / db 1.

    Example (not run: needs a broker and workers)::

        run_id = await start(process_order, "A-1", runtime="celery",
                             storage=SQLiteStorageBackend("/shared/wf.db"))
    """

    supports_durable = True
    supports_transient = False

    def __init__(self, broker_url: str | None = None, result_backend: str | None = None) -> None:
        self.broker_url = broker_url
        self.result_backend = result_backend

    @property
    def name(self) -> str:
        return "celery"

    async def _send(self, task_name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        # Publishing blocks (and retries while the broker is away): not in the caller's loop.
        app = _celery_app(self.broker_url, self.result_backend)
        # ignore_result: outcomes are read from storage, never from the result backend.
        await asyncio.to_thread(
            app.send_task, task_name, args=args, kwargs=kwargs, ignore_result=True
        )

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
        """Create the run (PENDING) and send ``pyworkflow.start_workflow``; returns
        ``run_id`` without waiting for a worker.

        The run exists before the message is sent, with a resume guard timer: if the
        broker loses the message, the next tick starts the run anyway.
        """
        if not durable:
            raise ValueError(
                "The celery runtime runs durable workflows only: pass durable=True "
                "(or use runtime='local' for a transient run)."
            )
        config = shared_storage_config(storage)
        assert storage is not None  # shared_storage_config refused None
        meta = registered_workflow(workflow_name)
        recover, attempts = recovery_settings(meta)
        run = new_run_record(
            run_id,
            workflow_name,
            serialize_args(*args),
            serialize_kwargs(**kwargs),
            idempotency_key=idempotency_key,
            max_duration=max_duration or max_duration_text(meta),
            recover_on_worker_loss=recover,
            max_recovery_attempts=attempts,
            status=RunStatus.PENDING,
        )
        await create_run(storage, run, None, metadata, guard=True)
        try:
            await self._send(
                "pyworkflow.start_workflow",
                [workflow_name, serialize_args(*args), serialize_kwargs(**kwargs), run_id],
                {"storage_config": config, "idempotency_key": idempotency_key},
            )
        except Exception as error:
            # The run is recorded with its resume guard: a tick will start it. Raising
            # here would invite the caller to start it a second time.
            logger.warning(
                "Could not send the start of run {} ({}); it will start from its resume "
                "guard once the broker is back",
                run_id,
                error,
            )
        return run_id

    async def resume_workflow(self, run_id: str, storage: StorageBackend) -> None:
        """Send ``pyworkflow.resume_workflow``; a workflow worker advances the run."""
        config = shared_storage_config(storage)
        await self._send("pyworkflow.resume_workflow", [run_id], {"storage_config": config})

    async def schedule_resume(self, run_id: str, storage: StorageBackend) -> None:
        """Resume the run soon (e.g. after a hook received its payload)."""
        await self.resume_workflow(run_id, storage)

    async def schedule_wake(
        self, run_id: str, wake_time: datetime, storage: StorageBackend
    ) -> None:
        """Resume the run at ``wake_time`` through a durable ``wake`` timer (the tick
        fires it), never a long broker countdown."""
        when = wake_time if wake_time.tzinfo is not None else wake_time.replace(tzinfo=UTC)
        await storage.commit(
            CommitBatch(run_id=run_id, timers_upsert=[Timer(run_id, "wake", "wake", when)])
        )


register_runtime("celery", CeleryRuntime)
