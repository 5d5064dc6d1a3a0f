"""Running steps: durable inline execution, and the transient in-process loop.

Durable inline execution (the local runtime) runs one attempt per activation:

* success: ``step.started`` + ``step.completed`` are committed together, before the
  workflow moves on (the durability point);
* ``FatalError``: ``step.failed`` (final) is committed and the error re-raised;
* another error with attempts left: ``step.failed`` + ``step.retrying`` and a retry
  timer are committed and the run suspends until the delay has passed;
* attempts exhausted: ``step.failed`` (final) and a ``RetryableError`` that says so.

A final failure is replayed by raising the same exception again, so a workflow that
catches it behaves the same on every replay.

Example:
    >>> StepCall("add", lambda a, b: a + b, (1, 2), {}).max_retries
    3
"""

from __future__ import annotations

import asyncio
import inspect
import traceback as tb
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from loguru import logger

from pyworkflow.core.exceptions import (
    CancellationError,
    FatalError,
    RetryableError,
    StepTimeoutError,
    SuspensionSignal,
)
from pyworkflow.engine import events as ev
from pyworkflow.engine.activation import Activation
from pyworkflow.engine.ids import nth_call_id, step_base_id
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.serialization.encoder import serialize, serialize_args, serialize_kwargs
from pyworkflow.storage.schemas import Timer, make_timer_id
from pyworkflow.utils.retry import compute_retry_delay, describe_retry_delay


@dataclass
class StepCall:
    """One call of a step: what to run and its retry/timeout policy."""

    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_retries: int = 3
    retry_delay: Any = "exponential"
    timeout: float | None = None


async def invoke(call: StepCall) -> Any:
    """Run the step body once, honouring its timeout. Sync functions run in a thread."""
    if inspect.iscoroutinefunction(call.func):
        body = call.func(*call.args, **call.kwargs)
    else:
        body = asyncio.to_thread(call.func, *call.args, **call.kwargs)
    if call.timeout is None:
        result = await body
    else:
        try:
            async with asyncio.timeout(call.timeout):
                result = await body
        except TimeoutError as exc:
            if isinstance(exc, StepTimeoutError):
                raise
            raise StepTimeoutError(call.name, call.timeout) from exc
    if inspect.isawaitable(result):
        result = await result
    return result


def retry_delay_for(call: StepCall, error: BaseException, attempt: int) -> float:
    """Seconds to wait before the attempt after ``attempt`` (1-based) failed."""
    if isinstance(error, RetryableError) and error.retry_after is not None:
        requested = error.get_retry_delay_seconds()
        if requested is not None:
            return float(requested)
    return compute_retry_delay(call.retry_delay, attempt - 1)


def exhausted_error(call: StepCall, error: BaseException, attempts: int) -> BaseException:
    """What the workflow sees when a step ran out of attempts."""
    if isinstance(error, RetryableError):
        return error
    return RetryableError(f"Step {call.name} failed after {attempts} attempts: {error}")


def replay_failure(data: dict[str, Any]) -> BaseException:
    """Rebuild the exception a recorded final failure raised."""
    encoded = data.get("exception")
    if encoded:
        try:
            value = deserialize(encoded, allow_pickle=False)
        except Exception:
            value = None
        if isinstance(value, BaseException):
            return value
    return FatalError(str(data.get("error", "step failed")))


def _encode_exception(error: BaseException) -> str | None:
    try:
        return serialize(error, allow_pickle=False)
    except Exception:
        return None


