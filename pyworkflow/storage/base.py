"""The storage protocol every backend implements.

Two layers of methods:

* the **upstream surface** (``create_run``, ``record_event``, ``get_events``, hooks,
  schedules, ...), kept name-for-name for users' code;
* the **engine primitives** the runtimes use: :meth:`StorageBackend.commit` (one
  atomic transaction of events + run row + timers + hooks, with an optimistic
  sequence check and per-run event de-duplication), durable timers with atomic
  claims, and per-run leases so that two activations never advance one run at once.

Every backend must pass ``pyworkflow.testing.conformance``.

Example:
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> isinstance(InMemoryStorageBackend(), StorageBackend)
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyworkflow.engine.events import Event

# The errors live in their own module; these names are the ones users import.
from pyworkflow.storage.errors import CorruptStorageError as CorruptStorageError
from pyworkflow.storage.errors import DuplicateEventError as DuplicateEventError
from pyworkflow.storage.errors import RunAlreadyExistsError as RunAlreadyExistsError
from pyworkflow.storage.errors import RunEndedError as RunEndedError
from pyworkflow.storage.errors import SequenceConflictError as SequenceConflictError
from pyworkflow.storage.errors import StorageError as StorageError
from pyworkflow.storage.schemas import (
    TERMINAL_STATUSES,
    Hook,
    HookStatus,
    RunStatus,
    Schedule,
    ScheduleStatus,
    StepExecution,
    Timer,
    WorkflowRun,
)

ANY_TIME: Any = object()
"""``patch_schedule``'s default for ``if_updated_at``: write whatever is stored."""


@dataclass
class RunUpdate:
    """Changes to a run row applied in the same transaction as a commit's events.

    Only fields that are not None are written; ``updated_at`` is always set.
    ``release_lease`` names the lease owner whose lease is dropped by this commit.
    """

    status: RunStatus | None = None
    result: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    continued_to_run_id: str | None = None
    release_lease: str | None = None


@dataclass
class HookUpdate:
    """A hook status change applied inside a commit."""

    hook_id: str
    status: HookStatus
    payload: str | None = None


@dataclass
class CommitBatch:
    """One atomic unit of work on one run.

    * ``events`` are appended in order. With ``expected_sequence`` set (the last
      sequence the writer has seen, ``-1`` for an empty log) they get the sequences
      ``expected_sequence + 1, + 2, ...`` and the commit fails with
      :class:`SequenceConflictError` if any event already has one of them. With
      ``expected_sequence=None`` they are appended after the current last event.
    * an event whose :func:`pyworkflow.engine.events.dedup_key` is already present
      for the run fails the commit with :class:`DuplicateEventError`.
    * ``create_run`` inserts the run row (``RunAlreadyExistsError`` on a taken id);
      ``lease_owner``/``lease_seconds`` then also grant the new run's lease.
    * ``require_open`` refuses the whole batch with :class:`RunEndedError` when the
      run's log already has its terminal event.
    * ``run_update`` changes the run row; ``timers_upsert`` inserts or replaces timers
      (claims reset); ``timers_delete`` deletes timer ids; ``clear_timers`` deletes all
      of the run's timers first; ``hooks_create`` / ``hook_updates`` likewise.

    On success every event's ``sequence`` is set. On any error nothing is written.
    Every backend also enforces: any ``expected_sequence`` that is not the run's last
    sequence (behind *or* ahead) -> :class:`SequenceConflictError`; a taken
    idempotency key or hook token -> ``ValueError``; a ``run_update`` for a run that
    does not exist -> ``ValueError``.
    """

    run_id: str
    events: list[Event] = field(default_factory=list)
    expected_sequence: int | None = None
    create_run: WorkflowRun | None = None
    lease_owner: str | None = None
    lease_seconds: float = 30.0
    run_update: RunUpdate | None = None
    timers_upsert: list[Timer] = field(default_factory=list)
    timers_delete: list[str] = field(default_factory=list)
    clear_timers: bool = False
    hooks_create: list[Hook] = field(default_factory=list)
    hook_updates: list[HookUpdate] = field(default_factory=list)
    require_open: bool = False


@dataclass
class RunLease:
    """Who holds a run's activation lease, and until when."""

    owner: str
    expires_at: datetime


