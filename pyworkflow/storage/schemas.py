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
from typing import Any, ClassVar

from pyworkflow.storage.record import Record


def _now() -> datetime:
    return datetime.now(UTC)


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
#: Statuses of a run an activation is (or was) advancing: with no live lease, the
#: activation died and the stale-run scan (``list_stale_runs``) takes the run over.
STALE_STATUSES = (RunStatus.RUNNING.value, RunStatus.INTERRUPTED.value)


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
    """What a schedule does when its previous run is still going.

    Example:
        >>> OverlapPolicy("buffer_one") is OverlapPolicy.BUFFER_ONE
        True
    """

    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    BUFFER_ALL = "buffer_all"
    CANCEL_OTHER = "cancel_other"
    ALLOW_ALL = "allow_all"


class ScheduleStatus(str, Enum):
    """Lifecycle of a schedule.

    Example:
        >>> ScheduleStatus.PAUSED.value
        'paused'
    """

    ACTIVE = "active"
    PAUSED = "paused"
    DELETED = "deleted"


@dataclass
class WorkflowRun(Record):
    """One execution of a workflow. ``input_args`` is a JSON list, ``input_kwargs`` a
    JSON object, ``result`` is ``serialize(value)``. ``from_dict`` also reads the
    legacy key ``metadata`` as ``context``.

    Example:
        >>> run = WorkflowRun(run_id="run_1", workflow_name="order", status=RunStatus.PENDING)
        >>> WorkflowRun.from_dict(run.to_dict()) == run
        True
        >>> WorkflowRun.from_dict({**run.to_dict(), "context": None, "metadata": {"a": 1}}).context
        {'a': 1}
    """

    ALIASES: ClassVar[dict[str, str]] = {"metadata": "context"}

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


@dataclass
class StepExecution(Record):
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


@dataclass
class Hook(Record):
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


@dataclass
class Timer(Record):
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the derived ``timer_id``."""
        return {"timer_id": self.timer_id, **super().to_dict()}

    @property
    def timer_id(self) -> str:
        """``<run_id>:<kind>:<key>``: unique per run and purpose."""
        return make_timer_id(self.run_id, self.kind, self.key)


def make_timer_id(run_id: str, kind: str, key: str) -> str:
    """The id of the timer of ``kind`` for ``key`` in ``run_id``."""
    return f"{run_id}:{kind}:{key}"


@dataclass
class CalendarSpec(Record):
    """A wall-clock slot: time of day plus optional day filters (Monday = 0).

    Example:
        >>> CalendarSpec(hour=9, day_of_week=0).to_dict()["hour"]
        9
    """

    second: int = 0
    minute: int = 0
    hour: int = 0
    day_of_month: int | None = None
    month: int | None = None
    day_of_week: int | None = None


@dataclass
class ScheduleSpec(Record):
    """When a schedule fires: one of ``cron``, ``interval`` or ``calendar``.

    Example:
        >>> spec = ScheduleSpec(calendar=[CalendarSpec(hour=9)], timezone="Europe/Berlin")
        >>> ScheduleSpec.from_dict(spec.to_dict()) == spec
        True
    """

    cron: str | None = None
    interval: str | None = None
    calendar: list[CalendarSpec] | None = None
    timezone: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None
    jitter: str | None = None


@dataclass
class Schedule(Record):
    """A recurring start of a workflow, with its overlap policy and counters.

    Example:
        >>> s = Schedule("sched_1", "report", ScheduleSpec(cron="0 9 * * *"))
        >>> s.to_dict()["spec"]["cron"], s.status.value, s.overlap_policy.value
        ('0 9 * * *', 'active', 'skip')
    """

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
