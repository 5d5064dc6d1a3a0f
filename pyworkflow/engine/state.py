"""The replay fold: a run's event log folded into what an activation needs.

Folding is one pass over the events with dictionary updates only; step results are
kept as their JSON text and decoded lazily, the first time replay asks for them, so
loading a long history stays cheap.

Example:
    >>> from pyworkflow.engine import events as ev
    >>> s = RunState.from_events("run_1", [])
    >>> s.last_sequence
    -1
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyworkflow.engine.events import Event, EventType
from pyworkflow.serialization.decoder import deserialize


@dataclass(frozen=True)
class CallRecord:
    """What the log says was called at one position: kind, name and id."""

    kind: str
    name: str
    call_id: str

    def describe(self) -> str:
        """Human text for errors: ``step 'charge' (id step_charge_1a2b...)``."""
        return f"{self.kind} '{self.name}' (id {self.call_id})"


def _parse_dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_MISSING = object()


@dataclass
class RunState:
    """Everything replay needs, built from events by :meth:`apply`."""

    run_id: str
    last_sequence: int = -1
    event_count: int = 0
    calls: dict[int, CallRecord] = field(default_factory=dict)
    step_results_raw: dict[str, str] = field(default_factory=dict)
    step_failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    step_next_attempt: dict[str, int] = field(default_factory=dict)
    retry_resume_at: dict[str, datetime] = field(default_factory=dict)
    retry_events: dict[str, dict[str, Any]] = field(default_factory=dict)
    # step id -> (attempt, dispatch number, redispatch_at) of its latest dispatch
    step_dispatch: dict[str, tuple[int, int, datetime]] = field(default_factory=dict)
    sleeps_started: dict[str, datetime] = field(default_factory=dict)
    sleeps_completed: set[str] = field(default_factory=set)
    hooks_created: dict[str, dict[str, Any]] = field(default_factory=dict)
    hook_payloads_raw: dict[str, Any] = field(default_factory=dict)
    hooks_expired: set[str] = field(default_factory=set)
    # hook id -> the error its on_created callback raised (the hook was disposed)
    hooks_disposed: dict[str, dict[str, Any]] = field(default_factory=dict)
    children_started: dict[str, dict[str, Any]] = field(default_factory=dict)
    child_outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancellation_requested: bool = False
    cancellation_reason: str | None = None
    terminal: EventType | None = None
    interruptions: int = 0
    context_data: dict[str, Any] | None = None
    #: Every event folded so far, in order (a runtime may keep it to skip re-reading).
    log: list[Event] = field(default_factory=list, repr=False)
    _decoded: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_events(cls, run_id: str, events: Iterable[Event]) -> RunState:
        """Fold ``events`` (in sequence order) into a fresh state."""
        state = cls(run_id=run_id)
        for event in events:
            state.apply(event)
        return state

    def whole_log(self) -> list[Event] | None:
        """:attr:`log` if it is the run's complete log (sequences 0..n-1), else None.

        Example:
            >>> from pyworkflow.engine.events import Event, EventType
            >>> e = Event(run_id="r", type=EventType.CONTEXT_UPDATED, data={}, sequence=0)
            >>> len(RunState.from_events("r", [e]).whole_log() or [])
            1
        """
        log = self.log
        if not log or log[-1].sequence != len(log) - 1 or self.last_sequence != len(log) - 1:
            return None
        return log

    # ------------------------------------------------------------------ queries

    def has_step_result(self, step_id: str) -> bool:
        """Whether the step completed."""
        return step_id in self.step_results_raw or step_id in self._decoded

    def step_result(self, step_id: str) -> Any:
        """The decoded result of a completed step (decoded once, then cached)."""
        value = self._decoded.get(step_id, _MISSING)
        if value is _MISSING:
            value = deserialize(self.step_results_raw[step_id])
            self._decoded[step_id] = value
        return value

    def remember_step_result(self, step_id: str, value: Any, raw: str) -> None:
        """Record the live value of a step this activation just completed."""
        self.step_results_raw[step_id] = raw
        self._decoded[step_id] = value

    def step_results(self) -> dict[str, Any]:
        """All completed step results, decoded."""
        ids = list(self.step_results_raw) + [
            k for k in self._decoded if k not in self.step_results_raw
        ]
        return {sid: self.step_result(sid) for sid in ids}

    # ------------------------------------------------------------------ fold

    def apply(self, event: Event) -> None:
        """Fold one event. Events must come in sequence order."""
        if event.sequence is not None and event.sequence > self.last_sequence:
            self.last_sequence = event.sequence
        self.event_count += 1
        self.log.append(event)
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event.data)

    def _record_call(self, data: dict[str, Any], kind: str, name: str, call_id: str) -> None:
        position = data.get("position")
        if position is not None:
            self.calls[int(position)] = CallRecord(kind, name, call_id)


def _on_step_started(s: RunState, d: dict[str, Any]) -> None:
    s._record_call(d, "step", d.get("step_name", ""), d["step_id"])
    watchdog = d.get("redispatch_at")
    if watchdog is not None:
        at = _parse_dt(watchdog)
        assert at is not None
        s.step_dispatch[d["step_id"]] = (int(d.get("attempt", 1)), int(d.get("dispatch", 1)), at)


def _on_step_completed(s: RunState, d: dict[str, Any]) -> None:
    s.step_results_raw[d["step_id"]] = d.get("result", "null")
    s._decoded.pop(d["step_id"], None)


def _on_step_failed(s: RunState, d: dict[str, Any]) -> None:
    if d.get("final") or d.get("is_retryable") is False:
        s.step_failures[d["step_id"]] = d


def _on_step_cancelled(s: RunState, d: dict[str, Any]) -> None:
    s.step_failures[d["step_id"]] = {**d, "error_type": "CancellationError"}


def _on_step_retrying(s: RunState, d: dict[str, Any]) -> None:
    step_id = d["step_id"]
    s.step_next_attempt[step_id] = int(d.get("attempt", 2))
    resume_at = _parse_dt(d.get("resume_at"))
    if resume_at is not None:
        s.retry_resume_at[step_id] = resume_at
    s.retry_events[step_id] = d


def _on_sleep_started(s: RunState, d: dict[str, Any]) -> None:
    sid = d["sleep_id"]
    s._record_call(d, "sleep", d.get("name") or sid, sid)
    resume_at = _parse_dt(d.get("resume_at"))
    if resume_at is not None:
        s.sleeps_started[sid] = resume_at


def _on_sleep_completed(s: RunState, d: dict[str, Any]) -> None:
    s.sleeps_completed.add(d["sleep_id"])


def _on_hook_created(s: RunState, d: dict[str, Any]) -> None:
    s._record_call(d, "hook", d.get("name") or d["hook_id"], d["hook_id"])
    s.hooks_created[d["hook_id"]] = d


def _on_hook_received(s: RunState, d: dict[str, Any]) -> None:
    s.hook_payloads_raw[d["hook_id"]] = d.get("payload")


def _on_hook_expired(s: RunState, d: dict[str, Any]) -> None:
    s.hooks_expired.add(d["hook_id"])


def _on_hook_disposed(s: RunState, d: dict[str, Any]) -> None:
    s.hooks_disposed[d["hook_id"]] = d


def _on_cancel_requested(s: RunState, d: dict[str, Any]) -> None:
    s.cancellation_requested = True
    s.cancellation_reason = d.get("reason")


def _on_child_started(s: RunState, d: dict[str, Any]) -> None:
    s._record_call(d, "child", d.get("child_workflow_name", ""), d["child_id"])
    s.children_started[d["child_id"]] = d


def _child_outcome(kind: str) -> Any:
    def handler(s: RunState, d: dict[str, Any]) -> None:
        s.child_outcomes[d["child_id"]] = {**d, "outcome": kind}

    return handler


def _on_context_updated(s: RunState, d: dict[str, Any]) -> None:
    s.context_data = d.get("context")


def _on_interrupted(s: RunState, d: dict[str, Any]) -> None:
    s.interruptions += 1


def _terminal(kind: EventType) -> Any:
    def handler(s: RunState, d: dict[str, Any]) -> None:
        s.terminal = kind

    return handler


_HANDLERS = {
    EventType.STEP_STARTED: _on_step_started,
    EventType.STEP_COMPLETED: _on_step_completed,
    EventType.STEP_FAILED: _on_step_failed,
    EventType.STEP_RETRYING: _on_step_retrying,
    EventType.STEP_CANCELLED: _on_step_cancelled,
    EventType.SLEEP_STARTED: _on_sleep_started,
    EventType.SLEEP_COMPLETED: _on_sleep_completed,
    EventType.HOOK_CREATED: _on_hook_created,
    EventType.HOOK_RECEIVED: _on_hook_received,
    EventType.HOOK_EXPIRED: _on_hook_expired,
    EventType.HOOK_DISPOSED: _on_hook_disposed,
    EventType.CANCELLATION_REQUESTED: _on_cancel_requested,
    EventType.CHILD_WORKFLOW_STARTED: _on_child_started,
    EventType.CHILD_WORKFLOW_COMPLETED: _child_outcome("completed"),
    EventType.CHILD_WORKFLOW_FAILED: _child_outcome("failed"),
    EventType.CHILD_WORKFLOW_CANCELLED: _child_outcome("cancelled"),
    EventType.CONTEXT_UPDATED: _on_context_updated,
    EventType.WORKFLOW_INTERRUPTED: _on_interrupted,
    EventType.WORKFLOW_COMPLETED: _terminal(EventType.WORKFLOW_COMPLETED),
    EventType.WORKFLOW_FAILED: _terminal(EventType.WORKFLOW_FAILED),
    EventType.WORKFLOW_CANCELLED: _terminal(EventType.WORKFLOW_CANCELLED),
    EventType.WORKFLOW_CONTINUED_AS_NEW: _terminal(EventType.WORKFLOW_CONTINUED_AS_NEW),
}
