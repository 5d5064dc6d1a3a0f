"""Records kept by every storage backend.

Each record is a dataclass with ``to_dict()`` (datetimes as ISO strings, enums by
value) and ``from_dict()`` (the inverse, filling defaults for missing keys).

Example:
    >>> run = WorkflowRun(run_id="run_1", workflow_name="order", status=RunStatus.PENDING)
    >>> WorkflowRun.from_dict(run.to_dict()) == run
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any


def _now() -> datetime:
    return datetime.now(UTC)


def _dt(value: Any) -> datetime | None:
    """Parse an ISO string (or pass a datetime through); naive values are taken as UTC."""
    if value is None or value == "":
        return None
    result = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return result if result.tzinfo else result.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class RunStatus(str, Enum):
    """Lifecycle of a run. Terminal: COMPLETED, FAILED, CANCELLED, CONTINUED_AS_NEW.

    Example:
        >>> RunStatus("completed") is RunStatus.COMPLETED, RunStatus.SUSPENDED.value
        (True, 'suspended')
    """

    PENDING = "pending"
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    CONTINUED_AS_NEW = "continued_as_new"


TERMINAL_STATUSES = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.CONTINUED_AS_NEW}
)


class StepStatus(str, Enum):
    """Lifecycle of a step execution record."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELLED = "cancelled"


class HookStatus(str, Enum):
    """Lifecycle of a hook."""

    PENDING = "pending"
    RECEIVED = "received"
    EXPIRED = "expired"
    DISPOSED = "disposed"


class OverlapPolicy(str, Enum):
    """What a schedule does when its previous run is still going."""

    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    BUFFER_ALL = "buffer_all"
    CANCEL_OTHER = "cancel_other"
    ALLOW_ALL = "allow_all"


class ScheduleStatus(str, Enum):
    """Lifecycle of a schedule."""

    ACTIVE = "active"
    PAUSED = "paused"
    DELETED = "deleted"


@dataclass
class WorkflowRun:
    """One execution of a workflow. ``input_args`` is a JSON list, ``input_kwargs`` a
    JSON object, ``result`` is ``serialize(value)``."""

    run_id: str
    workflow_name: str
    status: RunStatus
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    input_args: str = "{}"
    input_kwargs: str = "{}"
    result: str | None = None
    error: str | None = None
    idempotency_key: str | None = None
    max_duration: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    recovery_attempts: int = 0
    max_recovery_attempts: int = 3
    recover_on_worker_loss: bool = True
    parent_run_id: str | None = None
    nesting_depth: int = 0
    continued_from_run_id: str | None = None
    continued_to_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "workflow_name": self.workflow_name,
            "status": self.status.value,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "started_at": _iso(self.started_at),
            "completed_at": _iso(self.completed_at),
            "input_args": self.input_args,
            "input_kwargs": self.input_kwargs,
            "result": self.result,
            "error": self.error,
            "idempotency_key": self.idempotency_key,
            "max_duration": self.max_duration,
            "context": self.context,
            "recovery_attempts": self.recovery_attempts,
            "max_recovery_attempts": self.max_recovery_attempts,
            "recover_on_worker_loss": self.recover_on_worker_loss,
            "parent_run_id": self.parent_run_id,
            "nesting_depth": self.nesting_depth,
            "continued_from_run_id": self.continued_from_run_id,
            "continued_to_run_id": self.continued_to_run_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkflowRun:
        """The inverse of :meth:`to_dict`; accepts the legacy key ``metadata``."""
        context = d.get("context")
        if context is None:
            context = d.get("metadata") or {}
        return cls(
            run_id=d["run_id"],
            workflow_name=d["workflow_name"],
            status=RunStatus(d["status"]),
            created_at=_dt(d.get("created_at")) or _now(),
            updated_at=_dt(d.get("updated_at")) or _now(),
            started_at=_dt(d.get("started_at")),
            completed_at=_dt(d.get("completed_at")),
            input_args=d.get("input_args", "{}"),
            input_kwargs=d.get("input_kwargs", "{}"),
            result=d.get("result"),
            error=d.get("error"),
            idempotency_key=d.get("idempotency_key"),
            max_duration=d.get("max_duration"),
            context=dict(context),
            recovery_attempts=int(d.get("recovery_attempts", 0)),
            max_recovery_attempts=int(d.get("max_recovery_attempts", 3)),
            recover_on_worker_loss=bool(d.get("recover_on_worker_loss", True)),
            parent_run_id=d.get("parent_run_id"),
            nesting_depth=int(d.get("nesting_depth", 0)),
            continued_from_run_id=d.get("continued_from_run_id"),
            continued_to_run_id=d.get("continued_to_run_id"),
        )


