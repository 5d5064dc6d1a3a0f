"""The engine's atomic commit: events, run row, timers and hooks in one transaction.

Conflicts are found by the database, not by reading first: events are inserted at
the sequences the writer expects, guarded by "the run's last sequence is the one
before", and the unique constraints ``(run_id, sequence)`` and ``(run_id, dedup_key)``
back that up. A stale writer inserts nothing (:class:`SequenceConflictError`), a
second outcome for the same step or hook violates the de-duplication constraint
(:class:`DuplicateEventError`), and either way the whole transaction is rolled back.

Example:
    >>> from pyworkflow.storage.base import CommitBatch
    >>> check_batch(CommitBatch(run_id="r1")) is None
    True
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from pyworkflow.engine.event_model import TERMINAL_KEY
from pyworkflow.engine.events import dedup_key
from pyworkflow.storage.base import (
    CommitBatch,
    DuplicateEventError,
    RunEndedError,
    RunUpdate,
    SequenceConflictError,
)
from pyworkflow.storage.schemas import HookStatus
from pyworkflow.storage.sql.codec import event_to_row, hook_to_row, timer_to_row
from pyworkflow.storage.sql.core import placeholders, utcnow
from pyworkflow.storage.sql.driver import SQLConnection
from pyworkflow.storage.sql.events import (
    APPEND_ATTEMPTS,
    LAST_SEQUENCE,
    EventsMixin,
)
from pyworkflow.storage.sql.runs import INSERT_RUN, RunsMixin
from pyworkflow.storage.sql.schema import HOOK_COLUMNS, TIMER_COLUMNS

INSERT_HOOK = f"INSERT INTO hooks ({', '.join(HOOK_COLUMNS)}) VALUES ({placeholders(12)})"
_UPDATE_HOOK = (
    "UPDATE hooks SET status = ?, payload = COALESCE(?, payload),"
    " received_at = COALESCE(?, received_at) WHERE run_id = ? AND hook_id = ?"
)
_RECEIVED = HookStatus.RECEIVED
_HAS_KEY = "SELECT 1 FROM events WHERE run_id = ? AND dedup_key = ?"
_RUN_UPDATE_FIELDS = ("status", "result", "error", "started_at", "completed_at")


def check_batch(batch: CommitBatch) -> None:
    """Refuse records that belong to another run than the batch's (before any I/O)."""
    run_id = batch.run_id
    if batch.create_run is not None and batch.create_run.run_id != run_id:
        raise ValueError(f"create_run is for {batch.create_run.run_id}, the batch for {run_id}")
    owners = [("Event", e.event_id, e.run_id) for e in batch.events]
    owners += [("Hook", h.hook_id, h.run_id) for h in batch.hooks_create]
    owners += [("Timer", t.timer_id, t.run_id) for t in batch.timers_upsert]
    for kind, ident, owner in owners:
        if owner != run_id:
            raise ValueError(f"{kind} {ident} belongs to {owner}, not {run_id}")


