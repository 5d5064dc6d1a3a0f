"""The rules of the storage contract as pure functions over records.

Validation of a commit (sequences, de-duplication, run rows), ordering and paging of
listings, lease and timer rules. :mod:`pyworkflow.storage.file_core` applies them for
both the file and the in-memory backend, so the two can never disagree; SQL backends
express the same rules in SQL and are held to them by ``pyworkflow.testing.conformance``.

Example:
    >>> from pyworkflow.storage.schemas import RunStatus, WorkflowRun
    >>> runs = [WorkflowRun(run_id=f"r{i}", workflow_name="w", status=RunStatus.PENDING)
    ...         for i in range(3)]
    >>> page, cursor = select_runs(runs, limit=2)
    >>> len(page), cursor is not None
    (2, True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from pyworkflow.engine.event_model import TERMINAL_KEY
from pyworkflow.engine.events import Event, dedup_key
from pyworkflow.storage.base import (
    CommitBatch,
    DuplicateEventError,
    RunAlreadyExistsError,
    RunEndedError,
    RunLease,
    RunUpdate,
    SequenceConflictError,
)
from pyworkflow.storage.schemas import (
    STALE_STATUSES,
    Hook,
    HookStatus,
    RunStatus,
    Schedule,
    ScheduleStatus,
    StepExecution,
    StepStatus,
    Timer,
    WorkflowRun,
)

# --------------------------------------------------------------------------- commits


@dataclass
class CommitState:
    """What a backend knows about a run when it validates a :class:`CommitBatch`.

    ``token_owner`` and ``idempotency_owner`` map a hook token / idempotency key to
    whoever holds it already (None when free).
    """

    run_exists: bool
    last_sequence: int
    dedup_keys: set[str]
    hook_ids: set[str] = field(default_factory=set)
    token_owner: Callable[[str], object | None] = lambda _token: None
    idempotency_owner: Callable[[str], str | None] = lambda _key: None


def check_commit(batch: CommitBatch, state: CommitState) -> list[int]:
    """Validate ``batch`` against ``state``; return the sequence of each event.

    Raises before anything is written, so a backend that calls this first and only
    then writes keeps the "nothing is written on error" rule.

    Example:
        >>> from pyworkflow.engine.events import Event
        >>> b = CommitBatch(run_id="r", events=[Event(run_id="r")], expected_sequence=-1)
        >>> check_commit(b, CommitState(run_exists=False, last_sequence=-1, dedup_keys=set()))
        [0]
    """
    run_id = batch.run_id
    _check_run_rows(batch, state)
    expected = batch.expected_sequence
    if expected is not None and expected != state.last_sequence:
        raise SequenceConflictError(run_id, expected)
    if batch.require_open and TERMINAL_KEY in state.dedup_keys:
        raise RunEndedError(run_id)
    seen = set(state.dedup_keys)
    for event in batch.events:
        if event.run_id != run_id:
            raise ValueError(f"Event {event.event_id} belongs to {event.run_id}, not {run_id}")
        key = dedup_key(event)
        if key is not None:
            if key in seen:
                raise DuplicateEventError(run_id, key)
            seen.add(key)
    new_hooks = {h.hook_id for h in batch.hooks_create}
    for hook in batch.hooks_create:
        if hook.run_id != run_id:
            raise ValueError(f"Hook {hook.hook_id} belongs to {hook.run_id}, not {run_id}")
        if hook.hook_id in state.hook_ids or state.token_owner(hook.token) is not None:
            raise ValueError(f"Hook {hook.hook_id} (or its token) already exists")
    for update in batch.hook_updates:
        if update.hook_id not in state.hook_ids and update.hook_id not in new_hooks:
            raise ValueError(f"Hook {update.hook_id} not found in run {run_id}")
    for timer in batch.timers_upsert:
        if timer.run_id != run_id:
            raise ValueError(f"Timer {timer.timer_id} belongs to {timer.run_id}, not {run_id}")
    first = state.last_sequence + 1
    return list(range(first, first + len(batch.events)))


def _check_run_rows(batch: CommitBatch, state: CommitState) -> None:
    created = batch.create_run
    if created is not None:
        if created.run_id != batch.run_id:
            raise ValueError(f"create_run is for {created.run_id}, the batch for {batch.run_id}")
        if state.run_exists:
            raise RunAlreadyExistsError(created.run_id)
        key = created.idempotency_key
        owner = state.idempotency_owner(key) if key is not None else None
        if owner is not None:
            raise ValueError(f"Idempotency key {key!r} is already used by run {owner}")
    elif batch.run_update is not None and not state.run_exists:
        raise ValueError(f"Workflow run {batch.run_id} not found")


def stored_timer(timer: Timer) -> Timer:
    """The copy of ``timer`` a commit stores: an upsert always starts unclaimed."""
    return Timer(run_id=timer.run_id, kind=timer.kind, key=timer.key, fire_at=timer.fire_at)


def apply_run_update(run: WorkflowRun, update: RunUpdate, now: datetime) -> None:
    """Write the non-None fields of ``update`` into ``run`` (``updated_at`` always)."""
    for name in ("status", "result", "error", "started_at", "completed_at"):
        value = getattr(update, name)
        if value is not None:
            setattr(run, name, value)
    if update.continued_to_run_id is not None:
        run.continued_to_run_id = update.continued_to_run_id
    run.updated_at = now


def apply_status(
    run: WorkflowRun, status: RunStatus, result: str | None, error: str | None, now: datetime
) -> None:
    """``update_run_status`` semantics on one record."""
    run.status = status
    run.updated_at = now
    if result is not None:
        run.result = result
    if error is not None:
        run.error = error
    if status in (RunStatus.COMPLETED, RunStatus.FAILED):
        run.completed_at = now


def apply_hook_status(hook: Hook, status: HookStatus, payload: str | None, now: datetime) -> None:
    """``update_hook_status`` semantics on one record (RECEIVED stamps ``received_at``)."""
    hook.status = status
    if payload is not None:
        hook.payload = payload
    if status is HookStatus.RECEIVED:
        hook.received_at = now


def apply_step_status(
    step: StepExecution, status: str, result: str | None, error: str | None, now: datetime
) -> None:
    """``update_step_status`` semantics on one record."""
    step.status = StepStatus(status)
    step.updated_at = now
    if result is not None:
        step.result = result
    if error is not None:
        step.error = error
    if step.status is StepStatus.RUNNING and step.started_at is None:
        step.started_at = now
    if step.status in (StepStatus.COMPLETED, StepStatus.FAILED):
        step.completed_at = now


def type_filter(event_types: Iterable[str] | None) -> set[str] | None:
    """Normalise an event type filter to value strings (enum members accepted too)."""
    if event_types is None:
        return None
    return {t.value if isinstance(t, Enum) else str(t) for t in event_types}


def filter_events(events: Iterable[Event], event_types: Iterable[str] | None) -> list[Event]:
    """Events whose type value is in ``event_types`` (all when None), order kept."""
    wanted = type_filter(event_types)
    return [e for e in events if wanted is None or e.type.value in wanted]


# --------------------------------------------------------------------------- leases


def lease_available(
    lease: RunLease | None, owner: str, now: datetime, steal_from: str | None
) -> bool:
    """Whether ``owner`` may take a run whose current lease is ``lease``."""
    if lease is None or lease.expires_at <= now or lease.owner == owner:
        return True
    return steal_from is not None and lease.owner == steal_from


def new_lease(owner: str, ttl_seconds: float, now: datetime) -> RunLease:
    """A lease held by ``owner`` for ``ttl_seconds`` from ``now``."""
    return RunLease(owner=owner, expires_at=now + timedelta(seconds=ttl_seconds))


def is_stale(run: WorkflowRun, lease: RunLease | None, now: datetime) -> bool:
    """A RUNNING (or INTERRUPTED) run whose activation holds no live lease."""
    if run.status.value not in STALE_STATUSES:
        return False
    return lease is None or lease.expires_at <= now


# --------------------------------------------------------------------------- timers


def is_claimable(timer: Timer, now: datetime) -> bool:
    """Due, and not claimed by someone whose claim is still running."""
    claim_live = timer.claimed_until is not None and timer.claimed_until > now
    return timer.fire_at <= now and not claim_live


def ready_at(timer: Timer) -> datetime:
    """The moment ``timer`` becomes claimable."""
    return max(timer.fire_at, timer.claimed_until or timer.fire_at)


def pick_due(timers: Iterable[Timer], now: datetime, limit: int) -> list[Timer]:
    """The ``limit`` earliest claimable timers."""
    due = sorted((t for t in timers if is_claimable(t, now)), key=lambda t: t.fire_at)
    return due[: max(limit, 0)]


# --------------------------------------------------------------------------- runs


def _matches(
    run: WorkflowRun,
    query: str | None,
    status: RunStatus | None,
    start: datetime | None,
    end: datetime | None,
) -> bool:
    if status is not None and run.status != status:
        return False
    if start is not None and run.created_at < start:
        return False
    if end is not None and run.created_at >= end:
        return False
    if query:
        needle = query.lower()
        return needle in run.workflow_name.lower() or needle in run.input_kwargs.lower()
    return True


def _newest_first(run: WorkflowRun) -> tuple[datetime, str]:
    return (run.created_at, run.run_id)


def select_runs(
    runs: Iterable[WorkflowRun],
    query: str | None = None,
    status: RunStatus | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[WorkflowRun], str | None]:
    """``list_runs`` over an iterable of runs (see :meth:`StorageBackend.list_runs`).

    The cursor is resolved by key, not position, so runs created between two pages
    do not shift the next page; an unknown cursor gives an empty page.
    """
    pool = list(runs)
    matching = sorted(
        (r for r in pool if _matches(r, query, status, start_time, end_time)),
        key=_newest_first,
        reverse=True,
    )
    if cursor is not None:
        anchor = next((r for r in pool if r.run_id == cursor), None)
        if anchor is None:
            return [], None
        after = _newest_first(anchor)
        matching = [r for r in matching if _newest_first(r) < after]
    page = matching[: max(limit, 0)]
    more = len(matching) > len(page)
    return page, (page[-1].run_id if more and page else None)


def walk_chain(lookup: Callable[[str], WorkflowRun | None], run_id: str) -> list[WorkflowRun]:
    """The continue-as-new chain through ``run_id``, oldest first (cycle-safe)."""
    start = lookup(run_id)
    if start is None:
        return []
    root, seen = start, {start.run_id}
    while root.continued_from_run_id and root.continued_from_run_id not in seen:
        previous = lookup(root.continued_from_run_id)
        if previous is None:
            break
        root = previous
        seen.add(root.run_id)
    chain, seen = [root], {root.run_id}
    while chain[-1].continued_to_run_id and chain[-1].continued_to_run_id not in seen:
        following = lookup(chain[-1].continued_to_run_id)
        if following is None:
            break
        chain.append(following)
        seen.add(following.run_id)
    return chain


def select_children(
    runs: Iterable[WorkflowRun], parent_run_id: str, status: RunStatus | None
) -> list[WorkflowRun]:
    """Children of ``parent_run_id``, oldest first."""
    found = [
        r
        for r in runs
        if r.parent_run_id == parent_run_id and (status is None or r.status == status)
    ]
    return sorted(found, key=lambda r: (r.created_at, r.run_id))


# --------------------------------------------------------------------------- hooks, schedules


def select_hooks(
    hooks: Iterable[Hook],
    run_id: str | None,
    status: HookStatus | None,
    limit: int,
    offset: int,
) -> list[Hook]:
    """``list_hooks``: filtered, newest first, then sliced."""
    found = [
        h
        for h in hooks
        if (run_id is None or h.run_id == run_id) and (status is None or h.status == status)
    ]
    found.sort(key=lambda h: (h.created_at, h.hook_id), reverse=True)
    return found[max(offset, 0) : max(offset, 0) + max(limit, 0)]


def newest_hook(hooks: Iterable[Hook]) -> Hook | None:
    """The most recently created of several hooks sharing an id (ids repeat across runs)."""
    return max(hooks, key=lambda h: (h.created_at, h.run_id), default=None)


def select_schedules(
    schedules: Iterable[Schedule],
    workflow_name: str | None,
    status: ScheduleStatus | None,
    limit: int,
    offset: int,
) -> list[Schedule]:
    """``list_schedules``: filtered, newest first, then sliced."""
    found = [
        s
        for s in schedules
        if (workflow_name is None or s.workflow_name == workflow_name)
        and (status is None or s.status == status)
    ]
    found.sort(key=lambda s: (s.created_at, s.schedule_id), reverse=True)
    return found[max(offset, 0) : max(offset, 0) + max(limit, 0)]


def select_due_schedules(schedules: Iterable[Schedule], now: datetime) -> list[Schedule]:
    """ACTIVE schedules whose ``next_run_time`` has come, soonest first."""
    due = [
        s
        for s in schedules
        if s.status is ScheduleStatus.ACTIVE
        and s.next_run_time is not None
        and s.next_run_time <= now
    ]
    return sorted(due, key=lambda s: (s.next_run_time or now, s.schedule_id))
