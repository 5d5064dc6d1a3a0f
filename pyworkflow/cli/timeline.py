"""``pyworkflow runs timeline``: a run's event log folded into one row per durable call.

Events are paired by id: ``step.started``/``failed``/``retrying``/``completed`` per step
id (one row however many attempts), ``sleep.started``/``completed`` per sleep id,
``hook.created``/``received``/``expired``/``disposed`` per hook id and
``child_workflow.*`` per child id. Cancellation, continue-as-new, a workflow failure
and a worker loss are single points in time. Offsets are measured from the run's
``workflow.started`` event; the run's total is its terminal event minus that start.

A sleep counts as *late* when it woke more than :data:`LATE_AFTER` seconds after its
``resume_at``. Rows still open when the run ended are ``cancelled`` (the run was
cancelled) or ``unfinished``.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> from pyworkflow.engine import events as ev
    >>> from pyworkflow.storage.schemas import RunStatus, WorkflowRun
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> log = [ev.create_workflow_started_event("r", "w", "[]", "{}"),
    ...        ev.create_step_started_event("r", "s1", "charge", "[]", "{}"),
    ...        ev.create_step_completed_event("r", "s1", "1", "charge"),
    ...        ev.create_workflow_completed_event("r", 1, "w")]
    >>> for i, e in enumerate(log):
    ...     e.sequence, e.timestamp = i, t0 + timedelta(seconds=i)
    >>> tl = build_timeline(WorkflowRun(run_id="r", workflow_name="w",
    ...                                 status=RunStatus.COMPLETED), log)
    >>> tl.duration, [(i.kind, i.name, i.status, i.duration) for i in tl.items]
    (3.0, [('step', 'charge', 'completed', 1.0)])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyworkflow.cli.output import iso
from pyworkflow.engine.events import Event, EventType
from pyworkflow.storage.schemas import TERMINAL_STATUSES, WorkflowRun

#: A sleep that woke more than this many seconds after its ``resume_at`` is late.
LATE_AFTER = 1.0

#: Kinds that happen at one instant (no duration).
POINT_KINDS = frozenset({"cancellation", "continue_as_new", "failure", "interruption"})


@dataclass
class Item:
    """One row of a timeline.

    Example:
        >>> from datetime import UTC, datetime, timedelta
        >>> at = datetime(2026, 1, 1, tzinfo=UTC)
        >>> Item("sleep", "nap", "completed", at, at + timedelta(seconds=2)).duration
        2.0
    """

    kind: str
    name: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    attempts: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (milliseconds kept); None while still open.

        Example:
            >>> from datetime import UTC, datetime
            >>> Item("hook", "approval", "waiting", datetime(2026, 1, 1, tzinfo=UTC)).duration
        """
        if self.ended_at is None:
            return None
        return round((self.ended_at - self.started_at).total_seconds(), 3)

    def offset(self, origin: datetime) -> float:
        """Seconds from ``origin`` (the run's start) to this row's start.

        Example:
            >>> from datetime import UTC, datetime, timedelta
            >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
            >>> Item("step", "a", "running", t0 + timedelta(seconds=1.5)).offset(t0)
            1.5
        """
        return round((self.started_at - origin).total_seconds(), 3)

    def to_dict(self, origin: datetime) -> dict[str, Any]:
        """The JSON item: kind, name, status, times, duration, attempts, detail, offset.

        Example:
            >>> from datetime import UTC, datetime
            >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
            >>> list(Item("step", "a", "running", t0, attempts=1).to_dict(t0))
            ['kind', 'name', 'status', 'started_at', 'ended_at', 'duration', 'attempts',
             'detail', 'offset']
        """
        return {
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration": self.duration,
            "attempts": self.attempts,
            "detail": self.detail,
            "offset": self.offset(origin),
        }


