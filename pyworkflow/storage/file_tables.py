"""Record tables and the transaction object behind the file and in-memory backends.

Both backends keep the same logical tables (runs, leases, timers, hooks, ...) and
one event log per run; they differ only in where the records live. The shared
implementation of the storage contract (``file_core`` / ``file_catalog``) talks to a
:class:`Txn`, which buffers every write and hands the whole write set to the
backend's :class:`Store` at the end. A transaction that raises therefore writes
nothing, in either backend.

Each table says which lock guards it: the run's lock (records of one run) or the
global lock (records that cross runs: timers, which schedulers claim across runs;
the token and idempotency indexes; schedules; steps).

Example:
    >>> from pyworkflow.storage.schemas import RunStatus, WorkflowRun
    >>> RUNS.key(WorkflowRun("run_1", "order", RunStatus.PENDING))
    ('run_1',)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

from pyworkflow.engine.events import Event
from pyworkflow.storage.schemas import Hook, Schedule, StepExecution, Timer, WorkflowRun

T = TypeVar("T")
R = TypeVar("R")
Key = tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Table(Generic[T]):
    """A kind of record: how to key it, encode it, and where the file backend keeps it.

    ``shared`` tables are written under the global lock, the others under the lock
    of the run in the first key part. ``index_file`` puts the whole table in one JSON
    object (small lookup indexes); otherwise each record is ``folder/<key parts><suffix>``.
    """

    name: str
    key: Callable[[T], Key]
    encode: Callable[[T], dict[str, Any]]
    decode: Callable[[dict[str, Any]], T]
    shared: bool
    folder: str = ""
    suffix: str = ".json"
    index_file: str | None = None
    key_parts: int = 1


def _iso(value: datetime) -> str:
    return value.isoformat()


def _parse(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class LeaseRow:
    """A run's activation lease as stored."""

    run_id: str
    owner: str
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"run_id": self.run_id, "owner": self.owner, "expires_at": _iso(self.expires_at)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LeaseRow:
        """The inverse of :meth:`to_dict`."""
        return cls(run_id=d["run_id"], owner=d["owner"], expires_at=_parse(d["expires_at"]))


@dataclass
class FlagRow:
    """A cancellation request for a run (no run row needed)."""

    run_id: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"run_id": self.run_id, "created_at": _iso(self.created_at)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlagRow:
        """The inverse of :meth:`to_dict`."""
        return cls(run_id=d["run_id"], created_at=_parse(d["created_at"]))


@dataclass
class RefRow:
    """An index entry: ``name`` (a hook token or idempotency key) points at a record."""

    name: str
    run_id: str
    hook_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "run_id": self.run_id, "hook_id": self.hook_id}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RefRow:
        """The inverse of :meth:`to_dict`."""
        return cls(name=d["name"], run_id=d["run_id"], hook_id=d.get("hook_id"))


RUNS: Table[WorkflowRun] = Table(
    "runs", lambda r: (r.run_id,), WorkflowRun.to_dict, WorkflowRun.from_dict, False, "runs"
)
FLAGS: Table[FlagRow] = Table(
    "flags", lambda f: (f.run_id,), FlagRow.to_dict, FlagRow.from_dict, False, "runs", ".cancel"
)
LEASES: Table[LeaseRow] = Table(
    "leases", lambda row: (row.run_id,), LeaseRow.to_dict, LeaseRow.from_dict, False, "leases"
)
HOOKS: Table[Hook] = Table(
    "hooks",
    lambda h: (h.run_id, h.hook_id),
    Hook.to_dict,
    Hook.from_dict,
    False,
    "hooks",
    key_parts=2,
)
TIMERS: Table[Timer] = Table(
    "timers",
    lambda t: (t.run_id, t.timer_id),
    Timer.to_dict,
    Timer.from_dict,
    True,
    "timers",
    key_parts=2,
)
STEPS: Table[StepExecution] = Table(
    "steps", lambda s: (s.step_id,), StepExecution.to_dict, StepExecution.from_dict, True, "steps"
)
SCHEDULES: Table[Schedule] = Table(
    "schedules",
    lambda s: (s.schedule_id,),
    Schedule.to_dict,
    Schedule.from_dict,
    True,
    "schedules",
)
TOKENS: Table[RefRow] = Table(
    "tokens",
    lambda ref: (ref.name,),
    RefRow.to_dict,
    RefRow.from_dict,
    True,
    index_file="_token_index.json",
)
IDEMPOTENCY: Table[RefRow] = Table(
    "idempotency",
    lambda ref: (ref.name,),
    RefRow.to_dict,
    RefRow.from_dict,
    True,
    index_file="_idempotency_index.json",
)


