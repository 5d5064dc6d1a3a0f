"""Where the file backend keeps records: :class:`FileStore` (see :mod:`.file`).

Example:
    >>> from pathlib import Path
    >>> from pyworkflow.storage.file_tables import RUNS
    >>> FileStore(Path("/data")).record_path(RUNS, ("run_1",)).as_posix()
    '/data/runs/run_1.json'
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pyworkflow.engine.events import Event
from pyworkflow.storage.file_io import (
    LogTail,
    append_at,
    atomic_write,
    corrupt,
    encode_event,
    read_json,
    read_log,
    refresh_tail,
    safe_name,
)
from pyworkflow.storage.file_tables import TIMERS, Key, LogState, Store, Table, Writes

T = TypeVar("T")

# Log tails cached per process (one per recently written run).
_MAX_CACHED_TAILS = 1024


class FileStore:
    """Records as files under ``base`` (layout in :mod:`pyworkflow.storage.file`).

    Transactions reach it through a :class:`ScopedStore`, which knows their locks.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self._tails: dict[Path, LogTail] = {}
        self._tails_lock = threading.Lock()

    def record_path(self, table: Table[Any], key: Key) -> Path:
        """Where one record of ``table`` lives."""
        parts = [safe_name(part) for part in key]
        return self.base.joinpath(table.folder, *parts[:-1], parts[-1] + table.suffix)

    def log_path(self, run_id: str) -> Path:
        """The event log of a run."""
        return self.base / "events" / f"{safe_name(run_id)}.jsonl"

    def _decode(self, table: Table[T], path: Path, data: dict[str, Any]) -> T:
        try:
            return table.decode(data)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise corrupt(path, f"not a valid {table.name} record ({exc!r})") from None

    def load(self, table: Table[T], key: Key) -> T | None:
        """One record, or None."""
        if table.index_file is not None:
            path = self.base / table.index_file
            entry = (read_json(path) or {}).get(key[0])
            return None if entry is None else self._decode(table, path, entry)
        path = self.record_path(table, key)
        data = read_json(path)
        return None if data is None else self._decode(table, path, data)

    def load_all(self, table: Table[T], prefix: Key) -> list[T]:
        """The records whose key starts with ``prefix``."""
        if table.index_file is not None:
            path = self.base / table.index_file
            rows = [self._decode(table, path, d) for d in (read_json(path) or {}).values()]
            return [r for r in rows if table.key(r)[: len(prefix)] == prefix]
        folder = self.base.joinpath(table.folder, *(safe_name(p) for p in prefix))
        found = []
        for path in _files(folder, table.key_parts - len(prefix), table.suffix):
            data = read_json(path)  # None: deleted since the folder was listed
            if data is not None:
                found.append(self._decode(table, path, data))
        return found

    def log_state(self, run_id: str) -> LogState:
        """The run's last sequence and dedup keys (the caller holds the run's lock)."""
        tail = self._tail(run_id)
        return LogState(tail.last_sequence, tail.keys)

    def _tail(self, run_id: str) -> LogTail:
        path = self.log_path(run_id)
        with self._tails_lock:
            cached = self._tails.get(path)
        # The run's lock is held, so no other thread touches this log's tail meanwhile.
        tail = refresh_tail(path, cached)
        with self._tails_lock:
            if len(self._tails) >= _MAX_CACHED_TAILS and path not in self._tails:
                # Only a cache: dropping the oldest entry costs one full re-read later.
                self._tails.pop(next(iter(self._tails)))
            self._tails[path] = tail
        return tail

    def read_log(self, run_id: str) -> list[Event]:
        """The run's committed events."""
        return read_log(self.log_path(run_id))

    def write_set(
        self, writes: Writes, appends: dict[str, list[Event]], journal: Path, scope: dict[str, Any]
    ) -> None:
        """Store a transaction's writes: encoded first (so bad data writes nothing),
        journaled when there is more than one thing to write, then applied."""
        ops = self._encode_writes(writes, scope)
        grown = []
        for run_id, events in appends.items():
            if run_id != scope["run_id"]:
                raise RuntimeError(f"appending to {run_id} without its lock")
            tail = self._tail(run_id)  # also cuts off a crashed half-line
            text = "".join(encode_event(e) for e in events)
            path = self._rel(self.log_path(run_id))
            ops.append({"op": "append", "path": path, "offset": tail.size, "text": text})
            grown.append((tail, events, tail.size + len(text.encode("utf-8"))))
        if not ops:
            return
        single = len(ops) == 1 and sum(len(events) for _, events, _ in grown) <= 1
        if not single:
            atomic_write(journal, json.dumps({**scope, "ops": ops}))
        self._run_ops(ops)
        if not single:
            journal.unlink()
        for tail, events, size in grown:
            tail.absorb(events, size)

    def _encode_writes(self, writes: Writes, scope: dict[str, Any]) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = []
        indexes: dict[str, dict[str, Any]] = {}
        for (_, key), (table, record) in writes.items():
            _check_scope(table, key, scope)
            if table.index_file is not None:
                index = indexes.setdefault(table.index_file, {})
                index[key[0]] = None if record is None else table.encode(record)
                continue
            path = self._rel(self.record_path(table, key))
            if record is None:
                ops.append({"op": "delete", "path": path})
            else:
                text = json.dumps(table.encode(record), indent=2)
                ops.append({"op": "put", "path": path, "text": text})
        ops.extend({"op": "index", "path": name, "entries": e} for name, e in indexes.items())
        return ops

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.base).as_posix()

    def _run_ops(self, ops: list[dict[str, Any]], recovering: bool = False) -> None:
        """Apply journal operations; each is idempotent, so replaying them is safe."""
        for op in ops:
            path = self.base / op["path"]
            if op["op"] == "put":
                in_timers = path.parent.parent == self.base / TIMERS.folder
                if recovering and in_timers and _claimed_copy(path, op["text"]):
                    continue
                atomic_write(path, op["text"])
            elif op["op"] == "delete":
                path.unlink(missing_ok=True)
            elif op["op"] == "index":
                index = read_json(path) or {}
                for name, entry in op["entries"].items():
                    if entry is None:
                        index.pop(name, None)
                    else:
                        index[name] = entry
                atomic_write(path, json.dumps(index, indent=1))
            else:
                append_at(path, op["offset"], op["text"])

    def recover(self, journal: Path) -> None:
        """Finish the transaction described by ``journal`` (its locks are held)."""
        data = read_json(journal)
        if data is not None:
            ops = list(data.get("ops") or [])
            self._run_ops(ops, recovering=True)
            journal.unlink()
            with self._tails_lock:
                for op in ops:  # those logs changed under their cached tails
                    if op["op"] == "append":
                        self._tails.pop(self.base / op["path"], None)


