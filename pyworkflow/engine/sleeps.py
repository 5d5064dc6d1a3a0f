"""Durable sleep: a timer in storage, and a run that holds nothing while it waits.

A sleep takes the next position. A sleep recorded at that position keeps its
recorded id even if the duration computed now differs (e.g. ``until - now()``):
timers are identified by their place in the run, like Temporal's. A sleep whose
time has passed is completed by the next activation (``sleep.completed`` rides
along with its next commit); otherwise the run suspends with the timer (re)armed.

Example:
    >>> import asyncio
    >>> from pyworkflow.engine.activation import Activation
    >>> from pyworkflow.engine.state import RunState
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> act = Activation("run_1", "wf", InMemoryStorageBackend(), RunState("run_1"))
    >>> asyncio.run(durable_sleep(act, 0))  # zero seconds: nothing to wait for
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pyworkflow.core.exceptions import SuspensionSignal
from pyworkflow.engine import events as ev
from pyworkflow.engine.activation import Activation
from pyworkflow.engine.ids import sleep_id as make_sleep_id
from pyworkflow.storage.schemas import Timer, make_timer_id


def begin_sleep(act: Activation, sid: str, name: str | None) -> tuple[int, str]:
    """Enter a sleep call; returns its position and its (possibly recorded) id."""
    position = act.peek_position()
    recorded = act.state.calls.get(position)
    if recorded is not None and recorded.kind == "sleep":
        sid = recorded.call_id
    act.begin_call("sleep", name or sid, sid)
    return position, sid


async def durable_sleep(
    act: Activation, seconds: float, name: str | None = None, until: datetime | None = None
) -> None:
    """Complete the sleep if due, else record it with a timer and suspend.

    ``until`` (an aware datetime) sleeps to that moment; a new sleep until a past
    moment is a ``ValueError``, a recorded one is simply due.
    """
    counter = act.next_counter()
    if until is None:
        sid = make_sleep_id(counter, seconds)
    else:
        sid = f"sleep_{counter}_until_{until.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"
    position, sid = begin_sleep(act, sid, name)
    state = act.state
    if sid in state.sleeps_completed:
        return
    act.check_cancellation()
    resume_at = state.sleeps_started.get(sid)
    if resume_at is None:
        if until is not None and until <= act.now():
            raise ValueError(
                f"Cannot sleep until past time {until.isoformat()}: pass a datetime in "
                "the future, or a duration such as '5m'."
            )
        if until is None and seconds <= 0:
            return
        act.validate_event_limits()
        resume_at = until if until is not None else act.now() + timedelta(seconds=seconds)
        started = ev.create_sleep_started_event(act.run_id, sid, seconds, resume_at, name)
        started.data["position"] = position
        act.buffer(events=[started])
        state.sleeps_started[sid] = resume_at
    elif resume_at <= act.now():
        act.buffer(
            events=[ev.create_sleep_completed_event(act.run_id, sid)],
            timers_delete=[make_timer_id(act.run_id, "sleep", sid)],
        )
        state.sleeps_completed.add(sid)
        return
    # (Re)arming the timer in the suspending commit also resets a stale claim.
    act.buffer(timers_upsert=[Timer(act.run_id, "sleep", sid, resume_at)])
    raise SuspensionSignal(f"sleep:{sid}", resume_at=resume_at, sleep_id=sid)
