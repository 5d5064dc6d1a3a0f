"""The event model: ``EventType``, ``Event`` and per-run de-duplication keys.

Import these from :mod:`pyworkflow.engine.events`, which also holds the factories.

Every state change of a durable run is an :class:`Event` appended to the run's log;
run rows, timers and hook rows are indexes over it. ``sequence`` is assigned by the
storage, starts at 0 and is unique per run.

Example:
    >>> e = Event(run_id="run_1", type=EventType.SLEEP_COMPLETED, data={"sleep_id": "s1"})
    >>> dedup_key(e)
    'sleep.completed:s1'
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any


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
        if timestamp.tzinfo is None:  # stored naive by older writers: it was UTC
            timestamp = timestamp.replace(tzinfo=UTC)
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
    EventType.STEP_CANCELLED: ("step.outcome", "step_id"),
    EventType.SLEEP_STARTED: ("sleep.started", "sleep_id"),
    EventType.SLEEP_COMPLETED: ("sleep.completed", "sleep_id"),
    EventType.HOOK_CREATED: ("hook.created", "hook_id"),
    EventType.HOOK_RECEIVED: ("hook.outcome", "hook_id"),
    EventType.HOOK_EXPIRED: ("hook.outcome", "hook_id"),
    EventType.HOOK_DISPOSED: ("hook.outcome", "hook_id"),
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


TERMINAL_KEY = "workflow.terminal"
"""The de-duplication key every terminal event of a run shares."""


def dedup_key(event: Event) -> str | None:
    """The uniqueness key a storage enforces per run for this event, if any.

    Example:
        >>> dedup_key(Event(run_id="r", type=EventType.HOOK_EXPIRED, data={"hook_id": "h"}))
        'hook.outcome:h'
    """
    t = event.type
    if t in _TERMINAL:
        return TERMINAL_KEY
    if t is EventType.WORKFLOW_STARTED:
        return "workflow.started"
    if t is EventType.STEP_FAILED:
        if event.data.get("final"):
            return f"step.outcome:{event.data.get('step_id')}"
        return f"step.failed:{event.data.get('step_id')}:{event.data.get('attempt')}"
    if t is EventType.STEP_RETRYING:
        return f"step.retrying:{event.data.get('step_id')}:{event.data.get('attempt')}"
    spec = _DEDUP_BY_ID.get(t)
    if spec is None:
        return None
    prefix, key = spec
    return f"{prefix}:{event.data.get(key)}"


def now_utc() -> datetime:
    """The current time, timezone-aware UTC."""
    return _now()


def iso(value: datetime | str | None) -> str | None:
    """ISO text of a datetime (strings and None pass through)."""
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def make_event(run_id: str, etype: EventType, **data: Any) -> Event:
    """An event of ``etype`` for ``run_id`` with ``data``."""
    return Event(run_id=run_id, type=etype, data=data)