def _claimed_copy(path: Path, text: str) -> bool:
    """Whether ``path`` already holds this timer, claimed since by a scheduler.

    Timers are claimed under the global lock alone, so between a crash and the
    replay of its journal a scheduler may have claimed a timer the crashed commit had
    already written; writing it again would drop that claim and let it fire twice.
    """
    current = read_json(path)
    if current is None:
        return False
    unclaimed = {**current, "claimed_by": None, "claimed_until": None}
    return bool(unclaimed == json.loads(text) and current.get("claimed_by"))


def _check_scope(table: Table[Any], key: Key, scope: dict[str, Any]) -> None:
    """Refuse a write made without the lock that guards it (a bug, never user error)."""
    if table.shared and not scope["shared"]:
        raise RuntimeError(f"writing {table.name} without the global lock")
    if not table.shared and key[0] != scope["run_id"]:
        raise RuntimeError(f"writing {table.name} of {key[0]} without its run lock")


def _files(folder: Path, depth: int, suffix: str) -> Iterator[Path]:
    """Record files ``depth`` levels below ``folder`` ending in ``suffix``."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if depth > 1:
            if entry.is_dir():
                yield from _files(Path(entry.path), depth - 1, suffix)
        elif entry.name.endswith(suffix) and entry.is_file():
            yield Path(entry.path)


class ScopedStore(Store):
    """A transaction's view of a :class:`FileStore`, knowing which locks it holds."""

    def __init__(self, files: FileStore, journal: Path | None, scope: dict[str, Any]) -> None:
        self.files, self.journal, self.scope = files, journal, scope

    def load(self, table: Table[T], key: Key) -> T | None:
        """See :meth:`FileStore.load`."""
        return self.files.load(table, key)

    def load_all(self, table: Table[T], prefix: Key) -> list[T]:
        """See :meth:`FileStore.load_all`."""
        return self.files.load_all(table, prefix)

    def log_state(self, run_id: str) -> LogState:
        """See :meth:`FileStore.log_state`."""
        return self.files.log_state(run_id)

    def read_log(self, run_id: str) -> list[Event]:
        """See :meth:`FileStore.read_log`."""
        return self.files.read_log(run_id)

    def apply(self, writes: Writes, appends: dict[str, list[Event]]) -> None:
        """Store the write set (refused for read-only transactions)."""
        if self.journal is None:
            raise RuntimeError("a read-only transaction cannot write")
        self.files.write_set(writes, appends, self.journal, self.scope)
