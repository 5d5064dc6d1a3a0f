"""File storage: JSON files in a folder, safe for several processes on one machine.

Layout under ``base_path``::

    runs/{run_id}.json       the run row        runs/{run_id}.cancel   the cancel flag
    events/{run_id}.jsonl    the event log      leases/{run_id}.json   activation lease
    steps/{step_id}.json     step records       hooks/{run_id}/{hook_id}.json
    schedules/{id}.json      schedules          timers/{run_id}/{timer_id}.json
    _token_index.json        token -> hook      _idempotency_index.json  key -> run
    .locks/                  filelock files     .journal/              unfinished commits

Ids that are not plain file names are stored under a readable, hashed form.

Concurrency: records of one run are written under that run's lock; records that
cross runs (timers, indexes, schedules, steps) under a global lock, always taken
after a run lock so writers cannot deadlock. Readers take no lock: every record file
is replaced atomically and a half-appended log line is ignored.

Crash safety: a transaction that writes more than one thing first writes its whole
write set to ``.journal/``; whoever next takes the same locks (or a reader that finds
the journal) finishes it, so a commit is applied entirely or not at all even if the
process dies half-way. Files are not fsync'ed: this protects against process
crashes, not power loss (use SQLite or PostgreSQL for that). If writing fails
half-way (a full disk), the call raises and the journal completes the commit later.

Example:
    >>> import asyncio, tempfile
    >>> from pyworkflow.storage.schemas import RunStatus, WorkflowRun
    >>> store = FileStorageBackend(tempfile.mkdtemp())
    >>> asyncio.run(store.create_run(WorkflowRun("run_1", "order", RunStatus.PENDING)))
    >>> (store.runs_dir / "run_1.json").exists()
    True
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

from filelock import FileLock

from pyworkflow.storage.file_core import RecordStorageBackend
from pyworkflow.storage.file_io import read_json, safe_name
from pyworkflow.storage.file_store import FileStore, ScopedStore
from pyworkflow.storage.file_tables import Txn

R = TypeVar("R")


class FileStorageBackend(RecordStorageBackend):
    """Durable storage in plain files (see the module docstring).

    Example:
        >>> import tempfile
        >>> FileStorageBackend(tempfile.mkdtemp()).runs_dir.name
        'runs'
    """

    def __init__(self, base_path: str = "./pyworkflow_data") -> None:
        self.base_path = Path(base_path)
        self.runs_dir = self.base_path / "runs"
        self.events_dir = self.base_path / "events"
        self.steps_dir = self.base_path / "steps"
        self.hooks_dir = self.base_path / "hooks"
        self.schedules_dir = self.base_path / "schedules"
        self.timers_dir = self.base_path / "timers"
        self.leases_dir = self.base_path / "leases"
        self.locks_dir = self.base_path / ".locks"
        self.journal_dir = self.base_path / ".journal"
        self._files = FileStore(self.base_path)
        self._make_dirs()

    def _make_dirs(self) -> None:
        for folder in (
            self.runs_dir,
            self.events_dir,
            self.steps_dir,
            self.hooks_dir,
            self.schedules_dir,
            self.timers_dir,
            self.leases_dir,
            self.locks_dir,
            self.journal_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"FileStorageBackend(base_path={str(self.base_path)!r})"

    async def connect(self) -> None:
        """Create the folders and finish any commit a crashed process left behind."""
        self._make_dirs()
        await asyncio.to_thread(self._settle)

    # ------------------------------------------------------------------ transactions

    async def _read(self, fn: Callable[[Txn], R]) -> R:
        return await asyncio.to_thread(self._read_sync, fn)

    async def _write(
        self, fn: Callable[[Txn], R], run_id: str | None = None, shared: bool = False
    ) -> R:
        return await asyncio.to_thread(self._write_sync, fn, run_id, shared)

    def _read_sync(self, fn: Callable[[Txn], R]) -> R:
        self._settle()
        return fn(Txn(ScopedStore(self._files, None, {"run_id": None, "shared": False})))

    def _write_sync(self, fn: Callable[[Txn], R], run_id: str | None, shared: bool) -> R:
        with self._hold(run_id, shared) as journal:
            scope = {"run_id": run_id, "shared": shared}
            txn = Txn(ScopedStore(self._files, journal, scope))
            result = fn(txn)
            txn.flush()
            return result

    # ------------------------------------------------------------------ locks and journals

    def _lock(self, name: str) -> FileLock:
        # A fresh lock object per use: flock() then excludes other threads of this
        # process as well as other processes. filelock waits by polling; a short
        # interval keeps a waiting writer from being starved by a busy one.
        return FileLock(str(self.locks_dir / f"{name}.lock"), poll_interval=0.002)

    def _journal(self, run_id: str | None) -> Path:
        name = f"run-{safe_name(run_id)}" if run_id is not None else "global"
        return self.journal_dir / f"{name}.json"

    @contextmanager
    def _hold(self, run_id: str | None, shared: bool) -> Iterator[Path]:
        """Hold the run's lock and/or the global lock; finish what a crashed holder
        of the same locks left in its journal; yield this transaction's journal path."""
        with ExitStack() as stack:
            if run_id is not None:
                stack.enter_context(self._lock(f"run-{safe_name(run_id)}"))
            if shared:
                stack.enter_context(self._lock("global"))
                self._files.recover(self._journal(None))
            if run_id is not None:
                self._recover_run(run_id, holding_global=shared)
            yield self._journal(run_id)

    def _recover_run(self, run_id: str, holding_global: bool) -> None:
        journal = self._journal(run_id)
        pending = read_json(journal)
        if pending is None:
            return
        if pending.get("shared") and not holding_global:
            with self._lock("global"):
                self._files.recover(journal)
        else:
            self._files.recover(journal)

    def _settle(self) -> None:
        """Finish journals of crashed writers before reading (a live writer's journal
        just makes us wait for its locks, after which the journal is gone)."""
        try:
            names = os.listdir(self.journal_dir)
        except FileNotFoundError:
            return
        for name in names:
            if not name.endswith(".json"):
                continue
            pending = read_json(self.journal_dir / name)
            if pending is not None:
                with self._hold(pending.get("run_id"), bool(pending.get("shared"))):
                    pass  # taking the locks finishes the journal
