"""Record how an activation ended: one commit per outcome.

The terminal event, the run row's status and result, the removal of the run's
timers and the release of the activation lease go into the same transaction, so a
crash can never leave a run whose row and log disagree.

Example:
    >>> from pyworkflow.engine.outcome import Completed
    >>> terminal_status(Completed(1)).value
    'completed'
"""

from __future__ import annotations

import contextlib
import traceback

from pyworkflow.core.exceptions import NondeterminismError
from pyworkflow.engine import events as ev
from pyworkflow.engine.activation import Activation, ActivationAborted, StorageUnavailable
from pyworkflow.engine.followups import followup_timer
from pyworkflow.engine.hooks import pending_hook_updates
from pyworkflow.engine.ids import new_run_id
from pyworkflow.engine.outcome import (
    Aborted,
    Cancelled,
    Completed,
    ContinuedAsNew,
    Failed,
    Interrupted,
    Outcome,
    Suspended,
)
from pyworkflow.serialization.encoder import serialize, serialize_args, serialize_kwargs
from pyworkflow.storage.base import RunUpdate
from pyworkflow.storage.schemas import RunStatus, make_timer_id

_STATUS = {
    Completed: RunStatus.COMPLETED,
    Failed: RunStatus.FAILED,
    Cancelled: RunStatus.CANCELLED,
    Suspended: RunStatus.SUSPENDED,
    ContinuedAsNew: RunStatus.CONTINUED_AS_NEW,
}


def terminal_status(outcome: Outcome) -> RunStatus:
    """The run status an outcome leads to."""
    return _STATUS[type(outcome)]


def error_text(error: BaseException) -> str:
    """``str(error)``, or the type name when the message is empty."""
    return str(error) or type(error).__name__


def check_completion(act: Activation, outcome: Completed) -> tuple[Outcome, str | None]:
    """Validate a completion: all recorded calls replayed, limits, serializable result."""
    unreached = act.unreached_calls()
    if unreached:
        position, record = unreached[0]
        error = NondeterminismError(
            position, record.describe(), "nothing: the workflow returned before reaching it"
        )
        return Failed(error), None
    try:
        act.validate_event_limits()
        return outcome, serialize(outcome.result)
    except Exception as error:
        return Failed(error, "".join(traceback.format_exception(error))), None


def terminal_event(act: Activation, outcome: Outcome, raw_result: str | None) -> ev.Event:
    """The event that ends the run for a terminal outcome."""
    if isinstance(outcome, Completed):
        return ev.Event(
            run_id=act.run_id,
            type=ev.EventType.WORKFLOW_COMPLETED,
            data={"result": raw_result, "workflow_name": act.workflow_name},
        )
    if isinstance(outcome, Cancelled):
        return ev.create_workflow_cancelled_event(
            act.run_id, outcome.error.reason, cleanup_completed=True
        )
    assert isinstance(outcome, Failed)
    return ev.create_workflow_failed_event(
        act.run_id,
        error_text(outcome.error),
        type(outcome.error).__name__,
        outcome.traceback or "".join(traceback.format_exception(outcome.error)),
    )


def continuation_event(act: Activation, outcome: ContinuedAsNew) -> tuple[Outcome, ev.Event | None]:
    """``workflow.continued_as_new`` naming the next run, or a failure when the
    arguments cannot be stored."""
    try:
        args = serialize_args(*outcome.args)
        kwargs = serialize_kwargs(**outcome.kwargs)
    except Exception as error:
        return Failed(error, "".join(traceback.format_exception(error))), None
    event = ev.create_workflow_continued_as_new_event(act.run_id, new_run_id(), args, kwargs)
    return outcome, event


def owes_followups(act: Activation, outcome: Outcome) -> bool:
    """Whether the ended run owes work to other runs (see engine.followups)."""
    return (
        isinstance(outcome, ContinuedAsNew)
        or act.parent_run_id is not None
        or act.scheduled
        or bool(act.state.children_started)
    )


async def finish(act: Activation, outcome: Outcome) -> Outcome:
    """Commit ``outcome`` for the run; returns what was actually recorded.

    A completion can turn into a failure here (an unreplayed recorded call, the event
    hard limit, an unserializable result, continue-as-new arguments that cannot be
    stored). Work owed to other runs is left to :mod:`pyworkflow.engine.followups`.
    """
    owner = act.lease_owner
    raw: str | None = None
    if isinstance(outcome, Interrupted):
        await _release_quietly(act)
        return outcome
    if act.poisoned is not None and not isinstance(outcome, Aborted):
        outcome = Failed(act.poisoned)
    if isinstance(outcome, Completed):
        outcome, raw = check_completion(act, outcome)
    continued: ev.Event | None = None
    if isinstance(outcome, ContinuedAsNew):
        outcome, continued = continuation_event(act, outcome)
    try:
        if isinstance(outcome, Suspended):
            # This activation saw what the resume guard (see engine.dispatch) was
            # armed for (step outcomes, a hook payload), so it is no longer needed.
            await act.commit(
                run_update=RunUpdate(status=RunStatus.SUSPENDED, release_lease=owner),
                timers_delete=[make_timer_id(act.run_id, "guard", "resume")],
            )
        elif isinstance(outcome, Completed | Failed | Cancelled | ContinuedAsNew):
            update = RunUpdate(
                status=terminal_status(outcome),
                result=raw,
                error=error_text(outcome.error) if isinstance(outcome, Failed) else None,
                completed_at=act.now(),
                release_lease=owner,
                continued_to_run_id=continued.data["new_run_id"] if continued else None,
            )
            await act.commit(
                [continued or terminal_event(act, outcome, raw)],
                run_update=update,
                clear_timers=True,
                hook_updates=pending_hook_updates(act),
                timers_upsert=[followup_timer(act.run_id)] if owes_followups(act, outcome) else [],
            )
            if isinstance(outcome, Cancelled):
                with contextlib.suppress(Exception):
                    await act.storage.clear_cancellation_flag(act.run_id)
    except ActivationAborted as aborted:
        outcome = Aborted(str(aborted))
    except StorageUnavailable as failure:
        outcome = Interrupted(failure.error)
    if isinstance(outcome, Aborted | Interrupted):
        await _release_quietly(act)
    return outcome


async def _release_quietly(act: Activation) -> None:
    """Free the run for the next activation; a storage still down keeps the lease
    until it expires, after which the run is picked up as stale."""
    if act.lease_owner is None:
        return
    with contextlib.suppress(Exception):
        await act.storage.release_run_lease(act.run_id, act.lease_owner)