class StorageBackend(ABC):
    """Abstract storage. Every method is async.

    Example:
        >>> import asyncio
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> async def main(store: StorageBackend):
        ...     await store.create_run(WorkflowRun("run_1", "order", RunStatus.PENDING))
        ...     return (await store.get_run("run_1")).status.value
        >>> asyncio.run(main(InMemoryStorageBackend()))
        'pending'
    """

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open connections and create or migrate the schema. Idempotent."""

    async def disconnect(self) -> None:  # noqa: B027 - optional hook
        """Close connections. Idempotent."""

    async def health_check(self) -> bool:
        """True when the backend answers a trivial query."""
        try:
            await self.list_runs(limit=1)
        except Exception:
            return False
        return True

    # ------------------------------------------------------------------ runs

    @abstractmethod
    async def create_run(self, run: WorkflowRun) -> None:
        """Insert a run; a taken ``run_id`` raises :class:`RunAlreadyExistsError`."""

    @abstractmethod
    async def get_run(self, run_id: str) -> WorkflowRun | None:
        """The run, or None."""

    @abstractmethod
    async def get_run_by_idempotency_key(self, key: str) -> WorkflowRun | None:
        """The run created with this idempotency key, or None."""

    @abstractmethod
    async def update_run_status(
        self,
        run_id: str,
        status: RunStatus,
        result: str | None = None,
        error: str | None = None,
    ) -> None:
        """Set status and ``updated_at``; result/error only when given; ``completed_at``
        on COMPLETED or FAILED. A missing run is a no-op."""

    @abstractmethod
    async def update_run_recovery_attempts(self, run_id: str, recovery_attempts: int) -> None:
        """Persist the worker-loss recovery counter."""

    @abstractmethod
    async def update_run_context(self, run_id: str, context: dict[str, object]) -> None:
        """Set ``WorkflowRun.context`` (the step context as plain JSON)."""

    @abstractmethod
    async def get_run_context(self, run_id: str) -> dict[str, object]:
        """``WorkflowRun.context``; ``{}`` when unset or the run is missing."""

    @abstractmethod
    async def list_runs(
        self,
        query: str | None = None,
        status: RunStatus | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[WorkflowRun], str | None]:
        """Newest first (``created_at`` desc, then ``run_id`` desc), ``query`` a
        case-insensitive substring of the workflow name or input kwargs, time window
        ``[start_time, end_time)`` on ``created_at``. ``cursor`` is the last run_id of
        the previous page; the second value is the next cursor or None."""

    @abstractmethod
    async def update_run_continuation(self, run_id: str, continued_to_run_id: str) -> None:
        """Set ``continued_to_run_id``. A missing run is a no-op."""

    @abstractmethod
    async def get_workflow_chain(self, run_id: str) -> list[WorkflowRun]:
        """The continue-as-new chain containing ``run_id``, oldest first; ``[]`` if
        the run is unknown."""

    @abstractmethod
    async def get_children(
        self, parent_run_id: str, status: RunStatus | None = None
    ) -> list[WorkflowRun]:
        """Runs whose ``parent_run_id`` is given, ``created_at`` ascending."""

    @abstractmethod
    async def get_parent(self, run_id: str) -> WorkflowRun | None:
        """The parent run, or None for a root or unknown run."""

    @abstractmethod
    async def get_nesting_depth(self, run_id: str) -> int:
        """The run's ``nesting_depth``; 0 for an unknown run."""

    # ------------------------------------------------------------------ events

    @abstractmethod
    async def record_event(self, event: Event) -> None:
        """Append one event after the run's last and set ``event.sequence`` (from 0).

        Works without a run row. Raises :class:`DuplicateEventError` when the event's
        de-duplication key is already recorded for the run."""

    @abstractmethod
    async def get_events(self, run_id: str, event_types: list[str] | None = None) -> list[Event]:
        """The run's events by sequence, optionally only these type values."""

    @abstractmethod
    async def get_latest_event(self, run_id: str, event_type: str | None = None) -> Event | None:
        """The event with the highest sequence, optionally of one type value."""

    @abstractmethod
    async def get_events_after(self, run_id: str, after_sequence: int) -> list[Event]:
        """Events with ``sequence > after_sequence``, ordered."""

    # ------------------------------------------------------------------ engine commit

    @abstractmethod
    async def commit(self, batch: CommitBatch) -> None:
        """Apply ``batch`` atomically (see :class:`CommitBatch`)."""

    # ------------------------------------------------------------------ leases

    @abstractmethod
    async def acquire_run_lease(
        self,
        run_id: str,
        owner: str,
        ttl_seconds: float,
        now: datetime,
        steal_from: str | None = None,
    ) -> bool:
        """Take the run's lease if it is free, expired at ``now``, already ``owner``'s,
        or held by ``steal_from`` (a holder known to be dead). False if the run is
        missing or someone else holds it."""

    async def begin_activation(
        self,
        run_id: str,
        owner: str,
        ttl_seconds: float,
        now: datetime,
        steal_from: str | None = None,
    ) -> bool:
        """:meth:`acquire_run_lease`, then mark a run that has not ended RUNNING.
        SQL backends do both in one write (one fsync per resume saved)."""
        if not await self.acquire_run_lease(run_id, owner, ttl_seconds, now, steal_from):
            return False
        run = await self.get_run(run_id)
        if run is not None and run.status not in TERMINAL_STATUSES | {RunStatus.RUNNING}:
            await self.commit(CommitBatch(run_id=run_id, run_update=RunUpdate(RunStatus.RUNNING)))
        return True

    @abstractmethod
    async def renew_run_lease(
        self, run_id: str, owner: str, ttl_seconds: float, now: datetime
    ) -> bool:
        """Extend ``owner``'s lease; False if ``owner`` no longer holds it."""

    @abstractmethod
    async def release_run_lease(self, run_id: str, owner: str) -> None:
        """Drop the lease if ``owner`` holds it."""

    @abstractmethod
    async def get_run_lease(self, run_id: str) -> RunLease | None:
        """The current lease (possibly expired), or None."""

    @abstractmethod
    async def list_stale_runs(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of RUNNING or INTERRUPTED runs with no lease or an expired one (their
        activation died), oldest first."""

    # ------------------------------------------------------------------ timers

    @abstractmethod
    async def claim_due_timers(
        self, now: datetime, owner: str, lease_seconds: float, limit: int = 100
    ) -> list[Timer]:
        """Atomically claim timers with ``fire_at <= now`` that are unclaimed or whose
        claim expired, setting ``claimed_by``/``claimed_until = now + lease``. Two
        concurrent callers never get the same timer. Ordered by ``fire_at``."""

    @abstractmethod
    async def next_timer_due(self) -> datetime | None:
        """The earliest moment at which some timer becomes claimable, or None."""

    @abstractmethod
    async def list_timers(self, run_id: str | None = None) -> list[Timer]:
        """Timers, optionally of one run, ordered by ``fire_at``."""

    # ------------------------------------------------------------------ steps

    @abstractmethod
    async def create_step(self, step: StepExecution) -> None:
        """Insert a step record."""

    @abstractmethod
    async def get_step(self, step_id: str) -> StepExecution | None:
        """A step record, or None."""

    @abstractmethod
    async def update_step_status(
        self,
        step_id: str,
        status: str,
        result: str | None = None,
        error: str | None = None,
    ) -> None:
        """Set a step record's status (and result/error when given)."""

    @abstractmethod
    async def list_steps(self, run_id: str) -> list[StepExecution]:
        """The run's step records, ``created_at`` ascending."""

    # ------------------------------------------------------------------ hooks

    @abstractmethod
    async def create_hook(self, hook: Hook) -> None:
        """Insert a hook (its token is unique)."""

    @abstractmethod
    async def get_hook(self, hook_id: str, run_id: str | None = None) -> Hook | None:
        """A hook by id (within ``run_id`` when given), or None."""

    @abstractmethod
    async def get_hook_by_token(self, token: str) -> Hook | None:
        """A hook by its token, or None."""

    @abstractmethod
    async def update_hook_status(
        self, hook_id: str, status: HookStatus, payload: str | None = None
    ) -> None:
        """Set status (RECEIVED also sets ``received_at``) and payload when given."""

    @abstractmethod
    async def list_hooks(
        self,
        run_id: str | None = None,
        status: HookStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Hook]:
        """Hooks, ``created_at`` descending."""

    # ------------------------------------------------------------------ cancellation

    @abstractmethod
    async def set_cancellation_flag(self, run_id: str) -> None:
        """Mark the run as asked to cancel (no run row needed)."""

    @abstractmethod
    async def check_cancellation_flag(self, run_id: str) -> bool:
        """Whether the flag is set."""

    @abstractmethod
    async def clear_cancellation_flag(self, run_id: str) -> None:
        """Unset the flag; fine when it is not set."""

    # ------------------------------------------------------------------ schedules

    @abstractmethod
    async def create_schedule(self, schedule: Schedule) -> None:
        """Insert; a taken id raises ``ValueError``."""

    @abstractmethod
    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """A schedule, or None."""

    @abstractmethod
    async def update_schedule(self, schedule: Schedule) -> None:
        """Replace the whole schedule; a missing one raises ``ValueError``."""

    async def patch_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        if_updated_at: datetime | object | None = ANY_TIME,
    ) -> bool:
        """Set only the fields in ``changes``, atomically; with ``if_updated_at``, only
        if the stored ``updated_at`` still equals it (False otherwise: someone else
        wrote the schedule since it was read). A missing schedule raises ``ValueError``.

        The default reads and writes the whole schedule (not atomic); the bundled
        backends override it with one atomic write.
        """
        current = await self.get_schedule(schedule_id)
        if current is None:
            raise ValueError(f"Schedule {schedule_id} not found")
        if if_updated_at is not ANY_TIME and current.updated_at != if_updated_at:
            return False
        for name, value in changes.items():
            setattr(current, name, value)
        await self.update_schedule(current)
        return True

    @abstractmethod
    async def delete_schedule(self, schedule_id: str) -> None:
        """Soft delete (status DELETED); a missing one raises ``ValueError``."""

    @abstractmethod
    async def list_schedules(
        self,
        workflow_name: str | None = None,
        status: ScheduleStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Schedule]:
        """Schedules, ``created_at`` descending."""

    @abstractmethod
    async def get_due_schedules(self, now: datetime) -> list[Schedule]:
        """ACTIVE schedules with ``next_run_time <= now``, soonest first."""

    @abstractmethod
    async def add_running_run(self, schedule_id: str, run_id: str) -> None:
        """Add to ``running_run_ids`` (no duplicates); missing schedule: ``ValueError``."""

    @abstractmethod
    async def remove_running_run(self, schedule_id: str, run_id: str) -> None:
        """Remove from ``running_run_ids`` if present; missing schedule: ``ValueError``."""
