"""What has to happen after a run ends, beyond its own log.

* a run that continued as new: the next run of the chain is created (PENDING, with
  ``continued_from_run_id``) and must be started;
* a child: its outcome is appended to the parent's log and the parent woken;
* a parent: its unfinished children are cancelled (the TERMINATE close policy).

These touch other runs, so they cannot share the ending run's transaction. The
terminal commit therefore also arms a ``followup`` timer on the ended run; the
runtime does the follow-ups right after the commit and then deletes the timer. If
the process dies in between, the timer fires later and they are done then. Every
step is idempotent (a run created twice, an outcome recorded twice, a cancellation
requested twice all change nothing).

Example:
    >>> followup_timer("run_1").kind
    'followup'
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from loguru import logger

from pyworkflow.engine import events as ev
from pyworkflow.engine.cancellation import request_cancellation
from pyworkflow.engine.dispatch import resume_guard
from pyworkflow.storage.base import (
    CommitBatch,
    DuplicateEventError,
    RunAlreadyExistsError,
    StorageBackend,
)
from pyworkflow.storage.schemas import (
    TERMINAL_STATUSES,
    RunStatus,
    Timer,
    WorkflowRun,
    make_timer_id,
)
from pyworkflow.utils.duration import parse_duration_seconds

# Long enough that the runtime normally finishes the follow-ups first.
FOLLOWUP_DELAY_SECONDS = float(os.environ.get("PYWORKFLOW_FOLLOWUP_DELAY_SECONDS", "30"))


SCHEDULE_KIND = "schedule"
# A schedule whose next slot is closer than this is not poked when one of its runs
# ends: schedulers may already hold a claim on that slot's timer (they claim a little
# ahead), and processing the slot reconciles the ended run anyway.
POKE_HORIZON_SECONDS = 5.0


def schedule_timer(schedule_id: str, at: datetime) -> Timer:
    """The timer that has schedule ``schedule_id`` processed at ``at`` (see
    :mod:`pyworkflow.scheduler.schedules`)."""
    return Timer(schedule_id, SCHEDULE_KIND, "next", at)


def schedule_of(idempotency_key: str | None) -> str | None:
    """The schedule a run was started for: its idempotency key is
    ``schedule:<schedule id>:<run id>``.

    Example:
        >>> schedule_of("schedule:nightly:report:sched_nightly__1a2b3c4d")
        'nightly:report'
    """
    if not idempotency_key or not idempotency_key.startswith("schedule:"):
        return None
    # ``schedule:<schedule id>:<run id>``: run ids have no colon, schedule ids may.
    head, sep, _ = idempotency_key[len("schedule:") :].rpartition(":")
    return head if sep and head else None


def followup_timer(run_id: str, now: datetime | None = None) -> Timer:
    """The timer that guarantees a run's follow-ups happen."""
    moment = now or datetime.now(UTC)
    return Timer(run_id, "followup", "terminal", moment + timedelta(seconds=FOLLOWUP_DELAY_SECONDS))


@dataclass
class Followups:
    """Runs to act on after the follow-ups: the continuation to start, runs to wake."""

    continue_to: str | None = None
    wake: list[str] = field(default_factory=list)


def new_pending_run(
    run_id: str,
    workflow_name: str,
    args_json: str,
    kwargs_json: str,
    max_duration: str | None = None,
) -> WorkflowRun:
    """A run record that another activation will start."""
    now = datetime.now(UTC)
    return WorkflowRun(
        run_id=run_id,
        workflow_name=workflow_name,
        status=RunStatus.PENDING,
        created_at=now,
        updated_at=now,
        started_at=now,
        input_args=args_json,
        input_kwargs=kwargs_json,
        max_duration=max_duration,
    )


async def create_pending_run(storage: StorageBackend, run: WorkflowRun) -> None:
    """Insert ``run`` with ``workflow.started``, its deadline timer and a resume guard
    (it starts even if the message that should start it is lost)."""
    now = datetime.now(UTC)
    timers = [resume_guard(run.run_id, now)]
    if run.max_duration:
        seconds = parse_duration_seconds(run.max_duration)
        timers.append(
            Timer(run.run_id, "deadline", "max_duration", now + timedelta(seconds=seconds))
        )
    started = ev.create_workflow_started_event(
        run.run_id, run.workflow_name, run.input_args, run.input_kwargs
    )
    await storage.commit(
        CommitBatch(
            run_id=run.run_id,
            events=[started],
            expected_sequence=-1,
            create_run=run,
            timers_upsert=timers,
        )
    )


async def final_run(storage: StorageBackend, run: WorkflowRun) -> WorkflowRun:
    """The last run of the continue-as-new chain starting at ``run``."""
    current = run
    for _ in range(100_000):
        nxt = current.continued_to_run_id
        if current.status is not RunStatus.CONTINUED_AS_NEW or not nxt:
            return current
        following = await storage.get_run(nxt)
        if following is None:
            return current
        current = following
    return current


