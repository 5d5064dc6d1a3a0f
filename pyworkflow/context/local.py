"""``LocalContext``: the context of a run executing in this process.

Durable (``durable=True`` with a storage) it drives an engine
:class:`~pyworkflow.engine.activation.Activation`: steps run inline and are recorded,
sleeps become durable timers. Transient, steps run with in-process retries and
sleeps are ``asyncio.sleep``. The attributes upstream code pokes at in tests
(``step_results``, ``pending_sleeps``, ``_cancellation_blocked``, ...) are views over
the engine's replay state.

Example:
    >>> ctx = LocalContext(durable=False)
    >>> ctx.is_durable, ctx.is_cancellation_requested()
    (False, False)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pyworkflow.context.base import WorkflowContext
from pyworkflow.core.exceptions import CancellationError
from pyworkflow.engine.activation import Activation, EventLimits
from pyworkflow.engine.children import ChildSpec, durable_child
from pyworkflow.engine.events import Event
from pyworkflow.engine.hooks import HookSpec, decode_payload, durable_hook
from pyworkflow.engine.sleeps import durable_sleep
from pyworkflow.engine.state import RunState
from pyworkflow.engine.steps import DurableStep, StepCall, run_step_transient
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.serialization.encoder import serialize
from pyworkflow.utils.duration import parse_duration_seconds

if TYPE_CHECKING:
    from pydantic import BaseModel

    from pyworkflow.storage.base import StorageBackend


def _config_limits() -> EventLimits:
    from pyworkflow.config import get_config  # config sits above context

    cfg = get_config()
    return EventLimits(cfg.event_soft_limit, cfg.event_hard_limit, cfg.event_warning_interval)


class LocalContext(WorkflowContext):
    """Context of an in-process run, durable or transient.

    Example:
        >>> import asyncio
        >>> async def fetch() -> int:
        ...     return 42
        >>> ctx = LocalContext(run_id="run_1", durable=False)
        >>> asyncio.run(ctx.run(fetch)), ctx.is_durable
        (42, False)
    """

    def __init__(
        self,
        run_id: str = "local_run",
        workflow_name: str = "local_workflow",
        storage: StorageBackend | None = None,
        durable: bool = True,
        event_log: list[Event] | None = None,
        *,
        activation: Activation | None = None,
    ) -> None:
        super().__init__(run_id, workflow_name)
        self.storage = storage
        self.is_durable = bool(durable and storage is not None)
        self.event_log: list[Event] = list(event_log or [])
        self._blocked = False
        self._pending_children: dict[str, Any] = {}
        self._child_results: dict[str, dict[str, Any]] = {}
        if activation is not None:
            self._act: Activation | None = activation
            self._state = activation.state
        else:
            ordered = sorted(self.event_log, key=lambda e: e.sequence or 0)
            self._is_replaying = bool(ordered)
            self._state = RunState.from_events(run_id, ordered)
            self._is_replaying = False
            self._act = None
            if self.is_durable and storage is not None:
                self._act = Activation(
                    run_id, workflow_name, storage, self._state, limits=_config_limits()
                )

    @property
    def activation(self) -> Activation | None:
        """The engine activation behind a durable context."""
        return self._act

    # ------------------------------------------------------------------ durable calls

    async def execute_step(self, call: StepCall) -> Any:
        """Run an ``@step`` call: recorded inline when durable, else transient."""
        if self._act is None:
            self.check_cancellation()
            return await run_step_transient(call)
        return await DurableStep(self._act, call).run()

    async def run(
        self, func: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
    ) -> Any:
        """Run ``func`` as an explicit step (recorded when durable, no retries)."""
        step_name: str = name or getattr(func, "__name__", None) or "step"
        return await self.execute_step(StepCall(step_name, func, args, kwargs, max_retries=0))

    async def sleep(
        self, seconds: float, name: str | None = None, until: datetime | None = None
    ) -> None:
        """Durable: record a timer and suspend until it is due. Transient: wait."""
        if self._act is None:
            self.check_cancellation()
            await asyncio.sleep(max(0.0, seconds))
            return
        await durable_sleep(self._act, seconds, name, until)

    async def hook(
        self,
        name: str,
        timeout: int | float | str | None = None,
        on_created: Callable[[str], Awaitable[None]] | None = None,
        payload_schema: type[BaseModel] | None = None,
    ) -> Any:
        """Wait for an outside event (durable runs only); returns its payload."""
        if self._act is None:
            raise NotImplementedError(
                "hook() needs a durable run: start the workflow with durable=True and a "
                "storage, so the run can wait without holding this process."
            )
        seconds = parse_duration_seconds(timeout) if timeout is not None else None
        spec = HookSpec(name, seconds, on_created, payload_schema)
        return await durable_hook(self._act, spec)

    async def start_child(self, spec: ChildSpec) -> Any:
        """Start a child run (durable runs only); see ``start_child_workflow``."""
        if self._act is None:
            raise RuntimeError("Child workflows need a durable parent run")
        return await durable_child(self._act, spec)

    async def validate_event_limits(self) -> None:
        """Fail at the hard event limit, warn past the soft one (durable only)."""
        if self._act is not None:
            self._act.validate_event_limits()

    # ------------------------------------------------------------------ cancellation

    @property
    def _cancellation_blocked(self) -> bool:
        return self._act.cancellation_blocked if self._act is not None else self._blocked

    @_cancellation_blocked.setter
    def _cancellation_blocked(self, value: bool) -> None:
        if self._act is not None:
            self._act.cancellation_blocked = value
        self._blocked = value

    @property
    def cancellation_blocked(self) -> bool:
        """True inside ``shield()``."""
        return self._cancellation_blocked

    @property
    def _cancellation_reason(self) -> str | None:
        return self._state.cancellation_reason

    @_cancellation_reason.setter
    def _cancellation_reason(self, value: str | None) -> None:
        self._state.cancellation_reason = value

    @property
    def cancellation_reason(self) -> str | None:
        """Why cancellation was requested."""
        return self._state.cancellation_reason

    def is_cancellation_requested(self) -> bool:
        """Whether cancellation was requested."""
        return self._state.cancellation_requested

    def request_cancellation(self, reason: str | None = None) -> None:
        """Flag this context as cancelled (in memory)."""
        self._state.cancellation_requested = True
        self._state.cancellation_reason = reason

    def check_cancellation(self) -> None:
        """Raise ``CancellationError`` when cancelled and not shielded."""
        if self._state.cancellation_requested and not self._cancellation_blocked:
            reason = self._state.cancellation_reason
            raise CancellationError.requested(reason)

    # ------------------------------------------------------------------ legacy views

    @property
    def step_results(self) -> dict[str, Any]:
        """Decoded results of completed steps, by step id."""
        return self._state.step_results()

    def should_execute_step(self, step_id: str) -> bool:
        """True unless the step has a recorded result."""
        return not self._state.has_step_result(step_id)

    def get_step_result(self, step_id: str) -> Any:
        """The recorded result; ``KeyError`` when there is none."""
        if not self._state.has_step_result(step_id):
            raise KeyError(step_id)
        return self._state.step_result(step_id)

    def cache_step_result(self, step_id: str, result: Any) -> None:
        """Pretend the step completed with ``result`` (replay will return it)."""
        self._state.remember_step_result(step_id, result, serialize(result))

    @property
    def retry_state(self) -> dict[str, dict[str, Any]]:
        """Pending retries: step id -> attempt, resume_at, max_retries."""
        s = self._state
        return {
            sid: {
                "attempt": attempt,
                "resume_at": s.retry_events.get(sid, {}).get("resume_at"),
                "max_retries": s.retry_events.get(sid, {}).get("max_retries"),
            }
            for sid, attempt in s.step_next_attempt.items()
        }

    def get_retry_state(self, step_id: str) -> dict[str, Any] | None:
        """The pending retry of a step, if any."""
        return self.retry_state.get(step_id)

    def set_retry_state(
        self, step_id: str, attempt: int, resume_at: Any = None, max_retries: int = 3
    ) -> None:
        """Record a pending retry in memory."""
        self._state.step_next_attempt[step_id] = attempt
        self._state.retry_events[step_id] = {
            "attempt": attempt,
            "resume_at": resume_at,
            "max_retries": max_retries,
        }

    def clear_retry_state(self, step_id: str) -> None:
        """Forget a pending retry."""
        self._state.step_next_attempt.pop(step_id, None)
        self._state.retry_events.pop(step_id, None)
        self._state.retry_resume_at.pop(step_id, None)

    def record_step_failure(self, step_id: str, error: str, error_type: str) -> None:
        """Remember that a step failed for good."""
        self._state.step_failures[step_id] = {"error": error, "error_type": error_type}

    def has_step_failed(self, step_id: str) -> bool:
        """Whether the step failed for good."""
        return step_id in self._state.step_failures

    def get_step_failure(self, step_id: str) -> dict[str, Any] | None:
        """The final failure of a step, if any."""
        return self._state.step_failures.get(step_id)

    @property
    def completed_sleeps(self) -> set[str]:
        """Ids of sleeps that finished."""
        return set(self._state.sleeps_completed)

    @property
    def pending_sleeps(self) -> dict[str, datetime]:
        """Sleeps started and not finished: id -> resume time."""
        s = self._state
        return {k: v for k, v in s.sleeps_started.items() if k not in s.sleeps_completed}

    def add_pending_sleep(self, sleep_id: str, resume_at: datetime) -> None:
        """Record a started sleep in memory."""
        self._state.sleeps_started[sleep_id] = resume_at

    def mark_sleep_completed(self, sleep_id: str) -> None:
        """Record a finished sleep in memory."""
        self._state.sleeps_completed.add(sleep_id)

    def is_sleep_completed(self, sleep_id: str) -> bool:
        """Whether the sleep finished."""
        return sleep_id in self._state.sleeps_completed

    def should_execute_sleep(self, sleep_id: str) -> bool:
        """True unless the sleep finished."""
        return sleep_id not in self._state.sleeps_completed

    @property
    def hook_results(self) -> dict[str, Any]:
        """Received hook payloads (decoded), by hook id."""
        return {k: _decode(v) for k, v in self._state.hook_payloads_raw.items()}

    @property
    def pending_hooks(self) -> dict[str, dict[str, Any]]:
        """Hooks created and neither received nor expired."""
        s = self._state
        done = set(s.hook_payloads_raw) | s.hooks_expired
        return {k: v for k, v in s.hooks_created.items() if k not in done}

    def cache_hook_result(self, hook_id: str, payload: Any) -> None:
        """Remember a hook payload in memory."""
        self._state.hook_payloads_raw[hook_id] = serialize(payload)

    def has_hook_result(self, hook_id: str) -> bool:
        """Whether the hook was received."""
        return hook_id in self._state.hook_payloads_raw

    def get_hook_result(self, hook_id: str) -> Any:
        """The received payload; ``KeyError`` when none."""
        return _decode(self._state.hook_payloads_raw[hook_id])

    @property
    def child_results(self) -> dict[str, dict[str, Any]]:
        """Known child outcomes by child id (from the log, plus any cached here)."""
        out = {cid: _child_entry(o) for cid, o in self._state.child_outcomes.items()}
        out.update(self._child_results)
        return out

    @property
    def pending_children(self) -> dict[str, Any]:
        """Children started and not finished: child id -> child run id."""
        s = self._state
        out: dict[str, Any] = {
            cid: d.get("child_run_id")
            for cid, d in s.children_started.items()
            if cid not in s.child_outcomes
        }
        out.update(self._pending_children)
        return {k: v for k, v in out.items() if k not in self._child_results}

    def add_pending_child(self, child_id: str, child_run_id: str) -> None:
        """Record a started child in memory."""
        self._pending_children[child_id] = child_run_id

    def cache_child_result(
        self,
        child_id: str,
        child_run_id: str,
        result: Any,
        failed: bool = False,
        error: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """Record a child's outcome in memory."""
        if failed:
            entry: dict[str, Any] = {
                "child_run_id": child_run_id,
                "error": error,
                "error_type": error_type,
                "__failed__": True,
            }
        else:
            entry = {"child_run_id": child_run_id, "result": result, "__failed__": False}
        self._child_results[child_id] = entry
        self._pending_children.pop(child_id, None)

    def has_child_result(self, child_id: str) -> bool:
        """Whether a child's outcome is known."""
        return child_id in self.child_results

    def get_child_result(self, child_id: str) -> dict[str, Any]:
        """A child's outcome; ``KeyError`` when unknown."""
        return self.child_results[child_id]


def _decode(raw: Any) -> Any:
    return decode_payload(raw)


def _child_entry(outcome: dict[str, Any]) -> dict[str, Any]:
    """A recorded child outcome in upstream's ``child_results`` shape."""
    run_id = outcome.get("child_run_id")
    kind = outcome.get("outcome")
    if kind == "completed":
        raw = outcome.get("result")
        result = deserialize(raw) if isinstance(raw, str) else raw
        return {"child_run_id": run_id, "result": result, "__failed__": False}
    error: Any = outcome.get("error")
    error_type: Any = outcome.get("error_type")
    if kind == "cancelled":
        error, error_type = f"Cancelled: {outcome.get('reason')}", "CancellationError"
    return {"child_run_id": run_id, "error": error, "error_type": error_type, "__failed__": True}
