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
from dataclasses import dataclass, field, replace
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


def schedule_key(schedule_id: str, run_id: str) -> str:
    """The idempotency key of a scheduled run; it also names the schedule to tell
    when the run ends (see ``engine.followups.schedule_of``)."""
    return f"schedule:{schedule_id}:{run_id}"


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


async def arm(
    storage: StorageBackend,
    schedule: Schedule,
    now: datetime | None = None,
    *,
    asap: bool = False,
) -> None:
    """Set the schedule's timer from its state (or remove it when nothing is due).

    ``asap``: have it processed now if runs of it are going (an API change must not
    push back a pending look at runs that ended)."""
    moment = now or datetime.now(UTC)
    active = schedule.status is ScheduleStatus.ACTIVE
    at = schedule.next_run_time if active else None
    if at is not None:
        at = at + jitter_of(schedule, at)
    busy = bool(schedule.running_run_ids) or (active and schedule.buffered_count > 0)
    if busy and schedule.status is not ScheduleStatus.DELETED:
        # A paused schedule still counts its runs as they end.
        recheck = moment if asap else moment + timedelta(seconds=RECHECK_SECONDS)
        at = recheck if at is None else min(at, recheck)
    timer_id = make_timer_id(schedule.schedule_id, SCHEDULE_KIND, "next")
    if at is None:
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


@dataclass
class _Plan:
    """What one processing pass decided; carried out only once it is saved."""

    starts: list[tuple[str, datetime | None]] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    events: list[ev.Event] = field(default_factory=list)


async def process_schedule(
    storage: StorageBackend, schedule_id: str, launch: Launch, now: datetime | None = None
) -> list[str]:
    """Handle one schedule whose timer this process claimed; returns the runs started.

    A pass reads the schedule, decides, and saves its decisions with a conditional
    write (``patch_schedule(..., if_updated_at=...)``); only then are runs created,
    cancelled or launched and events recorded. If anything wrote the schedule
    meanwhile (an API call, another scheduler), the pass starts over on fresh data.
    """
    moment = now or datetime.now(UTC)
    for _ in range(_MAX_PASSES):
        schedule = await storage.get_schedule(schedule_id)
        if schedule is None or schedule.status is ScheduleStatus.DELETED:
            timer_id = make_timer_id(schedule_id, SCHEDULE_KIND, "next")
            await storage.commit(CommitBatch(run_id=schedule_id, timers_delete=[timer_id]))
            return []
        seen_at = schedule.updated_at
        plan = _Plan()
        await _reconcile(storage, schedule, plan)
        if schedule.status is ScheduleStatus.ACTIVE:
            if not schedule.running_run_ids and schedule.buffered_count > 0:
                schedule.buffered_count -= 1
                _plan_start(schedule, moment, moment, plan)
            due = schedule.next_run_time
            if due is not None and due <= moment:
                _fire(schedule, due, moment, plan)
        if await _save(storage, schedule, seen_at, moment):
            return await _carry_out(storage, schedule, plan, launch, moment)
    logger.warning("Schedule {} kept changing under its processing; retried later", schedule_id)
    return []


_MAX_PASSES = 5

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


async def _save(
    storage: StorageBackend, schedule: Schedule, seen_at: datetime | None, now: datetime
) -> bool:
    """Write the pass's fields if nobody wrote the schedule since it was read."""
    changes = {name: getattr(schedule, name) for name in _PROCESSOR_FIELDS}
    changes["updated_at"] = now if seen_at is None or now > seen_at else seen_at + _TICK
    schedule.updated_at = changes["updated_at"]
    return await storage.patch_schedule(schedule.schedule_id, changes, if_updated_at=seen_at)


_TICK = timedelta(microseconds=1)


async def _carry_out(
    storage: StorageBackend, schedule: Schedule, plan: _Plan, launch: Launch, now: datetime
) -> list[str]:
    """The saved pass's effects: each one idempotent, so a pass that is repeated
    after a crash does no harm."""
    started: list[str] = []
    for run_id in plan.cancels:
        await _cancel(storage, schedule, run_id, launch)
    for run_id, slot in plan.starts:
        created = await _create_run(storage, schedule, run_id)
        if created and slot is not None:
            plan.events.append(
                ev.create_schedule_triggered_event(
                    schedule.schedule_id, schedule.schedule_id, slot, now, run_id
                )
            )
        await launch(run_id)
        if slot is not None:
            started.append(run_id)
    for event in plan.events:
        await storage.record_event(event)
    await arm(storage, schedule, now)
    return started