class InlineStep:
    """One durable step call executed in this process."""

    def __init__(self, act: Activation, call: StepCall) -> None:
        self.act = act
        self.call = call
        self.args_json = serialize_args(*call.args)
        self.kwargs_json = serialize_kwargs(**call.kwargs)
        base = step_base_id(call.name, self.args_json, self.kwargs_json)
        self.step_id = nth_call_id(base, act.nth_call(base))

    async def run(self) -> Any:
        act, step_id = self.act, self.step_id
        position = act.begin_call("step", self.call.name, step_id)
        act.check_cancellation()
        state = act.state
        if state.has_step_result(step_id):
            return state.step_result(step_id)
        failure = state.step_failures.get(step_id)
        if failure is not None:
            raise replay_failure(failure)
        attempt = state.step_next_attempt.get(step_id, 1)
        timers_delete: list[str] = []
        if attempt > 1:
            resume_at = state.retry_resume_at.get(step_id)
            if resume_at is not None and resume_at > act.now():
                act.buffer(timers_upsert=[Timer(act.run_id, "retry", step_id, resume_at)])
                raise SuspensionSignal(f"retry:{step_id}", resume_at=resume_at, step_id=step_id)
            timers_delete.append(make_timer_id(act.run_id, "retry", step_id))
        act.validate_event_limits()
        started = ev.create_step_started_event(
            act.run_id, step_id, self.call.name, self.args_json, self.kwargs_json, attempt
        )
        started.data["position"] = position
        done = act.track()
        try:
            return await self._attempt(started, attempt, timers_delete)
        finally:
            done.set_result(None)

    async def _attempt(self, started: ev.Event, attempt: int, timers_delete: list[str]) -> Any:
        act, call = self.act, self.call
        try:
            result = await invoke(call)
        except (CancellationError, asyncio.CancelledError):
            raise
        except FatalError as error:
            await self._record_final(started, error, error, attempt, timers_delete, False)
            raise
        except Exception as error:
            if attempt <= call.max_retries:
                await self._record_retry(started, error, attempt, timers_delete)
            final = exhausted_error(call, error, attempt)
            await self._record_final(started, error, final, attempt, timers_delete, True)
            raise final from error
        raw = serialize(result)
        completed = ev.create_step_completed_event(act.run_id, self.step_id, raw, call.name)
        await act.commit([started, completed], timers_delete=timers_delete)
        act.state.remember_step_result(self.step_id, result, raw)
        return result

    def _failed_event(self, error: BaseException, attempt: int, retryable: bool) -> ev.Event:
        event = ev.create_step_failed_event(
            self.act.run_id,
            self.step_id,
            str(error),
            type(error).__name__,
            retryable,
            attempt,
            "".join(tb.format_exception(error)),
        )
        event.data["step_name"] = self.call.name
        return event

    async def _record_retry(
        self, started: ev.Event, error: Exception, attempt: int, timers_delete: list[str]
    ) -> None:
        act, call = self.act, self.call
        delay = retry_delay_for(call, error, attempt)
        resume_at: datetime = act.now() + timedelta(seconds=delay)
        retrying = ev.create_step_retrying_event(
            act.run_id, self.step_id, attempt + 1, str(int(delay)), str(error)
        )
        retrying.data.update(
            step_name=call.name,
            resume_at=resume_at.isoformat(),
            retry_strategy=describe_retry_delay(call.retry_delay),
            max_retries=call.max_retries,
            retry_after_seconds=delay,
        )
        logger.info(
            "Step {} failed (attempt {}/{}): {}; retrying in {:g}s",
            call.name,
            attempt,
            call.max_retries + 1,
            error,
            delay,
            run_id=act.run_id,
        )
        await act.commit(
            [started, self._failed_event(error, attempt, True), retrying],
            timers_upsert=[Timer(act.run_id, "retry", self.step_id, resume_at)],
            timers_delete=timers_delete,
        )
        act.state.step_next_attempt[self.step_id] = attempt + 1
        act.state.retry_resume_at[self.step_id] = resume_at
        raise SuspensionSignal(
            f"retry:{self.step_id}", resume_at=resume_at, step_id=self.step_id, attempt=attempt + 1
        )

    async def _record_final(
        self,
        started: ev.Event,
        error: BaseException,
        raised: BaseException,
        attempt: int,
        timers_delete: list[str],
        retryable: bool,
    ) -> None:
        failed = self._failed_event(error, attempt, retryable)
        failed.data["final"] = True
        failed.data["exception"] = _encode_exception(raised)
        await self.act.commit([started, failed], timers_delete=timers_delete)
        self.act.state.step_failures[self.step_id] = failed.data


async def run_step_transient(call: StepCall) -> Any:
    """Run a step with in-process retries (transient mode): nothing is recorded.

    ``FatalError`` is not retried; after the last attempt the original error is
    re-raised.
    """
    attempt = 1
    while True:
        try:
            return await invoke(call)
        except FatalError:
            raise
        except Exception as error:
            if attempt > call.max_retries:
                raise
            delay = retry_delay_for(call, error, attempt)
            logger.info(
                "Step {} failed (attempt {}/{}): {}; retrying in {:g}s",
                call.name,
                attempt,
                call.max_retries + 1,
                error,
                delay,
            )
            await asyncio.sleep(delay)
            attempt += 1
