"""In-memory storage: records in dicts, for tests and transient use.

Thread-safe and asyncio-safe: each operation runs as one transaction, with no
``await`` inside, under a single ``RLock``, so it is atomic with respect to other
threads and other tasks. Records are deep-copied on the way in and out, so callers
that mutate what they passed or got back cannot corrupt the store. The semantics
are shared with the file backend (:mod:`pyworkflow.storage.file_core`).

Example:
    >>> import asyncio
    >>> from pyworkflow.storage.schemas import RunStatus, WorkflowRun
    >>> store = InMemoryStorageBackend()
    >>> asyncio.run(store.create_run(WorkflowRun("run_1", "order", RunStatus.PENDING)))
    >>> len(store)
    1
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pyworkflow.engine.events import Event, dedup_key
from pyworkflow.storage.file_core import RecordStorageBackend
from pyworkflow.storage.file_tables import (
    RUNS,
    SCHEDULES,
    Key,
    LogState,
    Store,
    Table,
    Txn,
    Writes,
)

T = TypeVar("T")
R = TypeVar("R")


class MemoryStore(Store):
    """Tables as dicts of deep copies; event logs as lists (index = sequence)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Key, Any]] = {}
        self.logs: dict[str, list[Event]] = {}
        self.keys: dict[str, set[str]] = {}

    def load(self, table: Table[T], key: Key) -> T | None:
        """A copy of one record, or None."""
        found: T | None = self.tables.get(table.name, {}).get(key)
        return copy.deepcopy(found)

    def load_all(self, table: Table[T], prefix: Key) -> list[T]:
        """Copies of the records whose key starts with ``prefix``."""
        rows = self.tables.get(table.name, {})
        found: list[T] = [r for k, r in rows.items() if k[: len(prefix)] == prefix]
        return copy.deepcopy(found)

    def log_state(self, run_id: str) -> LogState:
        """The last sequence (-1 when empty) and the dedup keys of the run."""
        return LogState(len(self.logs.get(run_id, [])) - 1, self.keys.get(run_id, set()))

    def read_log(self, run_id: str) -> list[Event]:
        """Copies of the run's events."""
        return copy.deepcopy(self.logs.get(run_id, []))

    def apply(self, writes: Writes, appends: dict[str, list[Event]]) -> None:
        """Store the write set; copies are made first so a failing copy writes nothing."""
        staged = [(t.name, key, copy.deepcopy(r)) for (_, key), (t, r) in writes.items()]
        staged_logs = {run_id: copy.deepcopy(events) for run_id, events in appends.items()}
        for name, key, record in staged:
            rows = self.tables.setdefault(name, {})
            if record is None:
                rows.pop(key, None)
            else:
                rows[key] = record
        for run_id, events in staged_logs.items():
            self.logs.setdefault(run_id, []).extend(events)
            found = (dedup_key(e) for e in events)
            self.keys.setdefault(run_id, set()).update(k for k in found if k is not None)


class InMemoryStorageBackend(RecordStorageBackend):
    """A process-local backend; nothing survives the process.

    Example:
        >>> InMemoryStorageBackend()
        InMemoryStorageBackend(runs=0, events=0, schedules=0)
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._store = MemoryStore()

    async def _read(self, fn: Callable[[Txn], R]) -> R:
        with self._lock:
            return fn(Txn(self._store))

    async def _write(
        self, fn: Callable[[Txn], R], run_id: str | None = None, shared: bool = False
    ) -> R:
        # One lock guards everything here, so run_id/shared need no distinction.
        with self._lock:
            txn = Txn(self._store)
            result = fn(txn)
            txn.flush()
            return result

    def clear(self) -> None:
        """Forget every record (handy between tests)."""
        with self._lock:
            self._store = MemoryStore()

    def __len__(self) -> int:
        with self._lock:
            return len(self._store.tables.get(RUNS.name, {}))

    def __repr__(self) -> str:
        with self._lock:
            events = sum(len(log) for log in self._store.logs.values())
            schedules = len(self._store.tables.get(SCHEDULES.name, {}))
            return (
                f"InMemoryStorageBackend(runs={len(self)}, events={events}, schedules={schedules})"
            )