@dataclass
class LogState:
    """The tail of a run's event log: its last sequence (-1 when empty) and dedup keys."""

    last_sequence: int
    keys: set[str]


# A write set: (table name, key) -> (table, record or None for a delete).
Writes = dict[tuple[str, Key], tuple[Table[Any], Any]]


class Store(ABC):
    """Where records live. Called only from inside a transaction holding the locks."""

    @abstractmethod
    def load(self, table: Table[T], key: Key) -> T | None:
        """A fresh copy of one record, or None."""

    @abstractmethod
    def load_all(self, table: Table[T], prefix: Key) -> list[T]:
        """Fresh copies of the records whose key starts with ``prefix``."""

    @abstractmethod
    def log_state(self, run_id: str) -> LogState:
        """The run's last sequence and dedup keys (caller holds the run's lock)."""

    @abstractmethod
    def read_log(self, run_id: str) -> list[Event]:
        """The run's events in sequence order."""

    @abstractmethod
    def apply(self, writes: Writes, appends: dict[str, list[Event]]) -> None:
        """Make a transaction's write set durable, all of it or (on a crash) none."""


class Txn:
    """A unit of work: reads see its own buffered writes; nothing is stored until
    :meth:`flush`.

    Example:
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> txn = Txn(InMemoryStorageBackend()._store)
        >>> txn.get(RUNS, ("run_1",)) is None
        True
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._writes: Writes = {}
        self._appends: dict[str, list[Event]] = {}

    def get(self, table: Table[T], key: Key) -> T | None:
        """One record (this transaction's version when it wrote it)."""
        buffered = self._writes.get((table.name, key))
        if buffered is not None:
            return cast("T | None", buffered[1])
        return self._store.load(table, key)

    def scan(self, table: Table[T], prefix: Key = ()) -> list[T]:
        """All records whose key starts with ``prefix``."""
        found = {table.key(r): r for r in self._store.load_all(table, prefix)}
        for (name, key), (_, record) in self._writes.items():
            if name == table.name and key[: len(prefix)] == prefix:
                if record is None:
                    found.pop(key, None)
                else:
                    found[key] = cast("T", record)
        return list(found.values())

    def put(self, table: Table[T], record: T) -> None:
        """Insert or replace ``record``."""
        self._writes[(table.name, table.key(record))] = (table, record)

    def delete(self, table: Table[Any], key: Key) -> None:
        """Delete a record (fine when absent)."""
        self._writes[(table.name, key)] = (table, None)

    def log_state(self, run_id: str) -> LogState:
        """See :meth:`Store.log_state`."""
        return self._store.log_state(run_id)

    def events(self, run_id: str) -> list[Event]:
        """The run's stored events (without this transaction's appends)."""
        return self._store.read_log(run_id)

    def append(self, run_id: str, events: list[Event]) -> None:
        """Append events (their sequences already assigned)."""
        if events:
            self._appends.setdefault(run_id, []).extend(events)

    def flush(self) -> None:
        """Hand the write set to the store."""
        if self._writes or self._appends:
            self._store.apply(self._writes, self._appends)
