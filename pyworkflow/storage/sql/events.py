"""Reading and appending a run's events.

Example:
    >>> append_event(Dialect()).endswith("RETURNING sequence")
    True
"""

from __future__ import annotations

from functools import cached_property, partial
from typing import Any

from pyworkflow.engine.events import Event
from pyworkflow.storage.base import DuplicateEventError, SequenceConflictError
from pyworkflow.storage.sql.codec import event_to_row, row_to_event
from pyworkflow.storage.sql.core import SQLCore, placeholders
from pyworkflow.storage.sql.dialect import Dialect
from pyworkflow.storage.sql.schema import EVENT_COLUMNS

_COLUMNS = ", ".join(EVENT_COLUMNS)
_TYPES = ("text", "int", "text", "text", "ts", "json", "text")


def _typed(dialect: Dialect, positions: range) -> str:
    # Parameters in a SELECT list have no column to take a type from; PostgreSQL would
    # call them text. Explicit casts keep one statement valid for every dialect.
    return ", ".join(f"CAST(? AS {dialect.types[_TYPES[i]]})" for i in positions)


def guarded_insert_event(dialect: Dialect) -> str:
    """Insert one event only if the run's last sequence is the one just before it.

    Parameters: the seven event columns, then ``run_id`` and that previous sequence.
    Stale writers and writers that would leave a gap insert nothing, and the row count
    tells; the UNIQUE (run_id, sequence) constraint remains the backstop.
    """
    return (
        f"INSERT INTO events ({_COLUMNS}) SELECT {_typed(dialect, range(7))}"
        " WHERE (SELECT COALESCE(MAX(sequence), -1) FROM events WHERE run_id = ?) = ?"
    )


def append_event(dialect: Dialect) -> str:
    """Insert one event after the run's last; returns its sequence.

    The statement picks the sequence itself, so a single append is one round trip and
    atomic on its own: no explicit transaction and no prior SELECT. Parameters: the
    event columns without ``sequence``, then ``run_id``.
    """
    return (
        f"INSERT INTO events ({_COLUMNS}) SELECT {_typed(dialect, range(1))},"
        f" COALESCE(MAX(sequence), -1) + 1, {_typed(dialect, range(2, 7))}"
        " FROM events WHERE run_id = ? RETURNING sequence"
    )


LAST_SEQUENCE = "SELECT COALESCE(MAX(sequence), -1) FROM events WHERE run_id = ?"
SELECT_EVENT = "SELECT run_id, sequence, event_id, type, timestamp, data FROM events"
# Databases that do not serialize read-then-insert (PostgreSQL under READ COMMITTED) can
# lose the race for MAX(sequence) + 1 to a writer that does not take the dialect's run
# lock (a commit with an expected sequence); the unique constraint catches it and we
# retry. SQLite never needs a second attempt.
APPEND_ATTEMPTS = 20


class EventsMixin(SQLCore):
    """``record_event`` and the event readers."""

    @cached_property
    def _append_event_sql(self) -> str:
        return self._sql(append_event(self._dialect))

    @cached_property
    def _guarded_insert_sql(self) -> str:
        return self._sql(guarded_insert_event(self._dialect))

    async def record_event(self, event: Event) -> None:
        values = event_to_row(self._dialect, event, 0)
        params = [values[0], *values[2:], event.run_id]
        locked = False
        for _ in range(APPEND_ATTEMPTS):
            try:
                sequence = await self._attempt(
                    partial(self._append_one, event.run_id, params, locked),
                    idempotent=False,
                    recover=lambda: self._sequence_of(event.run_id, event.event_id),
                )
            except Exception as exc:
                constraint = self._constraint(exc)
                if constraint == "events_sequence_uq":
                    # Lost a race for the next sequence: queue behind the other appenders.
                    locked = self._dialect.lock_run_sql is not None
                    continue
                if constraint == "events_dedup_uq":
                    raise DuplicateEventError(event.run_id, str(values[6])) from exc
                raise
            event.sequence = sequence
            return
        raise SequenceConflictError(event.run_id, -1)

    async def _append_one(self, run_id: str, params: list[Any], locked: bool) -> int:
        """One append attempt; the new event's sequence.

        Optimistic first: one autocommit statement, one round trip. ``locked`` (after a
        lost race) appends in a transaction holding the dialect's run lock, so that the
        statement's snapshot, taken after the lock, sees the previous append.
        """
        lock = self._dialect.lock_run_sql
        if not locked or lock is None:
            async with self._writer() as conn:
                row = await conn.fetch_one(self._append_event_sql, params)
        else:
            async with self._transaction() as conn:
                await conn.execute(self._sql(lock), (run_id,))
                row = await conn.fetch_one(self._append_event_sql, params)
        assert row is not None  # INSERT ... SELECT over an aggregate yields one row
        return int(row[0])

    async def _sequence_of(self, run_id: str, event_id: str) -> int | None:
        """The sequence of an event already in the log, or None (event ids are unique)."""
        row = await self._fetch_one(
            "SELECT sequence FROM events WHERE run_id = ? AND event_id = ?", (run_id, event_id)
        )
        return int(row[0]) if row else None

    async def get_events(self, run_id: str, event_types: list[str] | None = None) -> list[Event]:
        sql, params = f"{SELECT_EVENT} WHERE run_id = ?", [run_id]
        if event_types is not None:
            if not event_types:
                return []
            sql += f" AND type IN ({placeholders(len(event_types))})"
            params += [getattr(t, "value", t) for t in event_types]
        rows = await self._fetch_all(f"{sql} ORDER BY sequence", params)
        return [row_to_event(self._dialect, r) for r in rows]

    async def get_latest_event(self, run_id: str, event_type: str | None = None) -> Event | None:
        sql, params = f"{SELECT_EVENT} WHERE run_id = ?", [run_id]
        if event_type is not None:
            sql += " AND type = ?"
            params.append(getattr(event_type, "value", event_type))
        row = await self._fetch_one(f"{sql} ORDER BY sequence DESC LIMIT 1", params)
        return row_to_event(self._dialect, row) if row else None

    async def get_events_after(self, run_id: str, after_sequence: int) -> list[Event]:
        rows = await self._fetch_all(
            f"{SELECT_EVENT} WHERE run_id = ? AND sequence > ? ORDER BY sequence",
            (run_id, after_sequence),
        )
        return [row_to_event(self._dialect, r) for r in rows]