class CommitMixin(EventsMixin, RunsMixin):
    """:meth:`commit`, the engine's one write per activation step."""

    async def commit(self, batch: CommitBatch) -> None:
        check_batch(batch)
        # Inserting a run or hooks twice would fail on their keys; the rest of a batch
        # without events (timers, run and hook updates) can simply be applied again.
        replayable = not batch.events and batch.create_run is None and not batch.hooks_create
        for attempt in range(1, APPEND_ATTEMPTS + 1):
            try:
                first = await self._attempt(
                    lambda: self._commit_once(batch),
                    idempotent=replayable,
                    recover=(lambda: self._committed_at(batch)) if batch.events else None,
                )
            except Exception as exc:
                error = await self._commit_error(exc, batch)
                # "Append after the last" has no stale view to conflict with: a lost
                # race for MAX(sequence) (never in SQLite) is simply retried.
                retry = batch.expected_sequence is None and attempt < APPEND_ATTEMPTS
                if retry and isinstance(error, SequenceConflictError):
                    continue
                if error is exc:
                    raise
                raise error from exc
            # Only now: a failed commit must leave the caller's events untouched.
            for offset, event in enumerate(batch.events):
                event.sequence = first + offset
            return

    async def _commit_once(self, batch: CommitBatch) -> int:
        """One attempt at the whole batch, in one transaction; the first sequence."""

        async def work(conn: SQLConnection) -> int:
            lock = self._dialect.lock_run_sql
            if lock is not None and batch.expected_sequence is None and batch.events:
                await conn.execute(self._sql(lock), (batch.run_id,))
            return await self._commit_in(conn, batch)

        return await self._in_transaction(work)

    async def _committed_at(self, batch: CommitBatch) -> int | None:
        """After a COMMIT whose outcome was lost with the connection: the batch's first
        sequence if it was committed (a batch is all or nothing), else None."""
        return await self._sequence_of(batch.run_id, batch.events[0].event_id)

    async def _commit_in(self, conn: SQLConnection, batch: CommitBatch) -> int:
        """Every write of ``batch``; the first event's sequence."""
        now = utcnow()
        if batch.create_run is not None:
            until = now + timedelta(seconds=batch.lease_seconds) if batch.lease_owner else None
            params = self._insert_run_params(batch.create_run, batch.lease_owner, until)
            await conn.execute(self._sql(INSERT_RUN), params)
        first = await self._append(conn, batch)
        if batch.run_update is not None:
            update_sql, params = self._run_update(batch.run_id, batch.run_update)
            if await conn.execute(self._sql(update_sql), params) == 0:
                raise ValueError(f"Workflow run {batch.run_id} not found")
        await self._commit_timers(conn, batch)
        await self._commit_hooks(conn, batch, now)
        return first

    async def _append(self, conn: SQLConnection, batch: CommitBatch) -> int:
        """Insert the events; the first one's sequence."""
        run_id, expected = batch.run_id, batch.expected_sequence
        if batch.require_open:
            ended = await conn.fetch_one(self._sql(_HAS_KEY), (run_id, TERMINAL_KEY))
            if ended is not None:
                raise RunEndedError(run_id)
        if expected is None or not batch.events:
            if expected is None and not batch.events:
                return 0
            # Inside the write transaction: nobody can append between this read and ours.
            # (Only needed without an expected sequence, or to check one with no events.)
            row = await conn.fetch_one(self._sql(LAST_SEQUENCE), (run_id,))
            last = int(row[0]) if row else -1
            if expected is not None and last != expected:
                raise SequenceConflictError(run_id, expected)
            expected = last
        rows = [
            [*event_to_row(self._dialect, e, expected + 1 + i), run_id, expected + i]
            for i, e in enumerate(batch.events)
        ]
        if await conn.executemany(self._guarded_insert_sql, rows) != len(rows):
            raise SequenceConflictError(run_id, expected)
        return expected + 1

    async def _commit_timers(self, conn: SQLConnection, batch: CommitBatch) -> None:
        sql, run_id = self._sql, batch.run_id
        if batch.clear_timers:
            await conn.execute(sql("DELETE FROM timers WHERE run_id = ?"), (run_id,))
        # Deletes go before upserts: consuming a retry timer and arming the next attempt
        # (same timer id) in one commit must leave the new timer in place.
        if batch.timers_delete:
            await conn.executemany(
                sql("DELETE FROM timers WHERE timer_id = ? AND run_id = ?"),
                [(t, run_id) for t in batch.timers_delete],
            )
        if batch.timers_upsert:
            await conn.executemany(
                sql(self._upsert_timer_sql()),
                [timer_to_row(self._dialect, t)[:5] for t in batch.timers_upsert],
            )

    async def _commit_hooks(self, conn: SQLConnection, batch: CommitBatch, now: datetime) -> None:
        if batch.hooks_create:
            await conn.executemany(
                self._sql(INSERT_HOOK), [hook_to_row(self._dialect, h) for h in batch.hooks_create]
            )
        if not batch.hook_updates:
            return
        received = self._dt(now)
        rows = [
            (u.status.value, u.payload, received if u.status is _RECEIVED else None)
            for u in batch.hook_updates
        ]
        keys = [(batch.run_id, u.hook_id) for u in batch.hook_updates]
        changed = await conn.executemany(
            self._sql(_UPDATE_HOOK), [(*r, *k) for r, k in zip(rows, keys, strict=True)]
        )
        if changed != len(rows):
            found = await conn.fetch_all(
                self._sql("SELECT hook_id FROM hooks WHERE run_id = ?"), (batch.run_id,)
            )
            missing = {u.hook_id for u in batch.hook_updates} - {r[0] for r in found}
            raise ValueError(f"Hook {', '.join(sorted(missing))} not found in run {batch.run_id}")

    def _upsert_timer_sql(self) -> str:
        return self._dialect.upsert(
            "timers",
            TIMER_COLUMNS[:5],
            ("timer_id",),
            ("run_id", "kind", "key", "fire_at"),
            {"claimed_by": "NULL", "claimed_until": "NULL"},
        )

    def _run_update(self, run_id: str, update: RunUpdate) -> tuple[str, list[Any]]:
        """An UPDATE writing only the fields that are set (portable: no NULL tricks)."""
        sets, params = ["updated_at = ?"], [self._dt(utcnow())]
        for name in _RUN_UPDATE_FIELDS:
            value = getattr(update, name)
            if value is not None:
                sets.append(f"{name} = ?")
                params.append(self._encode_field(value))
        if update.continued_to_run_id is not None:
            sets.append("continued_to_run_id = ?")
            params.append(update.continued_to_run_id)
        if update.release_lease is not None:
            # Both CASEs read the pre-update lease_owner (SQL evaluates SET on old values).
            sets.append("lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END")
            sets.append(
                "lease_expires_at = CASE WHEN lease_owner = ? THEN NULL ELSE lease_expires_at END"
            )
            params += [update.release_lease, update.release_lease]
        return f"UPDATE workflow_runs SET {', '.join(sets)} WHERE run_id = ?", [*params, run_id]

    def _encode_field(self, value: Any) -> Any:
        if isinstance(value, Enum):
            return value.value
        return self._dt(value) if isinstance(value, datetime) else value

    async def _commit_error(self, exc: Exception, batch: CommitBatch) -> Exception:
        constraint = self._constraint(exc)
        if constraint == "events_sequence_uq":
            expected = batch.expected_sequence if batch.expected_sequence is not None else -1
            return SequenceConflictError(batch.run_id, expected)
        if constraint == "events_dedup_uq":
            return DuplicateEventError(batch.run_id, await self._duplicate_key(batch))
        if batch.create_run is not None and constraint and constraint.startswith("workflow_runs"):
            return self._run_insert_error(exc, batch.create_run)
        if constraint in ("hooks_pk", "hooks_token_uq"):
            return ValueError(f"Run {batch.run_id}: a hook with this id or token already exists")
        return exc

    async def _duplicate_key(self, batch: CommitBatch) -> str:
        """Which of the batch's keys clashed (the driver's error does not say)."""
        keys = [k for k in (dedup_key(e) for e in batch.events) if k is not None]
        repeated = [k for k, n in Counter(keys).items() if n > 1]
        if repeated:
            return repeated[0]
        rows = await self._fetch_all(
            f"SELECT dedup_key FROM events WHERE run_id = ? AND dedup_key IN "
            f"({placeholders(len(keys))})",
            [batch.run_id, *keys],
        )
        found = {r[0] for r in rows}
        return next((k for k in keys if k in found), keys[0] if keys else "")
