"""Events: the append-only log that is the whole truth of a run.

Every state change of a durable run is an :class:`Event` appended to the run's log;
run rows, timers and hook rows are indexes over it. ``sequence`` is assigned by the
storage, starts at 0 and is unique per run.

Example:
    >>> e = create_step_completed_event("run_1", "step_a_1", '"ok"', "a")
    >>> e.type.value, e.data["result"]
    ('step.completed', '"ok"')
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pyworkflow.serialization.encoder import serialize


class EventType(str, Enum):
    """Every kind of event; values are the dotted names stored in the log."""

    WORKFLOW_STARTED = "workflow.started"
    WORKFLOW_COMPLETED = "workflow.completed"
    WORKFLOW_FAILED = "workflow.failed"
    WORKFLOW_INTERRUPTED = "workflow.interrupted"
    WORKFLOW_CANCELLED = "workflow.cancelled"
    WORKFLOW_PAUSED = "workflow.paused"
    WORKFLOW_RESUMED = "workflow.resumed"
    WORKFLOW_CONTINUED_AS_NEW = "workflow.continued_as_new"
    STEP_STARTED = "step.started"
    STEP_COMPLETED = "step.completed"
    STEP_FAILED = "step.failed"
    STEP_RETRYING = "step.retrying"
    STEP_CANCELLED = "step.cancelled"
    SLEEP_STARTED = "sleep.started"
    SLEEP_COMPLETED = "sleep.completed"
    HOOK_CREATED = "hook.created"
    HOOK_RECEIVED = "hook.received"
    HOOK_EXPIRED = "hook.expired"
    HOOK_DISPOSED = "hook.disposed"
    CANCELLATION_REQUESTED = "cancellation.requested"
    CONTEXT_UPDATED = "context.updated"
    CHILD_WORKFLOW_STARTED = "child_workflow.started"
    CHILD_WORKFLOW_COMPLETED = "child_workflow.completed"
    CHILD_WORKFLOW_FAILED = "child_workflow.failed"
    CHILD_WORKFLOW_CANCELLED = "child_workflow.cancelled"
    SCHEDULE_CREATED = "schedule.created"
    SCHEDULE_UPDATED = "schedule.updated"
    SCHEDULE_PAUSED = "schedule.paused"
    SCHEDULE_RESUMED = "schedule.resumed"
    SCHEDULE_DELETED = "schedule.deleted"
    SCHEDULE_TRIGGERED = "schedule.triggered"
    SCHEDULE_SKIPPED = "schedule.skipped"
    SCHEDULE_BACKFILL_STARTED = "schedule.backfill_started"
    SCHEDULE_BACKFILL_COMPLETED = "schedule.backfill_completed"


def _now() -> datetime:
    return datetime.now(UTC)


def _new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex[:16]}"


@dataclass
class Event:
    """One entry of a run's log.

    Example:
        >>> Event(run_id="run_1", type=EventType.WORKFLOW_STARTED).sequence is None
        True
    """

    event_id: str = field(default_factory=_new_event_id)
    run_id: str = ""
    type: EventType = EventType.WORKFLOW_STARTED
    timestamp: datetime = field(default_factory=_now)
    data: dict[str, Any] = field(default_factory=dict)
    sequence: int | None = None

    def __post_init__(self) -> None:
        if not self.run_id:
            raise ValueError("Event.run_id must not be empty")
        if not isinstance(self.type, EventType):
            raise TypeError(f"Event.type must be an EventType, got {type(self.type).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (type by value, timestamp as ISO)."""
        return {
            "event_id": self.event_id,
            "run_id": self.run_id,
            "type": self.type.value,
            "timestamp": self.timestamp.isoformat(),
            "data": self.data,
            "sequence": self.sequence,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        """The inverse of :meth:`to_dict`."""
        ts = d.get("timestamp")
        timestamp = datetime.fromisoformat(ts) if isinstance(ts, str) else (ts or _now())
        return cls(
            event_id=d.get("event_id") or _new_event_id(),
            run_id=d["run_id"],
            type=EventType(d["type"]),
            timestamp=timestamp,
            data=dict(d.get("data") or {}),
            sequence=d.get("sequence"),
        )


# Events that may exist at most once per run under the same key: the storage refuses
# a second one, which is what makes "each step's result is recorded once", "a token
# resumes one hook once" and "a timer fires once" hold even against duplicate
# deliveries and racing writers. Exclusive outcomes share a key on purpose.
_DEDUP_BY_ID: dict[EventType, tuple[str, str]] = {
    EventType.STEP_COMPLETED: ("step.outcome", "step_id"),
    EventType.SLEEP_STARTED: ("sleep.started", "sleep_id"),
    EventType.SLEEP_COMPLETED: ("sleep.completed", "sleep_id"),
    EventType.HOOK_CREATED: ("hook.created", "hook_id"),
    EventType.HOOK_RECEIVED: ("hook.outcome", "hook_id"),
    EventType.HOOK_EXPIRED: ("hook.outcome", "hook_id"),
    EventType.CHILD_WORKFLOW_STARTED: ("child.started", "child_id"),
    EventType.CHILD_WORKFLOW_COMPLETED: ("child.outcome", "child_id"),
    EventType.CHILD_WORKFLOW_FAILED: ("child.outcome", "child_id"),
    EventType.CHILD_WORKFLOW_CANCELLED: ("child.outcome", "child_id"),
}
_TERMINAL = {
    EventType.WORKFLOW_COMPLETED,
    EventType.WORKFLOW_FAILED,
    EventType.WORKFLOW_CANCELLED,
    EventType.WORKFLOW_CONTINUED_AS_NEW,
}


def dedup_key(event: Event) -> str | None:
    """The uniqueness key a storage enforces per run for this event, if any.

    Example:
        >>> dedup_key(create_sleep_completed_event("run_1", "sleep_1_5s"))
        'sleep.completed:sleep_1_5s'
    """
    t = event.type
    if t in _TERMINAL:
        return "workflow.terminal"
    if t is EventType.WORKFLOW_STARTED:
        return "workflow.started"
    if t is EventType.STEP_FAILED and event.data.get("final"):
        return f"step.outcome:{event.data.get('step_id')}"
    if t is EventType.STEP_RETRYING:
        return f"step.retrying:{event.data.get('step_id')}:{event.data.get('attempt')}"
    spec = _DEDUP_BY_ID.get(t)
    if spec is None:
        return None
    prefix, key = spec
    return f"{prefix}:{event.data.get(key)}"


# --------------------------------------------------------------------------- factories


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def _ev(run_id: str, etype: EventType, **data: Any) -> Event:
    return Event(run_id=run_id, type=etype, data=data)


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
        from datetime import timedelta

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