@dataclass
class StepExecution:
    """A step execution record (optional bookkeeping; the log is authoritative)."""

    step_id: str
    run_id: str
    step_name: str
    status: StepStatus
    attempt: int = 1
    max_retries: int = 3
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    input_args: str = "{}"
    input_kwargs: str = "{}"
    result: str | None = None
    error: str | None = None
    retry_after: datetime | None = None
    retry_delay: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "step_id": self.step_id,
            "run_id": self.run_id,
            "step_name": self.step_name,
            "status": self.status.value,
            "attempt": self.attempt,
            "max_retries": self.max_retries,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "started_at": _iso(self.started_at),
            "completed_at": _iso(self.completed_at),
            "input_args": self.input_args,
            "input_kwargs": self.input_kwargs,
            "result": self.result,
            "error": self.error,
            "retry_after": _iso(self.retry_after),
            "retry_delay": self.retry_delay,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepExecution:
        """The inverse of :meth:`to_dict`."""
        return cls(
            step_id=d["step_id"],
            run_id=d["run_id"],
            step_name=d["step_name"],
            status=StepStatus(d["status"]),
            attempt=int(d.get("attempt", 1)),
            max_retries=int(d.get("max_retries", 3)),
            created_at=_dt(d.get("created_at")) or _now(),
            updated_at=_dt(d.get("updated_at")) or _now(),
            started_at=_dt(d.get("started_at")),
            completed_at=_dt(d.get("completed_at")),
            input_args=d.get("input_args", "{}"),
            input_kwargs=d.get("input_kwargs", "{}"),
            result=d.get("result"),
            error=d.get("error"),
            retry_after=_dt(d.get("retry_after")),
            retry_delay=d.get("retry_delay"),
        )


@dataclass
class Hook:
    """A point where a run waits for an outside event, resumed by its token."""

    hook_id: str
    run_id: str
    token: str
    url: str = ""
    status: HookStatus = HookStatus.PENDING
    created_at: datetime = field(default_factory=_now)
    received_at: datetime | None = None
    expires_at: datetime | None = None
    payload: str | None = None
    name: str | None = None
    payload_schema: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "hook_id": self.hook_id,
            "run_id": self.run_id,
            "token": self.token,
            "url": self.url,
            "status": self.status.value,
            "created_at": _iso(self.created_at),
            "received_at": _iso(self.received_at),
            "expires_at": _iso(self.expires_at),
            "payload": self.payload,
            "name": self.name,
            "payload_schema": self.payload_schema,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hook:
        """The inverse of :meth:`to_dict`."""
        return cls(
            hook_id=d["hook_id"],
            run_id=d["run_id"],
            token=d["token"],
            url=d.get("url", ""),
            status=HookStatus(d.get("status", "pending")),
            created_at=_dt(d.get("created_at")) or _now(),
            received_at=_dt(d.get("received_at")),
            expires_at=_dt(d.get("expires_at")),
            payload=d.get("payload"),
            name=d.get("name"),
            payload_schema=d.get("payload_schema"),
            metadata=dict(d.get("metadata") or {}),
        )


@dataclass
class Timer:
    """A durable wake-up: the run ``run_id`` must be activated at ``fire_at``.

    ``kind`` is ``sleep``, ``retry``, ``hook`` (expiry), ``deadline`` (max_duration)
    or ``wake``; ``key`` is the sleep, step or hook id it belongs to. A scheduler
    claims due timers atomically (``claimed_by`` / ``claimed_until``); the activation
    that consumes one deletes it in the same commit as its event.
    """

    run_id: str
    kind: str
    key: str
    fire_at: datetime
    claimed_by: str | None = None
    claimed_until: datetime | None = None

    @property
    def timer_id(self) -> str:
        """``<run_id>:<kind>:<key>``: unique per run and purpose."""
        return make_timer_id(self.run_id, self.kind, self.key)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "timer_id": self.timer_id,
            "run_id": self.run_id,
            "kind": self.kind,
            "key": self.key,
            "fire_at": _iso(self.fire_at),
            "claimed_by": self.claimed_by,
            "claimed_until": _iso(self.claimed_until),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Timer:
        """The inverse of :meth:`to_dict`."""
        fire_at = _dt(d["fire_at"])
        assert fire_at is not None
        return cls(
            run_id=d["run_id"],
            kind=d["kind"],
            key=d["key"],
            fire_at=fire_at,
            claimed_by=d.get("claimed_by"),
            claimed_until=_dt(d.get("claimed_until")),
        )