async def child_outcome_event(
    storage: StorageBackend, parent_id: str, child_id: str, child_run_id: str, last: WorkflowRun
) -> ev.Event:
    """The event that tells the parent how its child (chain ending in ``last``) ended."""
    if last.status is RunStatus.COMPLETED:
        return ev.create_child_workflow_completed_event(
            parent_id, child_id, child_run_id, last.result
        )
    if last.status is RunStatus.CANCELLED:
        ended = await storage.get_latest_event(last.run_id, ev.EventType.WORKFLOW_CANCELLED.value)
        reason = ended.data.get("reason") if ended is not None else None
        return ev.create_child_workflow_cancelled_event(
            parent_id, child_id, child_run_id, reason or last.error or "Workflow was cancelled"
        )
    failed = await storage.get_latest_event(last.run_id, ev.EventType.WORKFLOW_FAILED.value)
    error_type = str(failed.data.get("error_type")) if failed is not None else "WorkflowError"
    return ev.create_child_workflow_failed_event(
        parent_id, child_id, child_run_id, last.error or "failed", error_type
    )


async def _continuation(storage: StorageBackend, run: WorkflowRun) -> str | None:
    """Create the next run of a chain if it does not exist yet; its id."""
    event = await storage.get_latest_event(run.run_id, ev.EventType.WORKFLOW_CONTINUED_AS_NEW.value)
    if event is None:
        return None
    new_id = str(event.data["new_run_id"])
    nxt = new_pending_run(
        new_id, run.workflow_name, event.data["args"], event.data["kwargs"], run.max_duration
    )
    nxt.continued_from_run_id = run.run_id
    nxt.parent_run_id = run.parent_run_id
    nxt.nesting_depth = run.nesting_depth
    nxt.recover_on_worker_loss = run.recover_on_worker_loss
    nxt.max_recovery_attempts = run.max_recovery_attempts
    with contextlib.suppress(RunAlreadyExistsError):
        await create_pending_run(storage, nxt)
    return new_id


async def _notify_parent(storage: StorageBackend, run: WorkflowRun) -> str | None:
    """Append the child's outcome to its parent's log; the parent's id to wake."""
    parent_id = run.parent_run_id
    if not parent_id:
        return None
    root = run
    if run.continued_from_run_id:
        chain = await storage.get_workflow_chain(run.run_id)
        root = chain[0] if chain else run
    starts = await storage.get_events(parent_id, [ev.EventType.CHILD_WORKFLOW_STARTED.value])
    child_id = next(
        (e.data["child_id"] for e in starts if e.data.get("child_run_id") == root.run_id), None
    )
    if child_id is None:
        return None
    event = await child_outcome_event(storage, parent_id, child_id, root.run_id, run)
    parent = await storage.get_run(parent_id)
    waiting = parent is not None and parent.status not in TERMINAL_STATUSES
    guard = [resume_guard(parent_id, datetime.now(UTC))] if waiting else []
    with contextlib.suppress(DuplicateEventError):
        await storage.commit(CommitBatch(run_id=parent_id, events=[event], timers_upsert=guard))
    return parent_id if waiting else None


async def _tell_schedule(storage: StorageBackend, run: WorkflowRun) -> None:
    """A run a schedule started has ended (the whole chain, if it continued): have
    the schedule look now (count it, start a buffered run, stop skipping)."""
    root = run
    if run.continued_from_run_id:
        chain = await storage.get_workflow_chain(run.run_id)
        root = chain[0] if chain else run
    schedule_id = schedule_of(root.idempotency_key)
    schedule = await storage.get_schedule(schedule_id) if schedule_id is not None else None
    if schedule is None:
        return
    now = datetime.now(UTC)
    soon = now + timedelta(seconds=POKE_HORIZON_SECONDS)
    if schedule.next_run_time is not None and schedule.next_run_time <= soon:
        # Its next slot comes first and reconciles anyway; leave that timer (and any
        # claim a scheduler holds on it) alone.
        return
    await storage.commit(
        CommitBatch(
            run_id=schedule.schedule_id, timers_upsert=[schedule_timer(schedule.schedule_id, now)]
        )
    )


async def _cancel_children(storage: StorageBackend, run: WorkflowRun) -> list[str]:
    """Ask the run's unfinished children to cancel; the waiting ones to wake."""
    wake: list[str] = []
    reason = f"Parent workflow {run.run_id} {run.status.value}"
    for child in await storage.get_children(run.run_id):
        if child.status in TERMINAL_STATUSES:
            continue
        try:
            before = await request_cancellation(storage, child.run_id, reason)
        except Exception as error:
            logger.warning("Could not cancel child {}: {}", child.run_id, error)
            continue
        if before is not None and before.status is not RunStatus.RUNNING:
            wake.append(child.run_id)
    return wake


async def run_followups(storage: StorageBackend, run: WorkflowRun) -> Followups:
    """Do everything owed by the ended ``run``; then drop its follow-up timer."""
    result = Followups()
    if run.status is RunStatus.CONTINUED_AS_NEW:
        result.continue_to = await _continuation(storage, run)
    else:
        parent = await _notify_parent(storage, run)
        if parent is not None:
            result.wake.append(parent)
        await _tell_schedule(storage, run)
    result.wake += await _cancel_children(storage, run)
    await storage.commit(
        CommitBatch(
            run_id=run.run_id, timers_delete=[make_timer_id(run.run_id, "followup", "terminal")]
        )
    )
    return result
