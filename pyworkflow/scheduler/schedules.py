"""Firing schedules: one durable timer per schedule, processed by whoever claims it.

Each ACTIVE schedule has a timer (``run_id`` = the schedule id, kind ``schedule``)
due at its next slot. Claims are atomic, so exactly one scheduler process handles
a schedule at a time, and :func:`process_schedule` then:

1. reconciles ``running_run_ids``: runs that ended leave the list and count as
   successful or failed (cancelled runs count as neither);
2. starts a buffered run once nothing is running (``BUFFER_ONE``/``BUFFER_ALL``);
3. fires the slot if it is due, per the overlap policy;
4. saves the schedule and re-arms its timer (the next slot, or sooner while runs
   are going, as a safety net: a run's end also re-arms it at once, unless its next
   slot is less than 5 s away and will do).

A run started for a schedule has a run id and an idempotency key derived from the
schedule and its ``total_runs`` count, so processing the same slot twice (a
scheduler that died after starting the run and before saving) starts nothing new.

Late and missed slots: slots that came due less than ``MISSED_GRACE_SECONDS`` ago
(``PYWORKFLOW_SCHEDULE_GRACE_SECONDS``, 5 s) all fire, in order, each through the
overlap policy. When every scheduler was down for longer, only the latest missed slot
fires (once) and the older ones count as skipped (``skipped_runs``, a
``schedule.skipped`` event each).

Example:
    >>> scheduled_run_id("sched_abc123def456", 0)[:14]
    'sched_sched_ab'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from loguru import logger

from pyworkflow.core.registry import get_workflow
from pyworkflow.engine import events as ev
from pyworkflow.engine.cancellation import request_cancellation
from pyworkflow.engine.followups import (
    SCHEDULE_KIND,
    create_pending_run,
    final_run,
    new_pending_run,
    schedule_timer,
)
from pyworkflow.runtime.activator import max_duration_text, recovery_settings
from pyworkflow.storage.base import CommitBatch, RunAlreadyExistsError, StorageBackend
from pyworkflow.storage.schemas import (
    TERMINAL_STATUSES,
    OverlapPolicy,
    RunStatus,
    Schedule,
    ScheduleStatus,
    make_timer_id,
)
from pyworkflow.utils.duration import parse_duration_seconds
from pyworkflow.utils.schedule import calculate_next_run_time

# While a schedule's runs are going it is looked at again after this long even if no
# run's end re-armed it (e.g. a run ended by a process that died at once).
RECHECK_SECONDS = 60.0
_MAX_MISSED = 10_000
# Slots due longer ago than this when their schedule is processed were missed (every
# scheduler was down); later ones are only late and all fire.
MISSED_GRACE_SECONDS = float(os.environ.get("PYWORKFLOW_SCHEDULE_GRACE_SECONDS", "5"))

Launch = Callable[[str], Awaitable[None]]


def scheduled_run_id(schedule_id: str, ordinal: int) -> str:
    """The run id of the ``ordinal``-th run a schedule starts (stable, so a slot
    processed twice starts one run): ``sched_<id[:8]>_<8 hex>``."""
    digest = hashlib.sha256(f"{schedule_id}:{ordinal}".encode()).hexdigest()[:8]
    return f"sched_{schedule_id[:8]}_{digest}"


def schedule_key(schedule_id: str, ordinal: int) -> str:
    """The idempotency key of that run; it also names the schedule to tell when the
    run ends (see :func:`schedule_of`)."""
    return f"schedule:{schedule_id}:{ordinal}"


def jitter_of(schedule: Schedule, slot: datetime) -> timedelta:
    """How long after ``slot`` it fires: the spec's jitter, spread by a hash of the
    schedule and the slot (stable when the timer is re-armed; never accumulating,
    since the stored next slot itself carries no jitter)."""
    if not schedule.spec.jitter:
        return timedelta(0)
    bound = int(parse_duration_seconds(schedule.spec.jitter))
    digest = hashlib.sha256(f"{schedule.schedule_id}:{slot.isoformat()}".encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:4], "big") % (bound + 1))


def next_slot(schedule: Schedule, last: datetime | None, now: datetime) -> datetime | None:
    """The schedule's next slot after ``now`` (jitter is applied when firing)."""
    return calculate_next_run_time(replace(schedule.spec, jitter=None), last_run=last, now=now)


async def arm(storage: StorageBackend, schedule: Schedule, now: datetime | None = None) -> None:
    """Set the schedule's timer from its state (or remove it when nothing is due)."""
    moment = now or datetime.now(UTC)
    at = schedule.next_run_time
    if at is not None:
        at = at + jitter_of(schedule, at)
    busy = bool(schedule.running_run_ids) or schedule.buffered_count > 0
    if busy:
        recheck = moment + timedelta(seconds=RECHECK_SECONDS)
        at = recheck if at is None else min(at, recheck)
    timer_id = make_timer_id(schedule.schedule_id, SCHEDULE_KIND, "next")
    if schedule.status is not ScheduleStatus.ACTIVE or at is None:
        batch = CommitBatch(run_id=schedule.schedule_id, timers_delete=[timer_id])
    else:
        batch = CommitBatch(
            run_id=schedule.schedule_id, timers_upsert=[schedule_timer(schedule.schedule_id, at)]
        )
    await storage.commit(batch)
    _notify_local(storage)


