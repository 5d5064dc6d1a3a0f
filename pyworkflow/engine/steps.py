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
from typing import Any

from loguru import logger

from pyworkflow.core.exceptions import FatalError, SuspensionSignal
from pyworkflow.engine import events as ev
from pyworkflow.engine.activation import Activation
from pyworkflow.engine.cancellation import watch_cancellation
from pyworkflow.engine.dispatch import StepCommand, redispatch_at
from pyworkflow.engine.ids import nth_call_id, step_base_id
from pyworkflow.engine.step_call import StepCall, invoke, replay_failure, retry_delay_for
from pyworkflow.engine.step_outcomes import AttemptOutcome, run_attempt
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs
from pyworkflow.storage.schemas import Timer, make_timer_id

__all__ = ["DurableStep", "StepCall", "invoke", "run_step_transient"]


class DurableStep:
    """One durable step call: run here (inline mode) or sent to a step worker
    (dispatch mode, when the activation collects commands)."""

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
        state = act.state
        if state.has_step_result(step_id):
            return state.step_result(step_id)
        failure = state.step_failures.get(step_id)
        if failure is not None:
            raise replay_failure(failure)
        attempt = state.step_next_attempt.get(step_id, 1)
        if act.commands is not None:
            # An attempt already running on a step worker finishes first, as an inline
            # step would: its result must be seen (a saga has to be able to undo it).
            self._wait_for_dispatched(attempt)
        act.check_cancellation()
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
        if act.commands is not None:
            self._dispatch(started, attempt, timers_delete)
        done = act.track()
        try:
            return await self._attempt(started, attempt, timers_delete)
        finally:
            done.set_result(None)

    def _wait_for_dispatched(self, attempt: int) -> None:
        """Dispatch mode: an attempt already sent, whose watchdog is not due, is in
        flight; keep waiting for its outcome (re-arming the watchdog resets a stale
        claim)."""
        act, step_id = self.act, self.step_id
        prior = act.state.step_dispatch.get(step_id)
        if prior is not None and prior[0] == attempt and prior[2] > act.now():
            act.buffer(timers_upsert=[Timer(act.run_id, "step", step_id, prior[2])])
            raise SuspensionSignal(f"step_dispatch:{step_id}", resume_at=prior[2])

    def _dispatch(self, started: ev.Event, attempt: int, timers_delete: list[str]) -> None:
        """Dispatch mode: record the attempt as sent, queue its command, suspend.

        An attempt is sent again only once its watchdog is due (the message or the
        step worker was lost)."""
        act, step_id, now = self.act, self.step_id, self.act.now()
        assert act.commands is not None
        prior = act.state.step_dispatch.get(step_id)
        number = prior[1] + 1 if prior is not None and prior[0] == attempt else 1
        watchdog = redispatch_at(self.call, now)
        started.data.update(dispatch=number, redispatch_at=watchdog.isoformat())
        act.buffer(
            events=[started],
            timers_upsert=[Timer(act.run_id, "step", step_id, watchdog)],
            timers_delete=timers_delete,
        )
        act.state.step_dispatch[step_id] = (attempt, number, watchdog)
        act.commands.append(
            StepCommand(
                act.run_id,
                step_id,
                self.call.name,
                self.args_json,
                self.kwargs_json,
                attempt,
                number,
            )
        )
        raise SuspensionSignal(f"step_dispatch:{step_id}", resume_at=watchdog, step_id=step_id)

    async def _attempt(self, started: ev.Event, attempt: int, timers_delete: list[str]) -> Any:
        act, call = self.act, self.call
        async with watch_cancellation(act.storage, act.run_id, act.note_cancellation):
            outcome, error = await run_attempt(act.run_id, call, self.step_id, attempt, act.now)
        await act.commit(
            [started, *outcome.events],
            timers_upsert=[outcome.timer] if outcome.timer else [],
            timers_delete=timers_delete,
        )
        return self._apply(outcome, attempt, error)

    def _apply(self, outcome: AttemptOutcome, attempt: int, error: Exception | None) -> Any:
        """Update the replay state after the commit, then return or raise."""
        state, step_id = self.act.state, self.step_id
        if outcome.kind == "completed":
            assert outcome.raw is not None
            state.remember_step_result(step_id, outcome.result, outcome.raw)
            return outcome.result
        if outcome.kind == "retry":
            assert outcome.resume_at is not None
            logger.info(
                "Step {} failed (attempt {}/{}): {}; next attempt at {}",
                self.call.name,
                attempt,
                self.call.max_retries + 1,
                error,
                outcome.resume_at.isoformat(),
                run_id=self.act.run_id,
            )
            state.step_next_attempt[step_id] = attempt + 1
            state.retry_resume_at[step_id] = outcome.resume_at
            raise SuspensionSignal(
                f"retry:{step_id}",
                resume_at=outcome.resume_at,
                step_id=step_id,
                attempt=attempt + 1,
            )
        state.step_failures[step_id] = outcome.events[-1].data
        raised = outcome.error
        assert raised is not None
        cause = None if raised is error else error
        raise raised from cause


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
