"""Execute a dispatched step attempt away from its workflow, and record it once.

This is what a step worker does with a :class:`~pyworkflow.engine.dispatch.StepCommand`:
run the attempt, then append its outcome (``step.completed``, or ``step.failed`` +
``step.retrying`` with a retry timer, or a final ``step.failed``) and drop the
attempt's watchdog timer, in one commit. A duplicate delivery of the same command
finds the attempt already recorded and does nothing; if two deliveries race, the
storage's per-step keys let only one outcome in.

Example:
    >>> import asyncio
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> cmd = StepCommand("run_missing", "step_a_1", "a", "[]", "{}")
    >>> asyncio.run(execute_step_command(InMemoryStorageBackend(), cmd))
    False
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from pyworkflow.core.exceptions import FatalError
from pyworkflow.core.registry import get_step
from pyworkflow.engine.cancellation import watch_cancellation
from pyworkflow.engine.dispatch import StepCommand, resume_guard
from pyworkflow.engine.step_call import StepCall
from pyworkflow.engine.step_outcomes import run_attempt
from pyworkflow.serialization.decoder import deserialize_args, deserialize_kwargs
from pyworkflow.storage.base import (
    CommitBatch,
    DuplicateEventError,
    RunEndedError,
    StorageBackend,
)
from pyworkflow.storage.schemas import TERMINAL_STATUSES, make_timer_id
from pyworkflow.utils.duration import parse_duration_seconds


def _utcnow() -> datetime:
    return datetime.now(UTC)


def step_call_for(cmd: StepCommand) -> StepCall:
    """The step's function and policy from this process's registry."""
    meta = get_step(cmd.step_name)
    args = deserialize_args(cmd.args_json)
    kwargs = deserialize_kwargs(cmd.kwargs_json)
    if meta is None:

        def missing(*_: Any, **__: Any) -> Any:
            raise FatalError(
                f"Step '{cmd.step_name}' is not registered in this worker. Import the module "
                "that defines it (PYWORKFLOW_DISCOVER) in every step worker."
            )

        return StepCall(cmd.step_name, missing, args, kwargs, max_retries=0)
    timeout = parse_duration_seconds(meta.timeout) if meta.timeout is not None else None
    return StepCall(
        cmd.step_name,
        meta.original_func,
        args,
        kwargs,
        meta.max_retries,
        meta.retry_delay_value,
        timeout,
    )


async def already_recorded(storage: StorageBackend, cmd: StepCommand) -> bool:
    """Whether this attempt (or a later one, or the step's outcome) is in the log."""
    events = await storage.get_events(cmd.run_id, ["step.completed", "step.failed"])
    for event in events:
        if event.data.get("step_id") != cmd.step_id:
            continue
        if event.type.value == "step.completed" or event.data.get("final"):
            return True
        if int(event.data.get("attempt", 0)) >= cmd.attempt:
            return True
    return False


async def execute_step_command(
    storage: StorageBackend,
    cmd: StepCommand,
    *,
    clock: Callable[[], datetime] = _utcnow,
    on_cancel: Callable[[str | None], None] | None = None,
) -> bool:
    """Run ``cmd`` once and record its outcome. Returns True when the run should be
    resumed (an outcome is recorded now or was already), False when the run is gone
    or finished. ``on_cancel(reason)`` is called if the run is cancelled while the step
    body runs (so that the body can stop cooperatively)."""
    run = await storage.get_run(cmd.run_id)
    if run is None or run.status in TERMINAL_STATUSES:
        return False
    if await already_recorded(storage, cmd):
        return True
    call = step_call_for(cmd)
    if on_cancel is None:
        outcome, _ = await run_attempt(cmd.run_id, call, cmd.step_id, cmd.attempt, clock)
    else:
        async with watch_cancellation(storage, cmd.run_id, on_cancel):
            outcome, _ = await run_attempt(cmd.run_id, call, cmd.step_id, cmd.attempt, clock)
    batch = CommitBatch(
        run_id=cmd.run_id,
        events=outcome.events,
        timers_upsert=[
            *([outcome.timer] if outcome.timer else []),
            resume_guard(cmd.run_id, clock()),
        ],
        timers_delete=[make_timer_id(cmd.run_id, "step", cmd.step_id)],
        # The run may have ended while the body ran (cancelled, timed out): nothing
        # may follow its terminal event.
        require_open=True,
    )
    try:
        await storage.commit(batch)
    except DuplicateEventError:
        logger.info("Step {} attempt {} was already recorded", cmd.step_id, cmd.attempt)
    except RunEndedError:
        logger.info("Step {} finished after its run ended; result dropped", cmd.step_id)
        return False
    return True