def _notify_local(storage: StorageBackend) -> None:
    """A timer service of this process and storage looks again now, not at its next
    poll (other processes see the timer at theirs)."""
    from pyworkflow.runtime.local import notify_timer_service  # the runtime sits above

    notify_timer_service(storage)


async def process_schedule(
    storage: StorageBackend, schedule_id: str, launch: Launch, now: datetime | None = None
) -> list[str]:
    """Handle one schedule whose timer this process claimed; returns the runs started."""
    moment = now or datetime.now(UTC)
    schedule = await storage.get_schedule(schedule_id)
    if schedule is None or schedule.status is ScheduleStatus.DELETED:
        timer_id = make_timer_id(schedule_id, SCHEDULE_KIND, "next")
        await storage.commit(CommitBatch(run_id=schedule_id, timers_delete=[timer_id]))
        return []
    started: list[str] = []
    seen = replace(schedule, running_run_ids=list(schedule.running_run_ids))
    await _reconcile(storage, schedule)
    if schedule.status is not ScheduleStatus.ACTIVE:
        # Paused: its runs still count when they end, but nothing starts.
        await _save(storage, seen, schedule, moment)
        return []
    if not schedule.running_run_ids and schedule.buffered_count > 0:
        schedule.buffered_count -= 1
        started += await _start(storage, schedule, moment, launch, moment)
    due = schedule.next_run_time
    if due is not None and due <= moment:
        started += await _fire(storage, schedule, due, moment, launch)
    await _save(storage, seen, schedule, moment)
    return started


async def _save(storage: StorageBackend, seen: Schedule, done: Schedule, now: datetime) -> None:
    """Write what processing changed onto the schedule as stored *now*: a pause,
    delete or update made meanwhile through the API is kept (no lost update)."""
    fresh = await storage.get_schedule(done.schedule_id)
    if fresh is None:
        return
    for name in _PROCESSOR_FIELDS:
        setattr(fresh, name, getattr(done, name))
    changed = fresh.spec != seen.spec or fresh.status is not seen.status
    if changed and fresh.status is ScheduleStatus.ACTIVE:
        # Updated or resumed meanwhile: the API's own next slot stands.
        fresh.next_run_time = next_slot(fresh, None, now)
    if fresh.status is not ScheduleStatus.DELETED:
        fresh.updated_at = now
    await storage.update_schedule(fresh)
    await arm(storage, fresh, now)


# What processing owns; the rest (spec, status, policy, arguments) belongs to the API.
_PROCESSOR_FIELDS = (
    "next_run_time",
    "last_run_at",
    "last_run_id",
    "running_run_ids",
    "buffered_count",
    "total_runs",
    "successful_runs",
    "failed_runs",
    "skipped_runs",
)


async def _reconcile(storage: StorageBackend, schedule: Schedule) -> None:
    going: list[str] = []
    for run_id in schedule.running_run_ids:
        run = await storage.get_run(run_id)
        if run is None:
            continue
        last = await final_run(storage, run)
        if last.status not in TERMINAL_STATUSES or last.status is RunStatus.CONTINUED_AS_NEW:
            going.append(run_id)
        elif last.status is RunStatus.COMPLETED:
            schedule.successful_runs += 1
        elif last.status is RunStatus.FAILED:
            schedule.failed_runs += 1
    schedule.running_run_ids = going


async def _fire(
    storage: StorageBackend, schedule: Schedule, slot: datetime, now: datetime, launch: Launch
) -> list[str]:
    """Fire the due slots: every one due within the last ``MISSED_GRACE_SECONDS``;
    of older ones (no scheduler was running) only the latest, the rest are skipped."""
    due = [slot]
    following = next_slot(schedule, slot, slot)
    while following is not None and following <= now and len(due) < _MAX_MISSED:
        due.append(following)
        following = next_slot(schedule, following, following)
    schedule.next_run_time = following
    recent = [s for s in due if s >= now - timedelta(seconds=MISSED_GRACE_SECONDS)]
    old = [s for s in due if s not in recent]
    if not recent:
        recent = [old.pop()]
    for missed in old:
        await _skip(storage, schedule, missed, "missed while no scheduler was running")
    started: list[str] = []
    for each in recent:
        started += await _fire_one(storage, schedule, each, now, launch)
    return started