async def _reconcile(storage: StorageBackend, schedule: Schedule, plan: _Plan) -> None:
    going: list[str] = []
    for run_id in schedule.running_run_ids:
        run = await storage.get_run(run_id)
        if run is None:
            # Decided and saved, but the process died before creating it: do it now.
            plan.starts.append((run_id, None))
            going.append(run_id)
            continue
        last = await final_run(storage, run)
        if last.status not in TERMINAL_STATUSES or last.status is RunStatus.CONTINUED_AS_NEW:
            going.append(run_id)
        elif last.status is RunStatus.COMPLETED:
            schedule.successful_runs += 1
        elif last.status is RunStatus.FAILED:
            schedule.failed_runs += 1
    schedule.running_run_ids = going


def _fire(schedule: Schedule, slot: datetime, now: datetime, plan: _Plan) -> None:
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
        _skip(schedule, missed, "missed while no scheduler was running", plan)
    for each in recent:
        _fire_one(schedule, each, now, plan)


def _fire_one(schedule: Schedule, slot: datetime, now: datetime, plan: _Plan) -> None:
    """One slot, per the overlap policy."""
    policy = schedule.overlap_policy
    if not schedule.running_run_ids or policy is OverlapPolicy.ALLOW_ALL:
        _plan_start(schedule, slot, now, plan)
    elif policy is OverlapPolicy.CANCEL_OTHER:
        plan.cancels += [r for r in schedule.running_run_ids if r not in plan.cancels]
        _plan_start(schedule, slot, now, plan)
    elif policy is OverlapPolicy.BUFFER_ALL or (
        policy is OverlapPolicy.BUFFER_ONE and schedule.buffered_count < 1
    ):
        schedule.buffered_count += 1
    else:
        _skip(schedule, slot, "a previous run is still going", plan)


def _skip(schedule: Schedule, slot: datetime, why: str, plan: _Plan) -> None:
    schedule.skipped_runs += 1
    plan.events.append(
        ev.create_schedule_skipped_event(
            schedule.schedule_id, schedule.schedule_id, why, slot, schedule.overlap_policy.value
        )
    )


def _plan_start(schedule: Schedule, slot: datetime, now: datetime, plan: _Plan) -> bool:
    """Count the schedule's next run (created once the pass is saved)."""
    if get_workflow(schedule.workflow_name) is None:
        schedule.failed_runs += 1
        logger.error(
            "Schedule {}: workflow '{}' is not registered in this process; import its "
            "module in every scheduler process",
            schedule.schedule_id,
            schedule.workflow_name,
        )
        return False
    run_id = scheduled_run_id(schedule.schedule_id, schedule.total_runs)
    schedule.total_runs += 1
    schedule.last_run_at = now
    schedule.last_run_id = run_id
    schedule.running_run_ids.append(run_id)
    plan.starts.append((run_id, slot))
    return True


async def _create_run(storage: StorageBackend, schedule: Schedule, run_id: str) -> bool:
    """Create a decided run (PENDING, with a resume guard); False if it existed."""
    meta = get_workflow(schedule.workflow_name)
    if meta is None:
        return False
    run = new_pending_run(
        run_id, meta.name, schedule.args, schedule.kwargs, max_duration_text(meta)
    )
    run.idempotency_key = schedule_key(schedule.schedule_id, run_id)
    run.recover_on_worker_loss, run.max_recovery_attempts = recovery_settings(meta)
    try:
        await create_pending_run(storage, run)
    except (RunAlreadyExistsError, ValueError):
        if await storage.get_run(run_id) is None:
            raise
        return False
    return True


async def _cancel(storage: StorageBackend, schedule: Schedule, run_id: str, launch: Launch) -> None:
    reason = f"Schedule {schedule.schedule_id} started a newer run (cancel_other)"
    try:
        run = await request_cancellation(storage, run_id, reason)
    except Exception as error:
        logger.warning("Could not cancel run {} of {}: {}", run_id, schedule.schedule_id, error)
        return
    if run is not None and run.status is not RunStatus.RUNNING:
        await launch(run_id)  # a waiting run handles the request when woken


async def trigger_now(
    storage: StorageBackend, schedule_id: str, launch: Launch, now: datetime | None = None
) -> str:
    """Start a run of the schedule at once, outside its slots (no overlap policy,
    next slot unchanged); it counts like the others. Returns its run id."""
    moment = now or datetime.now(UTC)
    for _ in range(_MAX_PASSES):
        schedule = await storage.get_schedule(schedule_id)
        if schedule is None:
            raise ValueError(f"Schedule '{schedule_id}' not found")
        seen_at = schedule.updated_at
        plan = _Plan()
        await _reconcile(storage, schedule, plan)
        if not _plan_start(schedule, moment, moment, plan):
            raise ValueError(
                f"Workflow '{schedule.workflow_name}' is not registered in this process; "
                "import its module before triggering its schedule"
            )
        if await _save(storage, schedule, seen_at, moment):
            await _carry_out(storage, schedule, plan, launch, moment)
            return plan.starts[-1][0]
    raise RuntimeError(f"Schedule {schedule_id} kept changing; try again")


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
