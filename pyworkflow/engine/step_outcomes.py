"""What one attempt of a step leads to: the events and timer to record.

Shared by inline execution (the local runtime) and remote step workers, so a step
attempt is recorded the same way wherever it ran:

* success -> ``step.completed``;
* ``FatalError``, or no attempts left -> ``step.failed`` with ``final: True`` and the
  exception the workflow will see (replayed identically later);
* another error with attempts left -> ``step.failed`` + ``step.retrying`` and a
  ``retry`` timer at the moment the next attempt may run.

Example:
    >>> from datetime import UTC, datetime
    >>> call = StepCall("charge", lambda: None, (), {}, max_retries=1, retry_delay=5)
    >>> out = attempt_outcome("run_1", call, "step_charge_x", 1, datetime.now(UTC),
    ...                       error=ConnectionError("down"))
    >>> out.kind, [e.type.value for e in out.events], out.timer.kind
    ('retry', ['step.failed', 'step.retrying'], 'retry')
"""

from __future__ import annotations

import asyncio
import traceback as tb
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pyworkflow.core.exceptions import CancellationError, FatalError, SerializationError
from pyworkflow.engine import events as ev
from pyworkflow.engine.step_call import StepCall, exhausted_error, invoke, retry_delay_for
from pyworkflow.serialization.encoder import serialize
from pyworkflow.storage.schemas import Timer
from pyworkflow.utils.retry import describe_retry_delay


@dataclass
class AttemptOutcome:
    """The record of one attempt. ``kind`` is "completed", "retry" or "failed"."""

    kind: str
    events: list[ev.Event] = field(default_factory=list)
    timer: Timer | None = None
    result: Any = None
    raw: str | None = None
    resume_at: datetime | None = None
    error: BaseException | None = None


def failed_event(
    run_id: str, step_id: str, name: str, error: BaseException, attempt: int, retryable: bool
) -> ev.Event:
    """``step.failed`` for one attempt (with ``step_name`` and the traceback)."""
    event = ev.create_step_failed_event(
        run_id,
        step_id,
        str(error),
        type(error).__name__,
        retryable,
        attempt,
        "".join(tb.format_exception(error)),
    )
    event.data["step_name"] = name
    return event


def _encode_exception(error: BaseException) -> str | None:
    try:
        return serialize(error, allow_pickle=False)
    except Exception:
        return None


def _final(
    run_id: str,
    call: StepCall,
    step_id: str,
    attempt: int,
    error: BaseException,
    raised: BaseException,
    retryable: bool,
) -> AttemptOutcome:
    failed = failed_event(run_id, step_id, call.name, error, attempt, retryable)
    failed.data["final"] = True
    failed.data["exception"] = _encode_exception(raised)
    return AttemptOutcome("failed", [failed], error=raised)


def _retry(
    run_id: str, call: StepCall, step_id: str, attempt: int, error: BaseException, now: datetime
) -> AttemptOutcome:
    delay = retry_delay_for(call, error, attempt)
    resume_at = now + timedelta(seconds=delay)
    retrying = ev.create_step_retrying_event(
        run_id, step_id, attempt + 1, str(int(delay)), str(error)
    )
    retrying.data.update(
        step_name=call.name,
        resume_at=resume_at.isoformat(),
        retry_strategy=describe_retry_delay(call.retry_delay),
        max_retries=call.max_retries,
        retry_after_seconds=delay,
    )
    return AttemptOutcome(
        "retry",
        [failed_event(run_id, step_id, call.name, error, attempt, True), retrying],
        timer=Timer(run_id, "retry", step_id, resume_at),
        resume_at=resume_at,
        error=error,
    )


_NOTHING = object()


async def run_attempt(
    run_id: str, call: StepCall, step_id: str, attempt: int, now: Callable[[], datetime]
) -> tuple[AttemptOutcome, Exception | None]:
    """Run one attempt of ``call`` and classify it (a body that stops on a
    cancellation check gives ``step.cancelled``; task cancellation passes through).

    Returns the outcome to record and the exception the body raised (if any)."""
    try:
        result = await invoke(call)
    except asyncio.CancelledError:
        raise
    except CancellationError as error:
        # The body stopped on a cancellation check: a final outcome, replayed as such.
        cancelled = ev.create_step_cancelled_event(run_id, step_id, call.name, error.reason)
        cancelled.data["exception"] = _encode_exception(error)
        return AttemptOutcome("failed", [cancelled], error=error), error
    except Exception as error:
        return attempt_outcome(run_id, call, step_id, attempt, now(), error=error), error
    return attempt_outcome(run_id, call, step_id, attempt, now(), result=result), None


def attempt_outcome(
    run_id: str,
    call: StepCall,
    step_id: str,
    attempt: int,
    now: datetime,
    *,
    result: Any = _NOTHING,
    error: BaseException | None = None,
) -> AttemptOutcome:
    """Classify one finished attempt (``result`` or ``error``) into what to record."""
    if error is None:
        try:
            raw = serialize(result)
        except SerializationError as problem:
            # The body ran but its result cannot be stored: a permanent failure.
            return _final(run_id, call, step_id, attempt, problem, problem, False)
        completed = ev.create_step_completed_event(run_id, step_id, raw, call.name)
        return AttemptOutcome("completed", [completed], result=result, raw=raw)
    if isinstance(error, FatalError):
        return _final(run_id, call, step_id, attempt, error, error, False)
    if attempt <= call.max_retries:
        return _retry(run_id, call, step_id, attempt, error, now)
    final = exhausted_error(call, error, attempt)
    return _final(run_id, call, step_id, attempt, error, final, True)