async def _fire_one(
    storage: StorageBackend, schedule: Schedule, slot: datetime, now: datetime, launch: Launch
) -> list[str]:
    """One slot, per the overlap policy."""
    policy = schedule.overlap_policy
    if not schedule.running_run_ids or policy is OverlapPolicy.ALLOW_ALL:
        return await _start(storage, schedule, slot, launch, now)
    if policy is OverlapPolicy.CANCEL_OTHER:
        await _cancel_running(storage, schedule, launch)
        return await _start(storage, schedule, slot, launch, now)
    if policy is OverlapPolicy.BUFFER_ALL or (
        policy is OverlapPolicy.BUFFER_ONE and schedule.buffered_count < 1
    ):
        schedule.buffered_count += 1
        return []
    await _skip(storage, schedule, slot, "a previous run is still going")
    return []


async def _skip(storage: StorageBackend, schedule: Schedule, slot: datetime, why: str) -> None:
    schedule.skipped_runs += 1
    await storage.record_event(
        ev.create_schedule_skipped_event(
            schedule.schedule_id,
            schedule.schedule_id,
            why,
            slot,
            schedule.overlap_policy.value,
        )
    )


async def _cancel_running(storage: StorageBackend, schedule: Schedule, launch: Launch) -> None:
    reason = f"Schedule {schedule.schedule_id} started a newer run (cancel_other)"
    for run_id in list(schedule.running_run_ids):
        try:
            run = await request_cancellation(storage, run_id, reason)
        except Exception as error:
            logger.warning("Could not cancel run {} of {}: {}", run_id, schedule.schedule_id, error)
            continue
        if run is not None and run.status is not RunStatus.RUNNING:
            await launch(run_id)  # a waiting run handles the request when woken


async def _start(
    storage: StorageBackend, schedule: Schedule, slot: datetime, launch: Launch, now: datetime
) -> list[str]:
    """Create the schedule's next run (PENDING, with a resume guard) and launch it."""
    meta = get_workflow(schedule.workflow_name)
    if meta is None:
        schedule.failed_runs += 1
        logger.error(
            "Schedule {}: workflow '{}' is not registered in this process; import its "
            "module in every scheduler process",
            schedule.schedule_id,
            schedule.workflow_name,
        )
        return []
    ordinal = schedule.total_runs
    run_id = scheduled_run_id(schedule.schedule_id, ordinal)
    run = new_pending_run(
        run_id, meta.name, schedule.args, schedule.kwargs, max_duration_text(meta)
    )
    run.idempotency_key = schedule_key(schedule.schedule_id, ordinal)
    run.recover_on_worker_loss, run.max_recovery_attempts = recovery_settings(meta)
    try:
        await create_pending_run(storage, run)
    except (RunAlreadyExistsError, ValueError):
        if await storage.get_run(run_id) is None:
            raise
    schedule.total_runs += 1
    schedule.last_run_at = now
    schedule.last_run_id = run_id
    schedule.running_run_ids.append(run_id)
    await storage.record_event(
        ev.create_schedule_triggered_event(
            schedule.schedule_id, schedule.schedule_id, slot, now, run_id
        )
    )
    await launch(run_id)
    return [run_id]


async def trigger_now(
    storage: StorageBackend, schedule_id: str, launch: Launch, now: datetime | None = None
) -> str:
    """Start a run of the schedule at once, outside its slots (no overlap policy,
    next slot unchanged); it counts like the others. Returns its run id."""
    moment = now or datetime.now(UTC)
    schedule = await storage.get_schedule(schedule_id)
    if schedule is None:
        raise ValueError(f"Schedule '{schedule_id}' not found")
    seen = replace(schedule, running_run_ids=list(schedule.running_run_ids))
    await _reconcile(storage, schedule)
    started = await _start(storage, schedule, moment, launch, moment)
    await _save(storage, seen, schedule, moment)
    if not started:
        raise ValueError(
            f"Workflow '{schedule.workflow_name}' is not registered in this process; import "
            "its module before triggering its schedule"
        )
    return started[0]


async def start_backfill(
    storage: StorageBackend, schedule: Schedule, slots: list[datetime], launch: Launch
) -> list[str]:
    """One run per slot (its id and idempotency key come from the schedule and the
    slot, so backfilling a range twice starts nothing new)."""
    meta = get_workflow(schedule.workflow_name)
    if meta is None:
        raise ValueError(f"Workflow '{schedule.workflow_name}' not found in registry")
    recover, attempts = recovery_settings(meta)
    run_ids: list[str] = []
    for slot in slots:
        stamp = slot.astimezone(UTC).isoformat()
        digest = hashlib.sha256(f"{schedule.schedule_id}:backfill:{stamp}".encode()).hexdigest()
        run = new_pending_run(
            f"sched_{schedule.schedule_id[:8]}_{digest[:8]}",
            meta.name,
            schedule.args,
            schedule.kwargs,
            max_duration_text(meta),
        )
        run.idempotency_key = f"schedule-backfill:{schedule.schedule_id}:{stamp}"
        run.recover_on_worker_loss, run.max_recovery_attempts = recover, attempts
        try:
            await create_pending_run(storage, run)
        except (RunAlreadyExistsError, ValueError):
            if await storage.get_run(run.run_id) is None:
                raise
            run_ids.append(run.run_id)
            continue
        await launch(run.run_id)
        run_ids.append(run.run_id)
    return run_ids