@dataclass
class Timeline:
    """A run and its rows, oldest first.

    Example:
        >>> from datetime import UTC, datetime
        >>> Timeline("r", "w", "running", datetime(2026, 1, 1, tzinfo=UTC)).duration is None
        True
    """

    run_id: str
    workflow_name: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    items: list[Item] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        """The run's total in seconds; None while it has not ended.

        Example:
            >>> from datetime import UTC, datetime
            >>> t0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
            >>> Timeline("r", "w", "completed", t0, t0.replace(minute=2)).duration
            120.0
        """
        if self.ended_at is None:
            return None
        return round((self.ended_at - self.started_at).total_seconds(), 3)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``runs timeline``: ``{run_id, workflow_name, status, duration, items}``.

        Example:
            >>> from datetime import UTC, datetime
            >>> Timeline("r", "w", "running", datetime(2026, 1, 1, tzinfo=UTC)).to_dict()
            {'run_id': 'r', 'workflow_name': 'w', 'status': 'running', 'duration': None,
             'items': []}
        """
        return {
            "run_id": self.run_id,
            "workflow_name": self.workflow_name,
            "status": self.status,
            "duration": self.duration,
            "items": [item.to_dict(self.started_at) for item in self.items],
        }


def build_timeline(
    run: WorkflowRun,
    events: Sequence[Event],
    children: Mapping[str, WorkflowRun] | None = None,
) -> Timeline:
    """Fold ``events`` (sequence order) of ``run`` into a :class:`Timeline`.

    ``children`` (child run id -> run) fills in the status of children the parent did
    not wait for, whose outcome never reaches the parent's log.

    Example:
        >>> from pyworkflow.storage.schemas import RunStatus
        >>> run = WorkflowRun(run_id="r", workflow_name="w", status=RunStatus.PENDING)
        >>> build_timeline(run, []).items, build_timeline(run, []).duration
        ([], None)
    """
    builder = _Builder()
    for event in events:
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(builder, event, event.data)
        builder.last_seen = event.timestamp
    start = builder.start or run.started_at or run.created_at
    ended = builder.end
    if ended is None and run.status in TERMINAL_STATUSES:
        ended = run.completed_at or builder.last_seen
    builder.finish(ended, run.status.value, children or {})
    return Timeline(run.run_id, run.workflow_name, run.status.value, start, ended, builder.items)


class _Builder:
    def __init__(self) -> None:
        self.items: list[Item] = []
        self.by_key: dict[tuple[str, str], Item] = {}
        self.start: datetime | None = None
        self.end: datetime | None = None
        self.last_seen: datetime | None = None

    def open(self, key: tuple[str, str], item: Item) -> Item:
        """The row of ``key``: the first one opened wins (replays repeat start events)."""
        found = self.by_key.get(key)
        if found is None:
            self.by_key[key] = found = item
            self.items.append(item)
        return found

    def close(self, key: tuple[str, str], status: str, at: datetime, **detail: Any) -> Item | None:
        item = self.by_key.get(key)
        if item is not None:
            item.status, item.ended_at = status, at
            item.detail.update(detail)
        return item

    def point(self, kind: str, name: str, status: str, event: Event, **detail: Any) -> None:
        self.items.append(Item(kind, name, status, event.timestamp, event.timestamp, None, detail))

    def finish(
        self, ended: datetime | None, run_status: str, children: Mapping[str, WorkflowRun]
    ) -> None:
        for item in self.items:
            if item.kind == "child":
                _settle_child(item, children.get(str(item.detail.get("child_run_id"))))
            if item.ended_at is None and ended is not None:
                if item.kind == "cancellation":  # asked, but the run ended another way
                    item.ended_at = item.started_at
                    continue
                item.status = "cancelled" if run_status == "cancelled" else "unfinished"
                item.ended_at = max(ended, item.started_at)


def _settle_child(item: Item, child: WorkflowRun | None) -> None:
    if child is None:
        return
    item.detail["child_status"] = child.status.value
    if item.ended_at is None and child.status in TERMINAL_STATUSES:
        item.status = child.status.value
        item.ended_at = child.completed_at or child.updated_at


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value is not None else None
    except ValueError:
        return None


# ---------------------------------------------------------------- event handlers

_Handler = Callable[[_Builder, Event, dict[str, Any]], None]


def _workflow_started(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    b.start = b.start or e.timestamp


def _ended(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    b.end = e.timestamp
    kind = e.type
    if kind is EventType.WORKFLOW_FAILED:
        b.point("failure", str(d.get("error_type") or "error"), "failed", e, error=d.get("error"))
    elif kind is EventType.WORKFLOW_CONTINUED_AS_NEW:
        new_id = str(d.get("new_run_id"))
        b.point("continue_as_new", new_id, "continued_as_new", e, new_run_id=new_id)
    elif kind is EventType.WORKFLOW_CANCELLED:
        cleanup = d.get("cleanup_completed")
        if b.close(("cancel", ""), "cancelled", e.timestamp, cleanup_completed=cleanup) is None:
            b.point("cancellation", "recorded", "cancelled", e, cleanup_completed=cleanup)


def _interrupted(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    reason = d.get("reason")
    b.point("interruption", str(reason or "interrupted"), "interrupted", e, reason=reason)


def _cancel_requested(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    detail = {"reason": d.get("reason"), "requested_by": d.get("requested_by")}
    item = Item("cancellation", "requested", "requested", e.timestamp, None, None, detail)
    b.open(("cancel", ""), item)


def _step_started(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    step_id = str(d.get("step_id"))
    detail: dict[str, Any] = {"step_id": step_id, "retries": 0, "error": None}
    fresh = Item(
        "step", str(d.get("step_name") or step_id), "running", e.timestamp, None, 0, detail
    )
    item = b.open(("step", step_id), fresh)
    item.attempts = max(item.attempts or 0, int(d.get("attempt") or 1))
    item.detail["retries"] = item.attempts - 1
    item.status, item.ended_at = "running", None


def _step_outcome(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    key = ("step", str(d.get("step_id")))
    if e.type is EventType.STEP_COMPLETED:
        b.close(key, "completed", e.timestamp)
    elif e.type is EventType.STEP_CANCELLED:
        b.close(key, "cancelled", e.timestamp)
    elif e.type is EventType.STEP_FAILED:
        error = f"{d.get('error_type') or 'Error'}: {d.get('error')}"
        b.close(key, "failed", e.timestamp, error=error)
    else:  # retrying: the row stays open until the next attempt ends
        item = b.close(key, "retrying", e.timestamp, next_attempt_at=d.get("resume_at"))
        if item is not None:
            item.ended_at = None


def _sleep_started(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    sleep_id = str(d.get("sleep_id"))
    detail = {
        "sleep_id": sleep_id,
        "duration_seconds": d.get("duration_seconds"),
        "resume_at": d.get("resume_at"),
        "late_by": None,
        "late": None,
    }
    name = str(d.get("name") or sleep_id)
    b.open(("sleep", sleep_id), Item("sleep", name, "sleeping", e.timestamp, None, None, detail))


def _sleep_completed(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    item = b.close(("sleep", str(d.get("sleep_id"))), "completed", e.timestamp)
    due = _parse(item.detail.get("resume_at")) if item is not None else None
    if item is not None and due is not None:
        late_by = round((e.timestamp - due).total_seconds(), 3)
        item.detail.update(late_by=late_by, late=late_by > LATE_AFTER)


def _hook_created(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    hook_id = str(d.get("hook_id"))
    detail = {"hook_id": hook_id, "expires_at": d.get("expires_at"), "waited": None}
    item = Item("hook", str(d.get("name") or hook_id), "waiting", e.timestamp, None, None, detail)
    b.open(("hook", hook_id), item)


def _hook_outcome(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    status = e.type.value.partition(".")[2]  # received / expired / disposed
    extra = {"error": d["error"]} if d.get("error") else {}
    item = b.close(("hook", str(d.get("hook_id"))), status, e.timestamp, **extra)
    if item is not None:
        item.detail["waited"] = item.duration


def _child_started(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    detail = {
        "child_run_id": d.get("child_run_id"),
        "wait_for_completion": d.get("wait_for_completion"),
        "child_status": None,
    }
    name = str(d.get("child_workflow_name") or d.get("child_id"))
    b.open(
        ("child", str(d.get("child_id"))),
        Item("child", name, "running", e.timestamp, None, None, detail),
    )


def _child_outcome(b: _Builder, e: Event, d: dict[str, Any]) -> None:
    status = e.type.value.partition(".")[2]  # completed / failed / cancelled
    extra = {"error": d["error"]} if d.get("error") else {}
    b.close(("child", str(d.get("child_id"))), status, e.timestamp, **extra)


_HANDLERS: dict[EventType, _Handler] = {
    EventType.WORKFLOW_STARTED: _workflow_started,
    EventType.WORKFLOW_COMPLETED: _ended,
    EventType.WORKFLOW_FAILED: _ended,
    EventType.WORKFLOW_CANCELLED: _ended,
    EventType.WORKFLOW_CONTINUED_AS_NEW: _ended,
    EventType.WORKFLOW_INTERRUPTED: _interrupted,
    EventType.CANCELLATION_REQUESTED: _cancel_requested,
    EventType.STEP_STARTED: _step_started,
    EventType.STEP_COMPLETED: _step_outcome,
    EventType.STEP_FAILED: _step_outcome,
    EventType.STEP_RETRYING: _step_outcome,
    EventType.STEP_CANCELLED: _step_outcome,
    EventType.SLEEP_STARTED: _sleep_started,
    EventType.SLEEP_COMPLETED: _sleep_completed,
    EventType.HOOK_CREATED: _hook_created,
    EventType.HOOK_RECEIVED: _hook_outcome,
    EventType.HOOK_EXPIRED: _hook_outcome,
    EventType.HOOK_DISPOSED: _hook_outcome,
    EventType.CHILD_WORKFLOW_STARTED: _child_started,
    EventType.CHILD_WORKFLOW_COMPLETED: _child_outcome,
    EventType.CHILD_WORKFLOW_FAILED: _child_outcome,
    EventType.CHILD_WORKFLOW_CANCELLED: _child_outcome,
}
