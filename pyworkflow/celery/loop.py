"""Run the engine's coroutines from Celery's synchronous tasks.

Each worker process keeps **one** asyncio event loop, in a daemon thread started on
first use, and one connected storage backend per ``storage_config``. A task hands
its coroutine to that loop and waits for the result. ``asyncio.run()`` per task
would open and close a database connection (and a thread pool, for SQLite) every
time, which costs more than most steps.

A forked child (Celery's prefork pool) does not inherit the parent's thread, so the
loop and the storages are created again in the child, on first use there.

Example:
    >>> async def answer() -> int:
    ...     return 42
    >>> run(answer())
    42
    >>> run(answer()) + run(answer())
    84
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from pyworkflow.config import get_config
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.config import config_to_storage, storage_to_config

T = TypeVar("T")

#: The cache key of "whatever storage this worker is configured with".
CONFIGURED = "<configured>"


class _LoopThread:
    """An event loop running forever in a daemon thread of the current process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.storages: dict[str, StorageBackend] = {}
        self.storage_lock: asyncio.Lock | None = None
        self.thread = threading.Thread(
            target=self._serve, name="pyworkflow-celery-loop", daemon=True
        )
        self.thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()


_current: _LoopThread | None = None
_lock = threading.Lock()


def _loop_thread() -> _LoopThread:
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = _LoopThread()
        return _current


def _forget_after_fork() -> None:
    # The child holds a copy of the lock and of a loop whose thread does not exist.
    global _current, _lock
    _current = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on this process's worker loop and return its result.

    Must not be called from the loop's own thread (it would wait for itself).
    """
    holder = _loop_thread()
    if threading.current_thread() is holder.thread:
        coro.close()
        raise RuntimeError("pyworkflow.celery.loop.run() called from inside the worker loop")
    future = asyncio.run_coroutine_threadsafe(coro, holder.loop)
    try:
        return future.result(timeout)
    except BaseException:
        # A timeout, Celery's soft time limit or a shutdown interrupted the wait: stop
        # the coroutine too (a no-op when it is the coroutine's own error).
        future.cancel()
        raise


def config_key(storage_config: Mapping[str, Any] | None) -> str:
    """The cache key of a storage config (key order does not matter).

    Example:
        >>> config_key({"type": "sqlite", "base_path": "a.db"}) == config_key(
        ...     {"base_path": "a.db", "type": "sqlite"})
        True
        >>> config_key(None)
        '<configured>'
    """
    if not storage_config:
        return CONFIGURED
    return json.dumps(dict(storage_config), sort_keys=True, default=str)


def _build(storage_config: Mapping[str, Any] | None) -> StorageBackend:
    if storage_config:
        storage = config_to_storage(storage_config)
    else:
        storage = get_config().storage or config_to_storage({})
    if (storage_to_config(storage) or {}).get("type") == "memory":
        raise ValueError(
            "An in-memory storage cannot be shared between Celery workers: every process "
            "has its own. Configure a shared one (PYWORKFLOW_STORAGE_TYPE=sqlite with "
            "PYWORKFLOW_STORAGE_PATH on a shared disk, or postgres)."
        )
    return storage


def _identity(storage: StorageBackend) -> str:
    """Which database ``storage`` talks to (file paths made absolute)."""
    config = dict(storage_to_config(storage) or {})
    if config.get("type") in ("sqlite", "file") and config.get("base_path"):
        config["base_path"] = str(Path(config["base_path"]).resolve())
    return config_key(config)


async def storage_for(storage_config: Mapping[str, Any] | None) -> StorageBackend:
    """The connected storage for ``storage_config`` in this process (connected once).

    ``None`` means the worker's own configuration (``PYWORKFLOW_STORAGE_*`` or
    ``./pyworkflow.config.yaml``), else the embedded SQLite default. Two configs naming
    the same database share one backend: two SQLite backends on one file in one
    process would each open their own connections, which SQLite's POSIX locks do not
    tolerate well.

    Example (not run: it creates a database file)::

        storage = run(storage_for({"type": "sqlite", "base_path": "/shared/wf.db"}))
    """
    holder = _loop_thread()
    key = config_key(storage_config)
    storage = holder.storages.get(key)
    if storage is not None:
        return storage
    if holder.storage_lock is None:
        holder.storage_lock = asyncio.Lock()
    async with holder.storage_lock:  # two concurrent tasks must not both connect
        storage = holder.storages.get(key)
        if storage is None:
            built = _build(storage_config)
            identity = _identity(built)
            storage = holder.storages.get(identity)
            if storage is None:
                storage = built
                await storage.connect()
                holder.storages[identity] = storage
            holder.storages[key] = storage
    return storage


def shutdown(timeout: float = 5.0) -> None:
    """Disconnect this process's storages and stop its loop (at worker shutdown).

    Example:
        >>> shutdown()   # the next run() starts a fresh loop
    """
    global _current
    with _lock:
        holder, _current = _current, None
    if holder is None or holder.pid != os.getpid():
        return

    async def close_all() -> None:
        for storage in {id(s): s for s in holder.storages.values()}.values():
            try:
                await storage.disconnect()
            except Exception as error:  # shutting down: report, keep closing the others
                logger.warning("Could not disconnect storage {}: {}", type(storage), error)

    try:
        asyncio.run_coroutine_threadsafe(close_all(), holder.loop).result(timeout)
    except Exception as error:
        logger.warning("Storage shutdown did not finish: {}", error)
    holder.loop.call_soon_threadsafe(holder.loop.stop)
    holder.thread.join(timeout)
