"""Steps, hooks, cancellation flags and schedules for the record-based backends.

Part of the implementation shared by :class:`~pyworkflow.storage.file.FileStorageBackend`
and :class:`~pyworkflow.storage.memory.InMemoryStorageBackend`: every method is a
small function over a :class:`~pyworkflow.storage.file_tables.Txn`, run by the
backend's ``_read`` (no locks needed) or ``_write`` (under the run's lock and/or the
global lock, as the tables written require).

Example:
    >>> issubclass(CatalogMethods, TxnRunner)
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pyworkflow.storage import file_rules as rules
from pyworkflow.storage.base import ANY_TIME, CommitBatch, HookUpdate
from pyworkflow.storage.file_tables import (
    FLAGS,
    HOOKS,
    SCHEDULES,
    STEPS,
    TOKENS,
    FlagRow,
    Txn,
)
from pyworkflow.storage.schemas import Hook, HookStatus, Schedule, ScheduleStatus, StepExecution

R = TypeVar("R")


def now_utc() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class TxnRunner(ABC):
    """How a backend runs a transaction function: where, and under which locks."""

    @abstractmethod
    async def _read(self, fn: Callable[[Txn], R]) -> R:
        """Run ``fn`` on a consistent read view; its writes are discarded."""

    @abstractmethod
    async def _write(
        self, fn: Callable[[Txn], R], run_id: str | None = None, shared: bool = False
    ) -> R:
        """Run ``fn`` holding ``run_id``'s lock (if given) and the global lock (if
        ``shared``), then store its writes atomically; nothing is stored if it raises."""

    @abstractmethod
    async def commit(self, batch: CommitBatch) -> None:
        """See :meth:`pyworkflow.storage.base.StorageBackend.commit`."""


def _schedule(txn: Txn, schedule_id: str) -> Schedule:
    found = txn.get(SCHEDULES, (schedule_id,))
    if found is None:
        raise ValueError(f"Schedule {schedule_id} not found")
    return found


class CatalogMethods(TxnRunner):
    """Steps, hooks, cancellation flags and schedules (see ``StorageBackend``)."""

    # ------------------------------------------------------------------ steps

    async def create_step(self, step: StepExecution) -> None:
        """Insert (or replace) a step record."""
        await self._write(lambda t: t.put(STEPS, step), shared=True)

    async def get_step(self, step_id: str) -> StepExecution | None:
        """A step record, or None."""
        return await self._read(lambda t: t.get(STEPS, (step_id,)))

    async def update_step_status(
        self,
        step_id: str,
        status: str,
        result: str | None = None,
        error: str | None = None,
    ) -> None:
        """Set a step's status; COMPLETED/FAILED stamp ``completed_at``. No-op if missing."""

        def change(t: Txn) -> None:
            step = t.get(STEPS, (step_id,))
            if step is not None:
                rules.apply_step_status(step, status, result, error, now_utc())
                t.put(STEPS, step)

        await self._write(change, shared=True)

    async def list_steps(self, run_id: str) -> list[StepExecution]:
        """The run's step records, oldest first."""
        steps = await self._read(lambda t: t.scan(STEPS))
        found = [s for s in steps if s.run_id == run_id]
        return sorted(found, key=lambda s: (s.created_at, s.step_id))

    # ------------------------------------------------------------------ hooks

    async def create_hook(self, hook: Hook) -> None:
        """Insert a hook and index its token (``ValueError`` if either is taken)."""
        await self.commit(CommitBatch(run_id=hook.run_id, hooks_create=[hook]))

    async def get_hook(self, hook_id: str, run_id: str | None = None) -> Hook | None:
        """A hook by id; hook ids repeat across runs, so without ``run_id`` this is
        the newest hook with that id."""
        if run_id is not None:
            return await self._read(lambda t: t.get(HOOKS, (run_id, hook_id)))
        hooks = await self._read(lambda t: t.scan(HOOKS))
        return rules.newest_hook(h for h in hooks if h.hook_id == hook_id)

    async def get_hook_by_token(self, token: str) -> Hook | None:
        """A hook by its token, or None."""

        def find(t: Txn) -> Hook | None:
            ref = t.get(TOKENS, (token,))
            if ref is None or ref.hook_id is None:
                return None
            hook = t.get(HOOKS, (ref.run_id, ref.hook_id))
            return hook if hook is not None and hook.token == token else None

        return await self._read(find)

    async def update_hook_status(
        self, hook_id: str, status: HookStatus, payload: str | None = None
    ) -> None:
        """Set a hook's status (RECEIVED stamps ``received_at``); no-op if missing."""
        hook = await self.get_hook(hook_id)
        if hook is not None:
            update = HookUpdate(hook_id=hook_id, status=status, payload=payload)
            await self.commit(CommitBatch(run_id=hook.run_id, hook_updates=[update]))

    async def list_hooks(
        self,
        run_id: str | None = None,
        status: HookStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Hook]:
        """Hooks, newest first."""
        prefix = (run_id,) if run_id is not None else ()
        hooks = await self._read(lambda t: t.scan(HOOKS, prefix))
        return rules.select_hooks(hooks, run_id, status, limit, offset)

    # ------------------------------------------------------------------ cancellation

    async def set_cancellation_flag(self, run_id: str) -> None:
        """Ask the run to cancel (no run row needed)."""
        flag = FlagRow(run_id=run_id, created_at=now_utc())
        await self._write(lambda t: t.put(FLAGS, flag), run_id=run_id)

    async def check_cancellation_flag(self, run_id: str) -> bool:
        """Whether cancellation was asked."""
        return await self._read(lambda t: t.get(FLAGS, (run_id,)) is not None)

    async def clear_cancellation_flag(self, run_id: str) -> None:
        """Unset the flag (fine when unset)."""
        await self._write(lambda t: t.delete(FLAGS, (run_id,)), run_id=run_id)

    # ------------------------------------------------------------------ schedules

    async def create_schedule(self, schedule: Schedule) -> None:
        """Insert; a taken id raises ``ValueError``."""

        def insert(t: Txn) -> None:
            if t.get(SCHEDULES, (schedule.schedule_id,)) is not None:
                raise ValueError(f"Schedule {schedule.schedule_id} already exists")
            t.put(SCHEDULES, schedule)

        await self._write(insert, shared=True)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """A schedule, or None."""
        return await self._read(lambda t: t.get(SCHEDULES, (schedule_id,)))

    async def update_schedule(self, schedule: Schedule) -> None:
        """Replace a whole schedule; a missing one raises ``ValueError``."""

        def replace(t: Txn) -> None:
            _schedule(t, schedule.schedule_id)
            t.put(SCHEDULES, schedule)

        await self._write(replace, shared=True)

    async def patch_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        if_updated_at: datetime | object | None = ANY_TIME,
    ) -> bool:
        """Set some fields atomically (see ``StorageBackend.patch_schedule``)."""

        def patch(t: Txn) -> bool:
            schedule = _schedule(t, schedule_id)
            if if_updated_at is not ANY_TIME and schedule.updated_at != if_updated_at:
                return False
            for name, value in changes.items():
                setattr(schedule, name, value)
            t.put(SCHEDULES, schedule)
            return True

        return await self._write(patch, shared=True)

    async def delete_schedule(self, schedule_id: str) -> None:
        """Soft delete (status DELETED); a missing one raises ``ValueError``."""

        def soft_delete(t: Txn) -> None:
            schedule = _schedule(t, schedule_id)
            schedule.status = ScheduleStatus.DELETED
            schedule.updated_at = now_utc()
            t.put(SCHEDULES, schedule)

        await self._write(soft_delete, shared=True)

    async def list_schedules(
        self,
        workflow_name: str | None = None,
        status: ScheduleStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Schedule]:
        """Schedules, newest first."""
        found = await self._read(lambda t: t.scan(SCHEDULES))
        return rules.select_schedules(found, workflow_name, status, limit, offset)

    async def get_due_schedules(self, now: datetime) -> list[Schedule]:
        """ACTIVE schedules with ``next_run_time <= now``, soonest first."""
        found = await self._read(lambda t: t.scan(SCHEDULES))
        return rules.select_due_schedules(found, now)

    async def add_running_run(self, schedule_id: str, run_id: str) -> None:
        """Add ``run_id`` to the schedule's running runs (no duplicates)."""
        await self._change_running(schedule_id, run_id, add=True)

    async def remove_running_run(self, schedule_id: str, run_id: str) -> None:
        """Remove ``run_id`` from the schedule's running runs (no-op when absent)."""
        await self._change_running(schedule_id, run_id, add=False)

    async def _change_running(self, schedule_id: str, run_id: str, add: bool) -> None:
        def change(t: Txn) -> None:
            schedule = _schedule(t, schedule_id)
            present = run_id in schedule.running_run_ids
            if add and not present:
                schedule.running_run_ids.append(run_id)
            elif not add and present:
                schedule.running_run_ids.remove(run_id)
            else:
                return
            schedule.updated_at = now_utc()
            t.put(SCHEDULES, schedule)

        await self._write(change, shared=True)