def make_timer_id(run_id: str, kind: str, key: str) -> str:
    """The id of the timer of ``kind`` for ``key`` in ``run_id``."""
    return f"{run_id}:{kind}:{key}"


@dataclass
class CalendarSpec:
    """A wall-clock slot: time of day plus optional day filters (Monday = 0)."""

    second: int = 0
    minute: int = 0
    hour: int = 0
    day_of_month: int | None = None
    month: int | None = None
    day_of_week: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "second": self.second,
            "minute": self.minute,
            "hour": self.hour,
            "day_of_month": self.day_of_month,
            "month": self.month,
            "day_of_week": self.day_of_week,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalendarSpec:
        """The inverse of :meth:`to_dict`."""
        return cls(
            second=int(d.get("second", 0)),
            minute=int(d.get("minute", 0)),
            hour=int(d.get("hour", 0)),
            day_of_month=d.get("day_of_month"),
            month=d.get("month"),
            day_of_week=d.get("day_of_week"),
        )


@dataclass
class ScheduleSpec:
    """When a schedule fires: one of ``cron``, ``interval`` or ``calendar``."""

    cron: str | None = None
    interval: str | None = None
    calendar: list[CalendarSpec] | None = None
    timezone: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None
    jitter: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (calendar entries as a list of dicts)."""
        return {
            "cron": self.cron,
            "interval": self.interval,
            "calendar": [c.to_dict() for c in self.calendar] if self.calendar else None,
            "timezone": self.timezone,
            "start_at": _iso(self.start_at),
            "end_at": _iso(self.end_at),
            "jitter": self.jitter,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScheduleSpec:
        """The inverse of :meth:`to_dict`."""
        calendar = d.get("calendar")
        return cls(
            cron=d.get("cron"),
            interval=d.get("interval"),
            calendar=[CalendarSpec.from_dict(c) for c in calendar] if calendar else None,
            timezone=d.get("timezone") or "UTC",
            start_at=_dt(d.get("start_at")),
            end_at=_dt(d.get("end_at")),
            jitter=d.get("jitter"),
        )


@dataclass
class Schedule:
    """A recurring start of a workflow, with its overlap policy and counters."""

    schedule_id: str
    workflow_name: str
    spec: ScheduleSpec
    status: ScheduleStatus = ScheduleStatus.ACTIVE
    args: str = "[]"
    kwargs: str = "{}"
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime | None = None
    last_run_at: datetime | None = None
    next_run_time: datetime | None = None
    last_run_id: str | None = None
    running_run_ids: list[str] = field(default_factory=list)
    buffered_count: int = 0
    total_runs: int = 0
    successful_runs: int = 0
    failed_runs: int = 0
    skipped_runs: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with ``spec`` nested."""
        return {
            "schedule_id": self.schedule_id,
            "workflow_name": self.workflow_name,
            "spec": self.spec.to_dict(),
            "status": self.status.value,
            "args": self.args,
            "kwargs": self.kwargs,
            "overlap_policy": self.overlap_policy.value,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "last_run_at": _iso(self.last_run_at),
            "next_run_time": _iso(self.next_run_time),
            "last_run_id": self.last_run_id,
            "running_run_ids": list(self.running_run_ids),
            "buffered_count": self.buffered_count,
            "total_runs": self.total_runs,
            "successful_runs": self.successful_runs,
            "failed_runs": self.failed_runs,
            "skipped_runs": self.skipped_runs,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schedule:
        """The inverse of :meth:`to_dict`."""
        return cls(
            schedule_id=d["schedule_id"],
            workflow_name=d["workflow_name"],
            spec=ScheduleSpec.from_dict(d.get("spec") or {}),
            status=ScheduleStatus(d.get("status", "active")),
            args=d.get("args", "[]"),
            kwargs=d.get("kwargs", "{}"),
            overlap_policy=OverlapPolicy(d.get("overlap_policy", "skip")),
            created_at=_dt(d.get("created_at")) or _now(),
            updated_at=_dt(d.get("updated_at")),
            last_run_at=_dt(d.get("last_run_at")),
            next_run_time=_dt(d.get("next_run_time")),
            last_run_id=d.get("last_run_id"),
            running_run_ids=list(d.get("running_run_ids") or []),
            buffered_count=int(d.get("buffered_count", 0)),
            total_runs=int(d.get("total_runs", 0)),
            successful_runs=int(d.get("successful_runs", 0)),
            failed_runs=int(d.get("failed_runs", 0)),
            skipped_runs=int(d.get("skipped_runs", 0)),
        )
