"""Events: the append-only log that is the whole truth of a run.

Every state change of a durable run is an :class:`Event` appended to the run's log;
run rows, timers and hook rows are indexes over it. ``sequence`` is assigned by the
storage, starts at 0 and is unique per run. This module holds the model (re-exported)
and one ``create_<kind>_event`` factory per kind; child-workflow and schedule
factories live in :mod:`pyworkflow.engine.event_factories` and are re-exported here.

Example:
    >>> e = create_step_completed_event("run_1", "step_a_1", '"ok"', "a")
    >>> e.type.value, e.data["result"]
    ('step.completed', '"ok"')
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pyworkflow.engine.event_model import Event, EventType, dedup_key
from pyworkflow.engine.event_model import iso as _iso
from pyworkflow.engine.event_model import make_event as _ev
from pyworkflow.engine.event_model import now_utc as _now
from pyworkflow.serialization.encoder import serialize


def create_workflow_started_event(
    run_id: str,
    workflow_name: str,
    args: Any,
    kwargs: Any,
    metadata: dict[str, Any] | None = None,
) -> Event:
    """``workflow.started``; ``args``/``kwargs`` are the JSON strings of the input."""
    return _ev(
        run_id,
        EventType.WORKFLOW_STARTED,
        workflow_name=workflow_name,
        args=args,
        kwargs=kwargs,
        metadata=metadata or {},
    )


def create_workflow_completed_event(run_id: str, result: Any, workflow_name: str) -> Event:
    """``workflow.completed`` with ``serialize(result)``."""
    return _ev(
        run_id,
        EventType.WORKFLOW_COMPLETED,
        result=serialize(result),
        workflow_name=workflow_name,
    )


def create_workflow_failed_event(
    run_id: str, error: str, error_type: str, traceback: str | None = None
) -> Event:
    """``workflow.failed``."""
    return _ev(
        run_id, EventType.WORKFLOW_FAILED, error=error, error_type=error_type, traceback=traceback
    )


def create_workflow_interrupted_event(
    run_id: str,
    reason: str,
    worker_id: str | None = None,
    last_event_sequence: int | None = None,
    error: str | None = None,
    recovery_attempt: int = 1,
    recoverable: bool = True,
) -> Event:
    """``workflow.interrupted``: a worker died mid-activation."""
    return _ev(
        run_id,
        EventType.WORKFLOW_INTERRUPTED,
        reason=reason,
        worker_id=worker_id,
        last_event_sequence=last_event_sequence,
        error=error,
        recovery_attempt=recovery_attempt,
        recoverable=recoverable,
    )


def create_workflow_cancelled_event(
    run_id: str, reason: str | None = None, cleanup_completed: bool = False
) -> Event:
    """``workflow.cancelled``."""
    return _ev(
        run_id,
        EventType.WORKFLOW_CANCELLED,
        reason=reason,
        cleanup_completed=cleanup_completed,
        cancelled_at=_now().isoformat(),
    )


def create_workflow_continued_as_new_event(
    run_id: str, new_run_id: str, args: Any, kwargs: Any, reason: str | None = None
) -> Event:
    """``workflow.continued_as_new``."""
    return _ev(
        run_id,
        EventType.WORKFLOW_CONTINUED_AS_NEW,
        new_run_id=new_run_id,
        args=args,
        kwargs=kwargs,
        reason=reason,
        continued_at=_now().isoformat(),
    )


def create_step_started_event(
    run_id: str, step_id: str, step_name: str, args: Any, kwargs: Any, attempt: int = 1
) -> Event:
    """``step.started``; ``args``/``kwargs`` are JSON strings."""
    return _ev(
        run_id,
        EventType.STEP_STARTED,
        step_id=step_id,
        step_name=step_name,
        args=args,
        kwargs=kwargs,
        attempt=attempt,
    )


def create_step_completed_event(run_id: str, step_id: str, result: Any, step_name: str) -> Event:
    """``step.completed``; ``result`` is the serialized JSON string."""
    return _ev(
        run_id, EventType.STEP_COMPLETED, step_id=step_id, result=result, step_name=step_name
    )


def create_step_failed_event(
    run_id: str,
    step_id: str,
    error: str,
    error_type: str,
    is_retryable: bool,
    attempt: int,
    traceback: str | None = None,
) -> Event:
    """``step.failed``."""
    return _ev(
        run_id,
        EventType.STEP_FAILED,
        step_id=step_id,
        error=error,
        error_type=error_type,
        is_retryable=is_retryable,
        attempt=attempt,
        traceback=traceback,
    )


def create_step_retrying_event(
    run_id: str,
    step_id: str,
    attempt: int,
    retry_after: str | None = None,
    error: str | None = None,
) -> Event:
    """``step.retrying``: the next attempt number and when it may run."""
    return _ev(
        run_id,
        EventType.STEP_RETRYING,
        step_id=step_id,
        attempt=attempt,
        retry_after=retry_after,
        error=error,
    )


def create_step_cancelled_event(
    run_id: str, step_id: str, step_name: str, reason: str | None = None
) -> Event:
    """``step.cancelled``."""
    return _ev(
        run_id,
        EventType.STEP_CANCELLED,
        step_id=step_id,
        step_name=step_name,
        reason=reason,
        cancelled_at=_now().isoformat(),
    )


def create_sleep_started_event(
    run_id: str,
    sleep_id: str,
    duration_seconds: float,
    resume_at: datetime,
    name: str | None = None,
) -> Event:
    """``sleep.started``; ``resume_at`` stored as ISO."""
    return _ev(
        run_id,
        EventType.SLEEP_STARTED,
        sleep_id=sleep_id,
        duration_seconds=duration_seconds,
        resume_at=_iso(resume_at),
        name=name,
    )


def create_sleep_completed_event(run_id: str, sleep_id: str) -> Event:
    """``sleep.completed``."""
    return _ev(run_id, EventType.SLEEP_COMPLETED, sleep_id=sleep_id)


def create_hook_created_event(
    run_id: str,
    hook_id: str,
    token: str = "",
    url: str = "",
    expires_at: datetime | str | None = None,
    name: str | None = None,
    hook_name: str | None = None,
    timeout_seconds: float | None = None,
) -> Event:
    """``hook.created``; ``hook_name`` is an alias of ``name``."""
    if expires_at is None and timeout_seconds is not None:
        expires_at = _now() + timedelta(seconds=timeout_seconds)
    return _ev(
        run_id,
        EventType.HOOK_CREATED,
        hook_id=hook_id,
        url=url,
        token=token,
        expires_at=_iso(expires_at),
        name=name if name is not None else hook_name,
    )


def create_hook_received_event(run_id: str, hook_id: str, payload: Any) -> Event:
    """``hook.received``; the engine passes the serialized payload."""
    return _ev(run_id, EventType.HOOK_RECEIVED, hook_id=hook_id, payload=payload)


def create_hook_expired_event(run_id: str, hook_id: str) -> Event:
    """``hook.expired``."""
    return _ev(run_id, EventType.HOOK_EXPIRED, hook_id=hook_id)


def create_cancellation_requested_event(
    run_id: str, reason: str | None = None, requested_by: str | None = None
) -> Event:
    """``cancellation.requested``."""
    return _ev(
        run_id,
        EventType.CANCELLATION_REQUESTED,
        reason=reason,
        requested_by=requested_by,
        requested_at=_now().isoformat(),
    )


def create_context_updated_event(run_id: str, context_data: dict[str, Any]) -> Event:
    """``context.updated``."""
    return _ev(
        run_id,
        EventType.CONTEXT_UPDATED,
        context=context_data,
        updated_at=_now().isoformat(),
    )


# Re-exported so every factory stays importable from this module, as upstream has it.
from pyworkflow.engine.event_factories import (  # noqa: E402
    create_child_workflow_cancelled_event,
    create_child_workflow_completed_event,
    create_child_workflow_failed_event,
    create_child_workflow_started_event,
    create_schedule_backfill_completed_event,
    create_schedule_backfill_started_event,
    create_schedule_created_event,
    create_schedule_deleted_event,
    create_schedule_paused_event,
    create_schedule_resumed_event,
    create_schedule_skipped_event,
    create_schedule_triggered_event,
)

__all__ = [
    "Event",
    "EventType",
    "create_cancellation_requested_event",
    "create_child_workflow_cancelled_event",
    "create_child_workflow_completed_event",
    "create_child_workflow_failed_event",
    "create_child_workflow_started_event",
    "create_context_updated_event",
    "create_hook_created_event",
    "create_hook_expired_event",
    "create_hook_received_event",
    "create_schedule_backfill_completed_event",
    "create_schedule_backfill_started_event",
    "create_schedule_created_event",
    "create_schedule_deleted_event",
    "create_schedule_paused_event",
    "create_schedule_resumed_event",
    "create_schedule_skipped_event",
    "create_schedule_triggered_event",
    "create_sleep_completed_event",
    "create_sleep_started_event",
    "create_step_cancelled_event",
    "create_step_completed_event",
    "create_step_failed_event",
    "create_step_retrying_event",
    "create_step_started_event",
    "create_workflow_cancelled_event",
    "create_workflow_completed_event",
    "create_workflow_continued_as_new_event",
    "create_workflow_failed_event",
    "create_workflow_interrupted_event",
    "create_workflow_started_event",
    "dedup_key",
]
