"""Factories of child-workflow and schedule events (re-exported by ``events``).

Example:
    >>> from pyworkflow.engine.events import create_schedule_paused_event
    >>> create_schedule_paused_event("sched_1", "sched_1").type.value
    'schedule.paused'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pyworkflow.engine.event_model import Event, EventType
from pyworkflow.engine.event_model import iso as _iso
from pyworkflow.engine.event_model import make_event as _ev
from pyworkflow.engine.event_model import now_utc as _now


def create_child_workflow_started_event(
    run_id: str,
    child_id: str,
    child_run_id: str,
    child_workflow_name: str,
    args: Any,
    kwargs: Any,
    wait_for_completion: bool,
) -> Event:
    """``child_workflow.started`` (in the parent's log)."""
    return _ev(
        run_id,
        EventType.CHILD_WORKFLOW_STARTED,
        child_id=child_id,
        child_run_id=child_run_id,
        child_workflow_name=child_workflow_name,
        args=args,
        kwargs=kwargs,
        wait_for_completion=wait_for_completion,
        started_at=_now().isoformat(),
    )


def create_child_workflow_completed_event(
    run_id: str, child_id: str, child_run_id: str, result: Any
) -> Event:
    """``child_workflow.completed``."""
    return _ev(
        run_id,
        EventType.CHILD_WORKFLOW_COMPLETED,
        child_id=child_id,
        child_run_id=child_run_id,
        result=result,
        completed_at=_now().isoformat(),
    )


def create_child_workflow_failed_event(
    run_id: str, child_id: str, child_run_id: str, error: str, error_type: str
) -> Event:
    """``child_workflow.failed``."""
    return _ev(
        run_id,
        EventType.CHILD_WORKFLOW_FAILED,
        child_id=child_id,
        child_run_id=child_run_id,
        error=error,
        error_type=error_type,
        failed_at=_now().isoformat(),
    )


def create_child_workflow_cancelled_event(
    run_id: str, child_id: str, child_run_id: str, reason: str | None = None
) -> Event:
    """``child_workflow.cancelled``."""
    return _ev(
        run_id,
        EventType.CHILD_WORKFLOW_CANCELLED,
        child_id=child_id,
        child_run_id=child_run_id,
        reason=reason,
        cancelled_at=_now().isoformat(),
    )


def create_schedule_created_event(
    run_id: str,
    schedule_id: str,
    workflow_name: str,
    spec: dict[str, Any],
    overlap_policy: str,
) -> Event:
    """``schedule.created``."""
    return _ev(
        run_id,
        EventType.SCHEDULE_CREATED,
        schedule_id=schedule_id,
        workflow_name=workflow_name,
        spec=spec,
        overlap_policy=overlap_policy,
        created_at=_now().isoformat(),
    )


def create_schedule_paused_event(run_id: str, schedule_id: str, reason: str | None = None) -> Event:
    """``schedule.paused``."""
    return _ev(
        run_id,
        EventType.SCHEDULE_PAUSED,
        schedule_id=schedule_id,
        reason=reason,
        paused_at=_now().isoformat(),
    )


def create_schedule_resumed_event(
    run_id: str, schedule_id: str, next_run_time: datetime | str | None = None
) -> Event:
    """``schedule.resumed``."""
    return _ev(
        run_id,
        EventType.SCHEDULE_RESUMED,
        schedule_id=schedule_id,
        next_run_time=_iso(next_run_time),
        resumed_at=_now().isoformat(),
    )


def create_schedule_deleted_event(
    run_id: str, schedule_id: str, reason: str | None = None
) -> Event:
    """``schedule.deleted``."""
    return _ev(
        run_id,
        EventType.SCHEDULE_DELETED,
        schedule_id=schedule_id,
        reason=reason,
        deleted_at=_now().isoformat(),
    )


def create_schedule_triggered_event(
    run_id: str,
    schedule_id: str,
    scheduled_time: datetime | str,
    actual_time: datetime | str,
    workflow_run_id: str,
) -> Event:
    """``schedule.triggered`` (``run_id`` is the schedule id)."""
    return _ev(
        run_id,
        EventType.SCHEDULE_TRIGGERED,
        schedule_id=schedule_id,
        scheduled_time=_iso(scheduled_time),
        actual_time=_iso(actual_time),
        workflow_run_id=workflow_run_id,
    )


def create_schedule_skipped_event(
    run_id: str,
    schedule_id: str,
    reason: str,
    scheduled_time: datetime | str,
    overlap_policy: str | None = None,
) -> Event:
    """``schedule.skipped``."""
    return _ev(
        run_id,
        EventType.SCHEDULE_SKIPPED,
        schedule_id=schedule_id,
        reason=reason,
        scheduled_time=_iso(scheduled_time),
        overlap_policy=overlap_policy,
        skipped_at=_now().isoformat(),
    )


def create_schedule_backfill_started_event(
    run_id: str,
    schedule_id: str,
    start_time: datetime | str,
    end_time: datetime | str,
    expected_runs: int,
) -> Event:
    """``schedule.backfill_started``."""
    return _ev(
        run_id,
        EventType.SCHEDULE_BACKFILL_STARTED,
        schedule_id=schedule_id,
        start_time=_iso(start_time),
        end_time=_iso(end_time),
        expected_runs=expected_runs,
    )


def create_schedule_backfill_completed_event(
    run_id: str, schedule_id: str, runs_created: int, run_ids: list[str]
) -> Event:
    """``schedule.backfill_completed``."""
    return _ev(
        run_id,
        EventType.SCHEDULE_BACKFILL_COMPLETED,
        schedule_id=schedule_id,
        runs_created=runs_created,
        run_ids=list(run_ids),
    )
