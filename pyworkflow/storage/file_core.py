"""The storage contract over record tables, shared by the file and in-memory backends.

:class:`RecordStorageBackend` implements every :class:`StorageBackend` method as a
function over a :class:`~pyworkflow.storage.file_tables.Txn`. A concrete backend
supplies only ``_read``/``_write`` (where the transaction runs, under which locks)
and a :class:`~pyworkflow.storage.file_tables.Store` (where records live). So the two
backends cannot drift apart on sequencing, de-duplication, leases or timer claims.

Example:
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> issubclass(InMemoryStorageBackend, RecordStorageBackend)
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from pyworkflow.engine.events import Event
from pyworkflow.storage import file_rules as rules
from pyworkflow.storage.base import CommitBatch, RunLease, RunUpdate, StorageBackend
from pyworkflow.storage.file_catalog import CatalogMethods, now_utc
from pyworkflow.storage.file_tables import (
    HOOKS,
    IDEMPOTENCY,
    LEASES,
    RUNS,
    TIMERS,
    TOKENS,
    LeaseRow,
    RefRow,
    Txn,
)
from pyworkflow.storage.schemas import RunStatus, Timer, WorkflowRun


def _needs_global_lock(batch: CommitBatch) -> bool:
    """Whether a commit writes records that cross runs (timers, token/key indexes)."""
    new_key = batch.create_run is not None and batch.create_run.idempotency_key is not None
    touches_timers = bool(batch.timers_upsert or batch.timers_delete) or batch.clear_timers
    return new_key or touches_timers or bool(batch.hooks_create)


def _commit(t: Txn, batch: CommitBatch) -> list[int]:
    """Validate and stage ``batch``; the sequences its events get."""
    run_id, now = batch.run_id, now_utc()
    log = t.log_state(run_id)
    hooks = t.scan(HOOKS, (run_id,)) if batch.hooks_create or batch.hook_updates else []

    def idempotency_owner(key: str) -> str | None:
        # An entry whose run is gone (deleted by hand) no longer reserves the key.
        ref = t.get(IDEMPOTENCY, (key,))
        if ref is None or t.get(RUNS, (ref.run_id,)) is None:
            return None
        return ref.run_id

    state = rules.CommitState(
        run_exists=t.get(RUNS, (run_id,)) is not None,
        last_sequence=log.last_sequence,
        dedup_keys=log.keys,
        hook_ids={h.hook_id for h in hooks},
        token_owner=lambda token: t.get(TOKENS, (token,)),
        idempotency_owner=idempotency_owner,
    )
    sequences = rules.check_commit(batch, state)
    # Store copies: the caller's Event objects get their sequence only on success.
    t.append(
        run_id,
        [
            replace(e, data=copy.deepcopy(e.data), sequence=s)
            for e, s in zip(batch.events, sequences, strict=True)
        ],
    )
    _stage_run_rows(t, batch, now)
    if batch.clear_timers:
        for timer in t.scan(TIMERS, (run_id,)):
            t.delete(TIMERS, (run_id, timer.timer_id))
    for timer_id in batch.timers_delete:
        t.delete(TIMERS, (run_id, timer_id))
    for timer in batch.timers_upsert:
        t.put(TIMERS, rules.stored_timer(timer))
    for hook in batch.hooks_create:
        t.put(HOOKS, copy.deepcopy(hook))
        t.put(TOKENS, RefRow(name=hook.token, run_id=run_id, hook_id=hook.hook_id))
    for change in batch.hook_updates:
        stored = t.get(HOOKS, (run_id, change.hook_id))
        assert stored is not None  # check_commit verified it exists
        rules.apply_hook_status(stored, change.status, change.payload, now)
        t.put(HOOKS, stored)
    return sequences


def _stage_run_rows(t: Txn, batch: CommitBatch, now: datetime) -> None:
    run_id, created = batch.run_id, batch.create_run
    if created is not None:
        t.put(RUNS, copy.deepcopy(created))
        if created.idempotency_key is not None:
            t.put(IDEMPOTENCY, RefRow(name=created.idempotency_key, run_id=run_id))
        if batch.lease_owner is not None:
            lease = rules.new_lease(batch.lease_owner, batch.lease_seconds, now)
            t.put(LEASES, LeaseRow(run_id, lease.owner, lease.expires_at))
    update: RunUpdate | None = batch.run_update
    if update is None:
        return
    run = t.get(RUNS, (run_id,))
    assert run is not None  # check_commit verified it exists
    rules.apply_run_update(run, update, now)
    t.put(RUNS, run)
    held = t.get(LEASES, (run_id,))
    if update.release_lease is not None and held and held.owner == update.release_lease:
        t.delete(LEASES, (run_id,))


def _lease(row: LeaseRow | None) -> RunLease | None:
    return RunLease(owner=row.owner, expires_at=row.expires_at) if row is not None else None


class RecordStorageBackend(CatalogMethods, StorageBackend):
    """Every storage method over record tables (see the module docstring)."""

    # ------------------------------------------------------------------ runs

    async def create_run(self, run: WorkflowRun) -> None:
        """Insert a run (``RunAlreadyExistsError``, a ``ValueError``, when taken)."""
        await self.commit(CommitBatch(run_id=run.run_id, create_run=run))

    async def get_run(self, run_id: str) -> WorkflowRun | None:
        """The run, or None."""
        return await self._read(lambda t: t.get(RUNS, (run_id,)))

    async def get_run_by_idempotency_key(self, key: str) -> WorkflowRun | None:
        """The run created with ``key``, or None."""

        def find(t: Txn) -> WorkflowRun | None:
            ref = t.get(IDEMPOTENCY, (key,))
            run = t.get(RUNS, (ref.run_id,)) if ref is not None else None
            return run if run is not None and run.idempotency_key == key else None

        return await self._read(find)

    async def _modify_run(self, run_id: str, change: Callable[[WorkflowRun], None]) -> None:
        """Apply ``change`` to the stored run and stamp ``updated_at``; no-op if missing."""

        def modify(t: Txn) -> None:
            run = t.get(RUNS, (run_id,))
            if run is not None:
                change(run)
                run.updated_at = now_utc()
                t.put(RUNS, run)

        await self._write(modify, run_id=run_id)

    async def update_run_status(
        self,
        run_id: str,
        status: RunStatus,
        result: str | None = None,
        error: str | None = None,
    ) -> None:
        """See :meth:`StorageBackend.update_run_status`; a missing run is a no-op."""
        await self._modify_run(
            run_id, lambda run: rules.apply_status(run, status, result, error, now_utc())
        )

    async def update_run_recovery_attempts(self, run_id: str, recovery_attempts: int) -> None:
        """Persist the worker-loss recovery counter; a missing run is a no-op."""
        await self._modify_run(
            run_id, lambda run: setattr(run, "recovery_attempts", recovery_attempts)
        )

    async def update_run_context(self, run_id: str, context: dict[str, object]) -> None:
        """Set the run's step context; a missing run is a no-op."""
        await self._modify_run(run_id, lambda run: setattr(run, "context", copy.deepcopy(context)))

    async def get_run_context(self, run_id: str) -> dict[str, object]:
        """The run's step context, ``{}`` when unset or missing."""
        run = await self.get_run(run_id)
        return dict(run.context) if run is not None else {}

    async def update_run_continuation(self, run_id: str, continued_to_run_id: str) -> None:
        """Link a run to its continue-as-new successor; a missing run is a no-op."""
        await self._modify_run(
            run_id, lambda run: setattr(run, "continued_to_run_id", continued_to_run_id)
        )

    async def list_runs(
        self,
        query: str | None = None,
        status: RunStatus | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[WorkflowRun], str | None]:
        """Newest first with cursor paging (see :meth:`StorageBackend.list_runs`)."""
        runs = await self._read(lambda t: t.scan(RUNS))
        return rules.select_runs(runs, query, status, start_time, end_time, limit, cursor)

    async def get_workflow_chain(self, run_id: str) -> list[WorkflowRun]:
        """The continue-as-new chain through ``run_id``, oldest first."""
        return await self._read(lambda t: rules.walk_chain(lambda i: t.get(RUNS, (i,)), run_id))

    async def get_children(
        self, parent_run_id: str, status: RunStatus | None = None
    ) -> list[WorkflowRun]:
        """Child runs of ``parent_run_id``, oldest first."""
        runs = await self._read(lambda t: t.scan(RUNS))
        return rules.select_children(runs, parent_run_id, status)

    async def get_parent(self, run_id: str) -> WorkflowRun | None:
        """The parent run, or None."""
        run = await self.get_run(run_id)
        return await self.get_run(run.parent_run_id) if run and run.parent_run_id else None

    async def get_nesting_depth(self, run_id: str) -> int:
        """The run's nesting depth, 0 when unknown."""
        run = await self.get_run(run_id)
        return run.nesting_depth if run is not None else 0

    # ------------------------------------------------------------------ events

    async def record_event(self, event: Event) -> None:
        """Append one event after the run's last (no run row needed); sets ``sequence``."""
        await self.commit(CommitBatch(run_id=event.run_id, events=[event]))

    async def get_events(self, run_id: str, event_types: list[str] | None = None) -> list[Event]:
        """The run's events by sequence, optionally only these type values."""
        events = await self._read(lambda t: t.events(run_id))
        return rules.filter_events(events, event_types)

    async def get_latest_event(self, run_id: str, event_type: str | None = None) -> Event | None:
        """The last event, optionally the last of one type value."""
        found = await self.get_events(run_id, None if event_type is None else [event_type])
        return found[-1] if found else None

    async def get_events_after(self, run_id: str, after_sequence: int) -> list[Event]:
        """Events with ``sequence > after_sequence``, ordered."""
        events = await self._read(lambda t: t.events(run_id))
        return [e for e in events if e.sequence is not None and e.sequence > after_sequence]

    async def commit(self, batch: CommitBatch) -> None:
        """Apply ``batch`` atomically (see :class:`CommitBatch`)."""
        sequences = await self._write(
            lambda t: _commit(t, batch), run_id=batch.run_id, shared=_needs_global_lock(batch)
        )
        for event, sequence in zip(batch.events, sequences, strict=True):
            event.sequence = sequence

    # ------------------------------------------------------------------ leases

    async def acquire_run_lease(
        self,
        run_id: str,
        owner: str,
        ttl_seconds: float,
        now: datetime,
        steal_from: str | None = None,
    ) -> bool:
        """Take the run's lease (see :meth:`StorageBackend.acquire_run_lease`)."""

        def acquire(t: Txn) -> bool:
            if t.get(RUNS, (run_id,)) is None:
                return False
            if not rules.lease_available(_lease(t.get(LEASES, (run_id,))), owner, now, steal_from):
                return False
            t.put(LEASES, LeaseRow(run_id, owner, now + timedelta(seconds=ttl_seconds)))
            return True

        return await self._write(acquire, run_id=run_id)

    async def renew_run_lease(
        self, run_id: str, owner: str, ttl_seconds: float, now: datetime
    ) -> bool:
        """Extend ``owner``'s lease; False when ``owner`` does not hold it."""

        def renew(t: Txn) -> bool:
            held = t.get(LEASES, (run_id,))
            if held is None or held.owner != owner:
                return False
            t.put(LEASES, LeaseRow(run_id, owner, now + timedelta(seconds=ttl_seconds)))
            return True

        return await self._write(renew, run_id=run_id)

    async def release_run_lease(self, run_id: str, owner: str) -> None:
        """Drop the lease if ``owner`` holds it."""

        def release(t: Txn) -> None:
            held = t.get(LEASES, (run_id,))
            if held is not None and held.owner == owner:
                t.delete(LEASES, (run_id,))

        await self._write(release, run_id=run_id)

    async def get_run_lease(self, run_id: str) -> RunLease | None:
        """The current lease (possibly expired), or None."""
        return _lease(await self._read(lambda t: t.get(LEASES, (run_id,))))

    async def list_stale_runs(self, now: datetime, limit: int = 100) -> list[str]:
        """RUNNING/INTERRUPTED runs with no live lease (their activation died), oldest
        first."""

        def find(t: Txn) -> list[WorkflowRun]:
            leases = {row.run_id: _lease(row) for row in t.scan(LEASES)}
            return [r for r in t.scan(RUNS) if rules.is_stale(r, leases.get(r.run_id), now)]

        stale = sorted(await self._read(find), key=lambda r: (r.created_at, r.run_id))
        return [r.run_id for r in stale[: max(limit, 0)]]

    # ------------------------------------------------------------------ timers

    async def claim_due_timers(
        self, now: datetime, owner: str, lease_seconds: float, limit: int = 100
    ) -> list[Timer]:
        """Atomically claim due timers (see :meth:`StorageBackend.claim_due_timers`)."""

        def claim(t: Txn) -> list[Timer]:
            claimed = rules.pick_due(t.scan(TIMERS), now, limit)
            for timer in claimed:
                timer.claimed_by = owner
                timer.claimed_until = now + timedelta(seconds=lease_seconds)
                t.put(TIMERS, timer)
            return copy.deepcopy(claimed)

        return await self._write(claim, shared=True)

    async def next_timer_due(self) -> datetime | None:
        """When the next timer becomes claimable, or None without timers."""
        timers = await self._read(lambda t: t.scan(TIMERS))
        return min(map(rules.ready_at, timers), default=None)

    async def list_timers(self, run_id: str | None = None) -> list[Timer]:
        """Timers (of one run when given) by ``fire_at``."""
        prefix = (run_id,) if run_id is not None else ()
        timers = await self._read(lambda t: t.scan(TIMERS, prefix))
        return sorted(timers, key=lambda timer: (timer.fire_at, timer.timer_id))
